// laserd serve's edges that a client or an operator sees besides the API's
// answers, on loopback with the tiny Llama fixture: request bytes that do not
// parse (INVALID_ARGUMENT naming the method, a JSON log line, a Prometheus
// counter), gRPC's own log lines (JSON like every other line), and
// /api/status, which names the running job only to a request with a token.
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/server_harness.h"

namespace pb = ::laser::v1;

namespace {

using laserd_test::kRead;
using laserd_test::kWrite;
using laserd_test::Server;

grpc::ByteBuffer Bytes(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

void Next(grpc::CompletionQueue& cq) {
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
}

// Sends `bytes` as the one request message of `method` (a unary or
// server-streaming call) with the write token; the call's status.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& ch, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kWrite);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  Next(cq);
  call->WriteLast(Bytes(bytes), grpc::WriteOptions(), reinterpret_cast<void*>(2));
  Next(cq);
  // Read what comes (nothing after an error), else the status never arrives.
  for (;;) {
    grpc::ByteBuffer resp;
    call->Read(&resp, reinterpret_cast<void*>(3));
    void* tag;
    bool ok = false;
    if (!cq.Next(&tag, &ok) || !ok) break;
  }
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(4));
  Next(cq);
  return st;
}

// Client-streaming: a valid header, then `bytes` as the second message.
grpc::Status RawUpload(const std::shared_ptr<grpc::Channel>& ch, const std::string& bytes) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kWrite);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/laser.v1.DatasetService/UploadDataset", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  Next(cq);
  pb::UploadDatasetRequest head;
  head.mutable_header()->set_display_name("raw");
  call->Write(Bytes(head.SerializeAsString()), reinterpret_cast<void*>(2));
  Next(cq);
  call->WriteLast(Bytes(bytes), grpc::WriteOptions(), reinterpret_cast<void*>(3));
  Next(cq);
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(4));
  Next(cq);
  return st;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Every method of the three laser.v1 services: its gRPC path and whether its
// request is a stream.
std::vector<std::pair<std::string, bool>> AllMethods() {
  std::vector<std::pair<std::string, bool>> out;
  for (const char* service :
       {"laser.v1.SweepService", "laser.v1.ModelService", "laser.v1.DatasetService"}) {
    const google::protobuf::ServiceDescriptor* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    EXPECT_NE(s, nullptr) << service;
    if (s == nullptr) continue;
    for (int i = 0; i < s->method_count(); ++i) {
      out.emplace_back(absl::StrCat("/", s->full_name(), "/", s->method(i)->name()),
                       s->method(i)->client_streaming());
    }
  }
  return out;
}

class ServerObservabilityTest : public laserd_test::ServerFixture {
 protected:
  std::shared_ptr<grpc::Channel> Channel() {
    return server_->NewChannel(grpc::InsecureChannelCredentials());
  }
  std::string Metrics() { return server_->Http("/metrics"); }
  nlohmann::json Status(const char* authorization) {
    httplib::Client c("127.0.0.1", server_->http_port_);
    httplib::Headers h;
    if (authorization != nullptr) h.emplace("Authorization", authorization);
    auto r = c.Get("/api/status", h);
    EXPECT_TRUE(r);
    if (!r) return nlohmann::json();
    EXPECT_EQ(r->status, 200) << r->body;
    return nlohmann::json::parse(r->body);
  }
};

// Bytes that are not a valid protobuf of any message (a truncated
// length-delimited field, an unterminated varint tag, a varint field without
// its value) to every
// unary and server-streaming RPC: INVALID_ARGUMENT naming the method and its
// request type, before any handler (and its token check) runs; each one is
// counted by method and logged as one JSON line.
TEST_F(ServerObservabilityTest, MalformedRequestsAreInvalidArgumentLoggedAndCounted) {
  auto ch = Channel();
  const std::vector<std::string> garbage = {std::string("\x0a\x05"
                                                        "ab",
                                                        4),
                                            std::string("\xff\xff", 2), std::string("\x08", 1)};
  int unary = 0;
  for (const auto& [method, client_streaming] : AllMethods()) {
    if (client_streaming) continue;
    ++unary;
    const std::string name = method.substr(method.find_last_of('/') + 1);
    const google::protobuf::MethodDescriptor* d =
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
            absl::StrCat(method.substr(1, method.find_last_of('/') - 1), ".", name));
    ASSERT_NE(d, nullptr) << method;
    for (const std::string& g : garbage) {
      const grpc::Status st = RawCall(ch, method, g);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
      EXPECT_EQ(st.error_message(),
                absl::StrCat(name, ": the request is not a valid ", d->input_type()->full_name(),
                             " (its bytes do not parse as that protobuf message)"));
    }
  }
  EXPECT_EQ(unary, 14);  // every method but UploadDataset
  const std::string metrics = Metrics();
  for (const auto& [method, client_streaming] : AllMethods()) {
    if (client_streaming) continue;
    const std::string name = method.substr(method.find_last_of('/') + 1);
    EXPECT_NE(metrics.find(
                  absl::StrCat("laserd_rpc_malformed_requests_total{method=\"", name, "\"} 3\n")),
              std::string::npos)
        << name << "\n"
        << metrics;
  }
  // A valid request still works, and is not counted as malformed.
  pb::ListJobsRequest ok_req;
  ok_req.set_page_size(3);
  EXPECT_TRUE(RawCall(ch, "/laser.v1.SweepService/ListJobs", ok_req.SerializeAsString()).ok());
  EXPECT_NE(Metrics().find("laserd_rpc_malformed_requests_total{method=\"ListJobs\"} 3\n"),
            std::string::npos);

  int logged = 0;
  for (const std::string& line : Lines(server_->Log())) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    const std::string msg = j.value("msg", "");
    if (msg.find("malformed request") != std::string::npos) {
      ++logged;
      EXPECT_EQ(j["level"], "warning") << line;
      EXPECT_EQ(j["logger"], "laserd") << line;
      EXPECT_NE(msg.find("the request is not a valid laser.v1."), std::string::npos) << line;
    }
  }
  EXPECT_EQ(logged, 3 * unary);
  EXPECT_EQ(server_->Health(), 1);
}

// UploadDataset's requests are a stream: gRPC hands a message that does not
// parse to the reactor as the end of the stream, so the upload is refused as
// incomplete (no chunk arrived), never stored.
TEST_F(ServerObservabilityTest, AMalformedUploadMessageStoresNothing) {
  auto ch = Channel();
  const grpc::Status st = RawUpload(ch, std::string("\x12\x05"
                                                    "ab",
                                                    4));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_EQ(st.error_message(), "dataset: the upload is empty (no bytes)");
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kRead);
  pb::ListDatasetsResponse resp;
  ASSERT_TRUE(server_->datasets().ListDatasets(&ctx, pb::ListDatasetsRequest(), &resp).ok());
  EXPECT_EQ(resp.datasets_size(), 0);
}

// gRPC's own log lines (GRPC_VERBOSITY=debug makes it log at start and for a
// request that does not parse) are JSON lines with "logger":"grpc", like
// every other line on the server's stderr.
TEST(ServerGrpcLogTest, EveryLineOfStderrIsJsonIncludingGrpcsOwn) {
  const auto root =
      std::filesystem::temp_directory_path() / absl::StrCat("laserd_ServerGrpcLogTest_", getpid());
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "data");
  laserd::test_support::MakeTinyLlamaDir(root / "model");
  std::ofstream(root / "data" / "small.jsonl") << laserd::test_support::CapitalsDataset(20);
  {
    Server server(root, root / "model", root / "data");
    setenv("GRPC_VERBOSITY", "debug", 1);
    server.Start();
    unsetenv("GRPC_VERBOSITY");
    auto ch = server.NewChannel(grpc::InsecureChannelCredentials());
    EXPECT_EQ(RawCall(ch, "/laser.v1.SweepService/GetJob", "\xff").error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    server.Kill(SIGTERM);
    int grpc_lines = 0, lines = 0;
    for (const std::string& line : Lines(server.Log())) {
      ++lines;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
      ASSERT_TRUE(j.is_object()) << line;
      for (const char* k : {"time", "level", "logger", "msg"}) {
        EXPECT_TRUE(j.contains(k)) << k << " missing: " << line;
      }
      if (j["logger"] == "grpc") ++grpc_lines;
    }
    EXPECT_GT(lines, 0);
    EXPECT_GT(grpc_lines, 0) << server.Log();
    // gRPC's own note on the request that did not parse.
    EXPECT_NE(server.Log().find("Failed to deserialize message."), std::string::npos);
  }
  std::filesystem::remove_all(root);
}

// With --tokens, /api/status answers without a token (probes), but names the
// running job only to a request with a valid read or write token.
TEST_F(ServerObservabilityTest, StatusNamesTheRunningJobOnlyWithAToken) {
  pb::SweepSpec s;
  s.mutable_dataset()->set_path((root_ / "data" / "big.jsonl").string());
  for (int i = 1; i <= 100; ++i) s.mutable_rho()->add_values(i / 100.0);
  s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
  pb::Job j;
  ASSERT_TRUE(server_->Create(s, &j).ok());
  for (int i = 0; i < 2000 && server_->Get(j.id()).state() == pb::JOB_STATE_QUEUED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::string read = absl::StrCat("Bearer ", kRead);
  const std::string write = absl::StrCat("Bearer ", kWrite);
  const nlohmann::json with_read = Status(read.c_str());
  const nlohmann::json with_write = Status(write.c_str());
  const nlohmann::json without = Status(nullptr);
  const nlohmann::json unknown = Status("Bearer not-a-token");
  const nlohmann::json malformed = Status("Basic abc");
  pb::Job out;
  ASSERT_TRUE(server_->Cancel(j.id(), &out).ok());
  ASSERT_EQ(with_read["jobs"]["running"], 1) << with_read.dump();
  EXPECT_EQ(with_read["running_job"], j.id());
  EXPECT_EQ(with_write["running_job"], j.id());
  for (const nlohmann::json* st : {&without, &unknown, &malformed}) {
    EXPECT_FALSE(st->contains("running_job")) << st->dump();
    EXPECT_EQ((*st)["jobs"]["running"], 1) << st->dump();
    EXPECT_TRUE((*st)["serving"].get<bool>());
    EXPECT_EQ(st->dump().find(j.id()), std::string::npos) << st->dump();
  }
}

}  // namespace
