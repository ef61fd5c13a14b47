// laserctl's connection to the server (connection.h).
#include "client/connection.h"

#include <chrono>
#include <cstdlib>

#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "client/failure.h"
#include "client/files.h"

namespace laserd::client {

namespace pb = ::laser::v1;

void AddConnectionFlags(CLI::App& app, ConnectionOptions* o) {
  app.add_option("--server", o->server,
                 "HOST:PORT of laserd (env LASERD_SERVER; default localhost:50051)");
  app.add_option("--token", o->token, "Bearer token (env LASERD_TOKEN)");
  app.add_option("--token-file", o->token_file, "File holding the bearer token");
  app.add_option("--tls-ca", o->tls_ca, "PEM root certificates; enables TLS");
  app.add_flag("--tls", o->tls, "Use TLS with the system's root certificates");
  app.add_option("--timeout", o->timeout, "Deadline of each unary call in seconds (0: none)")
      ->default_val(30);
}

absl::Status Connection::Init() {
  if (o_.server.empty()) {
    const char* env = std::getenv("LASERD_SERVER");
    o_.server = env && *env ? env : "localhost:50051";
  }
  if (o_.token.empty() && !o_.token_file.empty()) {
    LASERD_ASSIGN_OR_RETURN(const std::string t, ReadFile(o_.token_file));
    o_.token = std::string(absl::StripAsciiWhitespace(t));
  }
  if (o_.token.empty()) {
    const char* env = std::getenv("LASERD_TOKEN");
    if (env) o_.token = env;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!o_.tls_ca.empty() || o_.tls) {
    grpc::SslCredentialsOptions opts;
    if (!o_.tls_ca.empty()) {
      LASERD_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadFile(o_.tls_ca));
    }
    creds = grpc::SslCredentials(opts);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  channel_ = grpc::CreateCustomChannel(o_.server, creds, args);
  sweeps_ = pb::SweepService::NewStub(channel_);
  models_ = pb::ModelService::NewStub(channel_);
  datasets_ = pb::DatasetService::NewStub(channel_);
  return absl::OkStatus();
}

std::unique_ptr<grpc::ClientContext> Connection::Context(bool streaming) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!o_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + o_.token);
  if (!streaming && o_.timeout > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(o_.timeout * 1000)));
  }
  return ctx;
}

int WithConnection(const ConnectionOptions& o, const std::function<int(Connection&)>& command) {
  Connection conn(o);
  if (absl::Status st = conn.Init(); !st.ok()) return FailStatus(st);
  return command(conn);
}

}  // namespace laserd::client
