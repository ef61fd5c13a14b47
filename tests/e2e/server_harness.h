// Test harness for `laserd serve` (tests/e2e/server_*_test.cc): starts the real
// server process on a free loopback port with a temp state dir and two bearer
// tokens, waits for grpc.health.v1 SERVING, and wraps the generated stubs.
#ifndef LASERD_TESTS_E2E_SERVER_HARNESS_H_
#define LASERD_TESTS_E2E_SERVER_HARNESS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/laser/intervention.h"
#include "engine/model/loaded_model.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "kernels/svd.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "tests/support/fixtures.h"

namespace laserd_test {

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

inline constexpr const char* kWrite = "w-secret-token-1";
inline constexpr const char* kRead = "r-secret-token-2";

inline int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

inline bool PortOpen(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(s);
  return ok;
}

inline std::string JsonOf(const google::protobuf::Message& m) {
  std::string s;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &s, o);
  return s;
}

// What a result is, without where and when it was computed.
inline pb::Result Comparable(pb::Result r) {
  r.clear_job_id();
  r.clear_svd_duration();
  r.clear_eval_duration();
  r.clear_create_time();
  return r;
}

// Every spectrum equals the exact singular values of that matrix of the
// unedited model in `model_dir` (GetSpectrum must never see an edit).
inline void ExpectSpectraOfUneditedModel(const fs::path& model_dir,
                                         const std::vector<pb::Spectrum>& spectra) {
  auto lm = laserd::model::LoadModel(model_dir.string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  for (const pb::Spectrum& s : spectra) {
    auto w = laserd::laser::MatrixToHost(lm->model.get(), s.matrix_type(), s.layer());
    ASSERT_TRUE(w.ok());
    laserd::kernels::SvdOptions o;
    o.method = laserd::kernels::SvdMethod::kExact;
    auto svd = laserd::kernels::ComputeTruncatedSvd(w->data(), s.rows(), s.cols(), 1, o);
    ASSERT_TRUE(svd.ok());
    ASSERT_EQ(static_cast<size_t>(s.singular_values_size()), svd->spectrum.size());
    for (int i = 0; i < s.singular_values_size(); ++i) {
      EXPECT_NEAR(s.singular_values(i), svd->spectrum[i], 1e-5 * svd->spectrum[0])
          << s.matrix_type() << " layer " << s.layer() << " sigma " << i;
    }
  }
}

class Server {
 public:
  Server(fs::path root, fs::path model, fs::path data_dir)
      : root_(root), model_(model), data_(data_dir) {
    port_ = FreePort();
    http_port_ = FreePort();
    std::ofstream(root_ / "tokens") << "# tokens\n"
                                    << kWrite << " write alice\n"
                                    << kRead << " read bob\n";
  }
  ~Server() { Kill(SIGKILL); }
  // Extra flags of `laserd serve` and the client's channel credentials (TLS tests).
  std::vector<std::string> extra_args;
  // The device flags (e.g. {"--devices", "cpu,cpu"}).
  std::vector<std::string> device_args = {"--device", "cpu"};
  std::shared_ptr<grpc::ChannelCredentials> creds;
  // Called once the gRPC port accepts, before waiting for SERVING.
  std::function<void()> on_port_open;
  std::shared_ptr<grpc::Channel> NewChannel(std::shared_ptr<grpc::ChannelCredentials> c) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), c);
  }
  void Start() {
    const std::string bin = std::string(LASERD_BINARY_DIR) + "/server/laserd";
    const std::string log = (root_ / "server.log").string();
    const std::vector<std::string> args = {bin,
                                           "serve",
                                           "--model",
                                           model_.string(),
                                           "--listen",
                                           absl::StrCat("127.0.0.1:", port_),
                                           "--http-listen",
                                           absl::StrCat("127.0.0.1:", http_port_),
                                           "--state-dir",
                                           (root_ / "state").string(),
                                           "--data-dir",
                                           data_.string(),
                                           "--tokens",
                                           (root_ / "tokens").string(),
                                           "--max-dataset-bytes",
                                           "20000",
                                           "--max-grid",
                                           "2000"};
    std::vector<std::string> all = args;
    all.insert(all.end(), device_args.begin(), device_args.end());
    all.insert(all.end(), extra_args.begin(), extra_args.end());
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = fopen(log.c_str(), "a");
      dup2(fileno(f), 2);
      dup2(fileno(f), 1);
      std::vector<char*> argv;
      for (const auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    // Connect only once the port accepts: a channel whose first attempt is
    // refused waits out gRPC's reconnect backoff (seconds).
    for (int i = 0; i < 2400 && !PortOpen(port_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   creds ? creds : grpc::InsecureChannelCredentials());
    sweeps_ = pb::SweepService::NewStub(channel_);
    models_ = pb::ModelService::NewStub(channel_);
    datasets_ = pb::DatasetService::NewStub(channel_);
    if (on_port_open) on_port_open();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Health() == 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "server did not become SERVING; log:\n" << Log();
  }
  void Kill(int sig) {
    if (pid_ > 0) {
      kill(pid_, sig);
      int st;
      waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  std::string Log() const {
    std::ifstream f(root_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  // grpc.health.v1.Health/Check with service "" (no token): the status enum
  // value (1 = SERVING, 2 = NOT_SERVING), -1 on an RPC error.
  int Health() {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::CompletionQueue cq;
    grpc::Slice empty("");
    grpc::ByteBuffer req(&empty, 1), resp;
    auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", req, &cq);
    call->StartCall();
    grpc::Status st;
    call->Finish(&resp, &st, reinterpret_cast<void*>(1));
    void* tag;
    bool ok;
    cq.Next(&tag, &ok);
    if (!st.ok()) return -1;
    std::vector<grpc::Slice> slices;
    resp.Dump(&slices);
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    // HealthCheckResponse{status = 1}: field 1 varint.
    if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
    return bytes.empty() ? 0 : -2;
  }
  // GET `path` on the HTTP port, with a bearer token when `token` is set.
  std::string Http(const std::string& path, const char* token = nullptr) {
    httplib::Client c("127.0.0.1", http_port_);
    httplib::Headers headers;
    if (token) headers.emplace("Authorization", absl::StrCat("Bearer ", token));
    auto r = c.Get(path.c_str(), headers);
    return r ? r->body : "";
  }
  static void Auth(grpc::ClientContext* ctx, const char* token = kWrite) {
    if (token) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  pb::SweepService::Stub& sweeps() { return *sweeps_; }
  pb::ModelService::Stub& models() { return *models_; }
  pb::DatasetService::Stub& datasets() { return *datasets_; }

  grpc::Status Create(const pb::SweepSpec& spec, pb::Job* job, const std::string& rid = "",
                      const char* token = kWrite) {
    grpc::ClientContext ctx;
    Auth(&ctx, token);
    pb::CreateSweepRequest req;
    *req.mutable_spec() = spec;
    req.set_request_id(rid);
    return sweeps_->CreateSweep(&ctx, req, job);
  }
  pb::Job Get(const std::string& id) {
    grpc::ClientContext ctx;
    Auth(&ctx, kRead);
    pb::GetJobRequest req;
    req.set_job_id(id);
    pb::Job j;
    EXPECT_TRUE(sweeps_->GetJob(&ctx, req, &j).ok());
    return j;
  }
  // CancelJob with the write token; the job as CancelJob returned it in `out`.
  grpc::Status Cancel(const std::string& id, pb::Job* out) {
    grpc::ClientContext ctx;
    Auth(&ctx);
    pb::CancelJobRequest req;
    req.set_job_id(id);
    return sweeps_->CancelJob(&ctx, req, out);
  }
  // Watches from `from` until the stream ends (or `stop_after` results);
  // returns the events.
  std::vector<pb::WatchJobEvent> Watch(const std::string& id, int64_t from, grpc::Status* st,
                                       int stop_after = -1,
                                       std::function<void()> on_stop = nullptr) {
    grpc::ClientContext ctx;
    Auth(&ctx, kRead);
    pb::WatchJobRequest req;
    req.set_job_id(id);
    req.set_from_result_index(from);
    auto reader = sweeps_->WatchJob(&ctx, req);
    std::vector<pb::WatchJobEvent> evs;
    pb::WatchJobEvent ev;
    int results = 0;
    while (reader->Read(&ev)) {
      evs.push_back(ev);
      if (ev.has_result() && ++results == stop_after) {
        if (on_stop) on_stop();
        ctx.TryCancel();
        break;
      }
    }
    *st = reader->Finish();
    return evs;
  }
  pb::Dataset Upload(const std::string& bytes, grpc::Status* st, const char* token = kWrite,
                     size_t chunk = 1000, const std::string& name = "upload") {
    grpc::ClientContext ctx;
    Auth(&ctx, token);
    pb::Dataset d;
    auto w = datasets_->UploadDataset(&ctx, &d);
    pb::UploadDatasetRequest h;
    h.mutable_header()->set_display_name(name);
    w->Write(h);
    for (size_t i = 0; i < bytes.size(); i += chunk) {
      pb::UploadDatasetRequest c;
      c.set_chunk(bytes.substr(i, chunk));
      if (!w->Write(c)) break;
    }
    w->WritesDone();
    *st = w->Finish();
    return d;
  }

  int port_, http_port_;

 private:
  fs::path root_, model_, data_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::SweepService::Stub> sweeps_;
  std::unique_ptr<pb::ModelService::Stub> models_;
  std::unique_ptr<pb::DatasetService::Stub> datasets_;
};

// A test with a temporary root: the tiny Llama fixture in model/, data/ with
// small.jsonl (20 records) and big.jsonl (60), and a started Server on them.
// The root is removed after a test that passed.
class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat(
                "laserd_", ::testing::UnitTest::GetInstance()->current_test_suite()->name(), "_",
                getpid(), "_", ::testing::UnitTest::GetInstance()->random_seed(), "_", counter_++);
    fs::remove_all(root_);
    fs::create_directories(root_ / "data");
    laserd::test_support::MakeTinyLlamaDir(root_ / "model");
    std::ofstream(root_ / "data" / "small.jsonl") << laserd::test_support::CapitalsDataset(20);
    std::ofstream(root_ / "data" / "big.jsonl") << laserd::test_support::CapitalsDataset(60);
    server_ = std::make_unique<Server>(root_, root_ / "model", root_ / "data");
    server_->Start();
  }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) fs::remove_all(root_);
  }
  static inline int counter_ = 0;
  fs::path root_;
  std::unique_ptr<Server> server_;
};

}  // namespace laserd_test

#endif  // LASERD_TESTS_E2E_SERVER_HARNESS_H_
