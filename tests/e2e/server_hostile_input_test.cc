// laserd serve against hostile or careless requests, on loopback with the tiny
// Llama fixture: nothing a client sends may end the process or produce a 500,
// and a job that cannot run ends FAILED with the reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/http_api.h"
#include "tests/e2e/server_harness.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd_test::kRead;
using laserd_test::kWrite;
using laserd_test::Server;

// Sends `request` verbatim to 127.0.0.1:`port` and returns everything the
// server answers before it closes the connection ("" when it answered nothing).
std::string RawHttp(int port, const std::string& request) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    return "";
  }
  timeval tv{5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)!write(s, request.data(), request.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(s, buf, sizeof buf)) > 0;) out.append(buf, n);
  close(s);
  return out;
}

// The status code of an HTTP response ("HTTP/1.1 404 Not Found" -> 404), -1 if none.
int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return -1;
  return std::atoi(response.substr(9, 3).c_str());
}

std::string BodyOf(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

class ServerHostileInputTest : public laserd_test::ServerFixture {
 protected:
  pb::SweepSpec Spec(const std::string& path) {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path(path);
    s.mutable_rho()->add_values(0.5);
    s.add_matrix_types("attn.q");
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    return s;
  }
};

// Every HTTP route and the error handler, with invalid UTF-8 in the path, the
// path parameters and the query (percent-encoded and as raw bytes), with and
// without a token: each answer is a 4xx with a JSON error body, and the server
// stays SERVING.
TEST_F(ServerHostileInputTest, InvalidUtf8InAnyHttpRequestIsA4xxAndNeverKillsTheServer) {
  const std::vector<std::string> targets = {
      "/%FF",
      "/\xff",
      "/api/%FF",
      "/api/jobs/%FF",
      "/api/jobs/\xff\xfe",
      "/api/jobs/%FF/results",
      "/api/jobs/job-x/results?kind=%FF",
      "/api/jobs/job-x/results?order_by=%FF",
      "/api/jobs/job-x/results?layer=%FF",
      "/api/jobs/job-x/results?page_size=%FF",
      "/api/jobs/job-x/results?page_token=%FF",
      "/api/jobs/job-x/results?%FF=1",
      "/api/jobs?%FF=1",
      "/api/status?%FF=1",
      "/api/model?%FF=1",
      "/api/spectrum?matrix_type=%FF&layer=0",
      "/api/spectrum?matrix_type=attn.q&layer=%FF",
      "/index.html%FF",
      "/metrics%FF",
  };
  for (const char* method : {"GET", "POST", "DELETE"}) {
    for (const std::string& target : targets) {
      for (const char* token : {static_cast<const char*>(nullptr), kRead}) {
        std::string req = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if (token != nullptr) absl::StrAppend(&req, "Authorization: Bearer ", token, "\r\n");
        absl::StrAppend(&req, "Content-Length: 0\r\nConnection: close\r\n\r\n");
        const std::string what = absl::StrCat(method, " ", target, token ? " (token)" : "");
        const std::string resp = RawHttp(server_->http_port_, req);
        const int code = StatusOf(resp);
        EXPECT_GE(code, 400) << what << "\n" << resp;
        EXPECT_LT(code, 500) << what << "\n" << resp;
        const auto body = nlohmann::json::parse(BodyOf(resp), nullptr, /*allow_exceptions=*/false);
        EXPECT_TRUE(body.is_object() && body.contains("error")) << what << "\n" << resp;
        ASSERT_EQ(server_->Health(), 1) << "after " << what << "\n" << server_->Log();
      }
    }
  }
  // Invalid bytes in a header value and in the method.
  for (const std::string& req :
       {std::string("GET /api/jobs HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n"
                    "Connection: close\r\n\r\n"),
        std::string("G\xff T /api/jobs HTTP/1.1\r\nConnection: close\r\n\r\n")}) {
    const int code = StatusOf(RawHttp(server_->http_port_, req));
    EXPECT_GE(code, 400);
    EXPECT_LT(code, 500);
    ASSERT_EQ(server_->Health(), 1) << server_->Log();
  }
}

// A dataset path that is a directory: CreateSweep refuses it with a precise
// status, and a queued job whose file becomes a directory before it runs ends
// FAILED with the reason; the server stays SERVING, also after a restart.
TEST_F(ServerHostileInputTest, DatasetPathThatIsADirectoryFailsTheJobNotTheServer) {
  std::ofstream(root_ / "data" / "later.jsonl") << laserd::test_support::CapitalsDataset(20);
  fs::create_directories(root_ / "data" / "dir.jsonl");

  pb::Job j;
  grpc::Status st = server_->Create(Spec((root_ / "data" / "dir.jsonl").string()), &j);
  EXPECT_TRUE(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              st.error_code() == grpc::StatusCode::FAILED_PRECONDITION)
      << st.error_code() << " " << st.error_message();
  EXPECT_NE(st.error_message().find("directory"), std::string::npos) << st.error_message();
  ASSERT_EQ(server_->Health(), 1) << server_->Log();

  // A long job runs while a second one waits; the second's file becomes a
  // directory, then the first is cancelled so that the second runs.
  pb::SweepSpec long_spec = Spec((root_ / "data" / "big.jsonl").string());
  long_spec.clear_matrix_types();
  for (int i = 1; i <= 100; ++i) long_spec.mutable_rho()->add_values(i / 100.0);
  pb::Job first, second;
  ASSERT_TRUE(server_->Create(long_spec, &first).ok());
  ASSERT_TRUE(server_->Create(Spec((root_ / "data" / "later.jsonl").string()), &second).ok());
  ASSERT_EQ(server_->Get(second.id()).state(), pb::JOB_STATE_QUEUED)
      << "the first job ended before the second could be changed";
  fs::remove(root_ / "data" / "later.jsonl");
  fs::create_directories(root_ / "data" / "later.jsonl");
  pb::Job cancelled;
  ASSERT_TRUE(server_->Cancel(first.id(), &cancelled).ok());
  server_->Watch(second.id(), 0, &st);
  ASSERT_EQ(server_->Health(), 1) << server_->Log();
  pb::Job done = server_->Get(second.id());
  EXPECT_EQ(done.state(), pb::JOB_STATE_FAILED);
  EXPECT_NE(done.error().message().find("directory"), std::string::npos) << done.error().message();
  server_->Kill(SIGKILL);
  server_->Start();
  ASSERT_EQ(server_->Health(), 1) << server_->Log();
  EXPECT_EQ(server_->Get(second.id()).state(), pb::JOB_STATE_FAILED);
}

// The bearer scheme is case-insensitive (RFC 7235), on gRPC and HTTP.
TEST_F(ServerHostileInputTest, TheBearerSchemeIsCaseInsensitive) {
  for (const char* scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    grpc::ClientContext c;
    c.AddMetadata("authorization", absl::StrCat(scheme, " ", kRead));
    pb::ListJobsRequest r;
    pb::ListJobsResponse out;
    const grpc::Status st = server_->sweeps().ListJobs(&c, r, &out);
    EXPECT_TRUE(st.ok()) << scheme << ": " << st.error_message();
    const std::string resp =
        RawHttp(server_->http_port_,
                absl::StrCat("GET /api/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: ", scheme, " ",
                             kRead, "\r\nConnection: close\r\n\r\n"));
    EXPECT_EQ(StatusOf(resp), 200) << scheme << "\n" << resp;
  }
  grpc::ClientContext c;
  c.AddMetadata("authorization", absl::StrCat("Basic ", kRead));
  pb::ListJobsResponse out;
  EXPECT_EQ(server_->sweeps().ListJobs(&c, pb::ListJobsRequest(), &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// A dataset path with an embedded NUL is refused, not truncated at the NUL.
TEST_F(ServerHostileInputTest, ADatasetPathWithANulIsRefused) {
  pb::Job j;
  const std::string path = (root_ / "data" / "small.jsonl").string() + std::string("\0.txt", 5);
  const grpc::Status st = server_->Create(Spec(path), &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("NUL"), std::string::npos) << st.error_message();
}

// A TLS certificate or key that cannot be used is named with its cause, and
// `laserd serve` exits non-zero without listening.
TEST_F(ServerHostileInputTest, ATlsFileProblemIsReportedWithItsCause) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
  const fs::path dir = root_ / "tls";
  fs::create_directories(dir);
  for (const char* name : {"a", "b"}) {
    ASSERT_EQ(std::system(absl::StrCat("cd ", dir.string(),
                                       " && openssl req -x509 -newkey "
                                       "rsa:2048 -nodes -keyout ",
                                       name, "_key.pem -out ", name,
                                       "_cert.pem -days 2 -subj /CN=localhost >/dev/null 2>&1")
                              .c_str()),
              0);
  }
  std::ofstream(dir / "junk.pem") << "not a PEM file\n";
  struct Case {
    std::string cert, key, want;
  };
  const std::vector<Case> cases = {
      {"junk.pem", "a_key.pem", "--tls-cert"},
      {"a_cert.pem", "junk.pem", "--tls-key"},
      {"a_cert.pem", "b_key.pem", "does not match"},
      {"a_key.pem", "a_key.pem", "--tls-cert"},
  };
  for (const Case& c : cases) {
    const std::string log = (root_ / "tls.log").string();
    const int rc = laserd::test_support::Shell(
        absl::StrCat("timeout 20 ", laserd::test_support::LaserdBinary(), " serve --model ",
                     (root_ / "model").string(), " --device cpu --listen 127.0.0.1:0 --state-dir ",
                     (root_ / "tls_state").string(), " --tls-cert ", (dir / c.cert).string(),
                     " --tls-key ", (dir / c.key).string(), " >", log, " 2>&1"));
    const std::string out = laserd::test_support::ReadFile(log);
    EXPECT_NE(rc, 0) << c.cert << " " << c.key;
    EXPECT_NE(rc, 124) << c.cert << " " << c.key << ": laserd serve started";
    EXPECT_NE(out.find(c.want), std::string::npos) << c.cert << " " << c.key << "\n" << out;
    EXPECT_EQ(out.find("cannot listen"), std::string::npos) << out;
  }
}

// A Range header (found by fuzz_http): an error body, the error handler's or a
// route's, is always sent whole, as JSON without Content-Range; a JSON route
// answers the range as a 206 with Content-Range, never a part of the JSON as a
// 200.
TEST_F(ServerHostileInputTest, ARangeHeaderNeverSlicesAnErrorOrAWhole200) {
  auto get = [&](const std::string& target, bool token) {
    return RawHttp(server_->http_port_,
                   absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                token ? absl::StrCat("Authorization: Bearer ", kRead, "\r\n") : "",
                                "Range: bytes=0-10\r\nConnection: close\r\n\r\n"));
  };
  for (const auto& [target, token, code] :
       std::vector<std::tuple<std::string, bool, int>>{{"/nowhere", false, 404},
                                                       {"/api/jobs/job-none", true, 404},
                                                       {"/api/jobs/job-none/results", false, 401},
                                                       {"/api/spectrum?layer=0", true, 400}}) {
    const std::string resp = get(target, token);
    EXPECT_EQ(StatusOf(resp), code) << target << "\n" << resp;
    EXPECT_EQ(resp.find("Content-Range"), std::string::npos) << target << "\n" << resp;
    const auto body = nlohmann::json::parse(BodyOf(resp), nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << target << "\n" << resp;
    EXPECT_EQ(body["error"]["code"], code) << target;
  }
  const std::string status = get("/api/status", false);
  EXPECT_EQ(StatusOf(status), 206) << status;
  EXPECT_NE(status.find("Content-Range: bytes 0-10/"), std::string::npos) << status;
  EXPECT_EQ(BodyOf(status).size(), 11u) << status;
  EXPECT_EQ(BodyOf(status).substr(0, 1), "{") << status;
}

// A request body over the HTTP side's limit (no route takes one; httplib reads
// the body of a POST, PUT, PATCH or DELETE before routing) is refused with 413
// and a JSON error instead of being read into memory; one at the limit is read
// and answered (404: no route).
TEST_F(ServerHostileInputTest, AnHttpRequestBodyOverTheLimitIs413) {
  const size_t limit = laserd::server::kMaxHttpBodyBytes;
  for (const size_t n : {limit, limit + 1}) {
    const std::string resp =
        RawHttp(server_->http_port_,
                absl::StrCat("POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ", n,
                             "\r\nConnection: close\r\n\r\n", std::string(n, 'x')));
    const int code = n > limit ? 413 : 404;
    EXPECT_EQ(StatusOf(resp), code) << n << "\n" << resp.substr(0, 300);
    const auto body = nlohmann::json::parse(BodyOf(resp), nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << resp.substr(0, 300);
    EXPECT_EQ(body["error"]["code"], code) << resp.substr(0, 300);
  }
  ASSERT_EQ(server_->Health(), 1) << server_->Log();
}

}  // namespace
