// laserd serve: load a model once and serve proto/laser/v1 over gRPC, with
// grpc.health.v1, server reflection, a SQLite job store, bearer tokens, TLS,
// JSON-lines logs and an HTTP endpoint for /metrics and dashboards
// (docs/server.md).
#include <csignal>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/laser/replicas.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "httplib.h"
#include "server/commands.h"
#include "server/file_bytes.h"
#include "server/grpc_log.h"
#include "server/grpc_services.h"
#include "server/http_api.h"
#include "server/malformed_request.h"
#include "server/retention.h"
#include "server/server_state.h"
#include "server/tls_files.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

// %* : the log message as a JSON string body (quotes, backslashes and control
// characters escaped), so that every log line is one JSON object.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static const char* kHex = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (c == '\n') {
        dest.append(std::string_view("\\n"));
      } else if (u < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        dest.append(esc, esc + 6);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

void UseJsonLogs() {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<JsonEscapedMessage>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%*"})");
  spdlog::set_formatter(std::move(f));
  // gRPC's own lines in the same format ("logger":"grpc").
  RouteGrpcLogsToSpdlog();
}

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

absl::Status Serve(const ServeOptions& o) {
  UseJsonLogs();
  std::map<std::string, TokenInfo> tokens;
  if (!o.tokens_file.empty()) {
    LASERD_ASSIGN_OR_RETURN(tokens, ReadTokens(o.tokens_file));
  }
  LASERD_ASSIGN_OR_RETURN(const absl::Duration retention, ParseJobRetention(o.job_retention));
  if (o.dataset_quota_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dataset-quota-bytes: ", o.dataset_quota_bytes, " is negative"));
  }
  LASERD_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, JobStore::Open(o.state_dir));
  if (o.test_store_page_headroom >= 0) {
    LASERD_ASSIGN_OR_RETURN(const int64_t pages, store->PageCount());
    LASERD_ASSIGN_OR_RETURN(const int64_t cap,
                            store->SetMaxPageCount(pages + o.test_store_page_headroom));
    spdlog::warn("testing: the job store is capped at {} pages (it has {})", cap, pages);
  }
  ServerState state(o, std::move(store), std::move(tokens));
  // Applied before the model loads (a full disk is relieved at once), then
  // periodically until the server stops.
  JobRetention retention_of_jobs(*state.store, state.jobs, retention);
  LASERD_RETURN_IF_ERROR(retention_of_jobs.Start());

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
    }
    LASERD_ASSIGN_OR_RETURN(const std::string cert, ReadFileBytes("--tls-cert", o.tls_cert));
    LASERD_ASSIGN_OR_RETURN(const std::string key, ReadFileBytes("--tls-key", o.tls_key));
    LASERD_RETURN_IF_ERROR(CheckTlsKeyPair(cert, key));
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (!o.tls_client_ca.empty()) {
      LASERD_ASSIGN_OR_RETURN(ssl.pem_root_certs,
                              ReadFileBytes("--tls-client-ca", o.tls_client_ca));
      LASERD_RETURN_IF_ERROR(CheckTlsClientCa(ssl.pem_root_certs));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  } else {
    if (!o.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    }
    creds = grpc::InsecureServerCredentials();
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  SweepServiceImpl sweeps(&state);
  ModelServiceImpl models(&state);
  DatasetServiceImpl datasets(&state);
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(o.listen, creds, &port);
  b.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
  b.SetMaxSendMessageSize(static_cast<int>(o.max_message_bytes));
  b.RegisterService(&sweeps);
  b.RegisterService(&models);
  b.RegisterService(&datasets);
  // A request that does not parse: INVALID_ARGUMENT, logged and counted.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<MalformedRequestInterceptorFactory>(&state.prometheus));
  b.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(absl::StrCat("--listen: cannot listen on ", o.listen));
  }
  // grpc.health.v1, for "" and each laser.v1 service: SERVING while the model
  // is resident and the job store takes writes (ServingHealth).
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  state.health.SetObserver([health](bool serving) {
    health->SetServingStatus(serving);
    for (const char* svc :
         {"laser.v1.SweepService", "laser.v1.ModelService", "laser.v1.DatasetService"}) {
      health->SetServingStatus(svc, serving);
    }
  });
  spdlog::info("listening on {} (gRPC{}{}), state in {}", o.listen,
               o.tls_cert.empty() ? "" : ", TLS",
               o.tls_client_ca.empty() ? "" : ", client certificates required", o.state_dir);

  // HTTP: the dashboard, Prometheus metrics and the JSON API (server/http_api.h).
  httplib::Server http;
  std::thread http_thread;
  if (!o.http_listen.empty()) {
    std::vector<std::string> hp = absl::StrSplit(o.http_listen, absl::MaxSplits(':', 1));
    int hport = 0;
    if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &hport)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--http-listen: '", o.http_listen, "' is not HOST:PORT"));
    }
    RegisterHttpApi(http, state);
    if (!http.bind_to_port(hp[0].c_str(), hport)) {
      return absl::UnavailableError(
          absl::StrCat("--http-listen: cannot listen on ", o.http_listen));
    }
    http_thread = std::thread([&] { http.listen_after_bind(); });
    spdlog::info("HTTP on {} (dashboard /, /metrics, /api/...)", o.http_listen);
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::Status load = state.LoadModel();
  if (load.ok()) load = state.jobs.Start();
  if (load.ok()) {
    state.health.SetModelReady(true);
    spdlog::info("SERVING");
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    spdlog::info("shutting down");
  }
  health->Shutdown();
  retention_of_jobs.Stop();
  state.jobs.Stop();
  state.health.SetObserver(nullptr);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (http_thread.joinable()) {
    http.stop();
    http_thread.join();
  }
  return load;
}

}  // namespace

void AddServeCommand(CLI::App& app, Runner* run) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Serve LASER sweeps over gRPC (laser.v1) on a resident model");
  cmd->add_option("--model", o->model, "GGUF file or safetensors model directory")->required();
  auto devices = std::make_shared<std::string>();
  auto* device = cmd->add_option("--device", o->device, "auto | cpu | cuda[:N][/fp32|/bf16|/fp16]")
                     ->default_val("auto");
  cmd->add_option("--devices", *devices,
                  "Several devices, one resident replica each, a sweep's matrices spread across "
                  "them: a comma-separated list of --device values, or GPU indices ('0,1' = "
                  "cuda:0,cuda:1)")
      ->excludes(device);
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (safetensors models)");
  cmd->add_option("--listen", o->listen, "gRPC address HOST:PORT")->default_val("127.0.0.1:50051");
  cmd->add_option("--http-listen", o->http_listen,
                  "HTTP address HOST:PORT of the dashboard, /metrics and /api (empty: none)");
  cmd->add_option("--state-dir", o->state_dir, "Directory of the job store (SQLite)")->required();
  cmd->add_option("--data-dir", o->data_dirs,
                  "Directory whose JSONL files specs may name by dataset.path (repeatable)");
  cmd->add_option("--tokens", o->tokens_file,
                  "Bearer tokens, one per line: '<token> read|write [name]' (empty: no auth)");
  cmd->add_option("--tls-cert", o->tls_cert, "PEM server certificate (TLS)");
  cmd->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert");
  cmd->add_option("--tls-client-ca", o->tls_client_ca,
                  "PEM CA bundle; clients must present a certificate it signed (mTLS)");
  cmd->add_option("--max-message-bytes", o->max_message_bytes, "Largest gRPC message")
      ->default_val(16 << 20);
  cmd->add_option("--max-dataset-bytes", o->max_dataset_bytes, "Largest dataset upload")
      ->default_val(64 << 20);
  cmd->add_option("--dataset-quota-bytes", o->dataset_quota_bytes,
                  "Most bytes all uploaded datasets may take together; an upload over it is "
                  "RESOURCE_EXHAUSTED (0: no quota)")
      ->default_val(int64_t{1} << 30);
  cmd->add_option("--job-retention", o->job_retention,
                  "Delete finished jobs (and their results) that ended longer ago than this "
                  "duration (720h, 7d, 90m, ...), at start and periodically (empty or 0: never)");
  cmd->add_option("--max-grid", o->max_grid, "Most interventions in one sweep")
      ->default_val(100000);
  cmd->add_option("--max-queued", o->max_queued, "Most jobs waiting in the queue")
      ->default_val(1000);
  cmd->add_option("--cache-budget-mb", o->cache_budget_mb,
                  "Memory for the cached residual streams (prefix reuse), MiB")
      ->default_val(1024);
  // Testing only (not in --help): fills the "disk" of the job store after N
  // more pages (docs/server.md, "When the store cannot be written").
  cmd->add_option("--test-store-page-headroom", o->test_store_page_headroom,
                  "Testing only: cap the job store at its size plus N SQLite pages")
      ->group("");
  cmd->callback([o, devices, run]() {
    *run = [o, devices]() {
      absl::Status st = absl::OkStatus();
      if (!devices->empty()) {
        auto d = laser::ParseDeviceList(*devices);
        if (d.ok()) {
          o->devices = *std::move(d);
        } else {
          st = d.status();
        }
      }
      if (st.ok()) st = Serve(*o);
      if (!st.ok()) {
        spdlog::error("{}", st.ToString());
        return ExitCodeFor(st);
      }
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace laserd::server
