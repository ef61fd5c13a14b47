// laserd serve --devices cpu,cpu (several devices in one process):
// the real server with two CPU replicas of the tiny Llama fixture. DescribeModel
// and /api/status list both replicas; a sweep with composition streams the
// results of the headless one-device `laserd sweep`, in order; spectra
// requested while it runs are those of the unedited matrices.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/eval/run.h"
#include "engine/laser/intervention.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "kernels/svd.h"
#include "nlohmann/json.hpp"
#include "server/sweep_io.h"
#include "tests/e2e/server_harness.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd_test::Comparable;
using laserd_test::JsonOf;
using laserd_test::kRead;
using laserd_test::Server;

TEST(ServerMultiDeviceTest, TwoReplicasServeTheResultsOfOneDevice) {
  const fs::path root =
      fs::temp_directory_path() / absl::StrCat("laserd_server_multi_test_", getpid());
  fs::remove_all(root);
  fs::create_directories(root / "data");
  laserd::test_support::MakeTinyLlamaDir(root / "model");
  std::ofstream(root / "data" / "d.jsonl") << laserd::test_support::CapitalsDataset(40);
  // OpenBLAS's results depend on its thread count in the last bits: the
  // server's replicas and the headless run use one thread each.
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  Server server(root, root / "model", root / "data");
  server.device_args = {"--devices", "cpu,cpu"};
  server.Start();

  // Both replicas are reported.
  pb::ModelInfo mi;
  {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ASSERT_TRUE(server.models().DescribeModel(&ctx, pb::DescribeModelRequest(), &mi).ok());
  }
  ASSERT_EQ(mi.devices_size(), 2);
  EXPECT_EQ(mi.devices(0), "cpu");
  EXPECT_EQ(mi.devices(1), "cpu");
  EXPECT_EQ(mi.device(), pb::DEVICE_CPU);
  EXPECT_EQ(mi.memory().weights_bytes(), 2 * 4 * mi.parameter_count());
  const nlohmann::json status = nlohmann::json::parse(server.Http("/api/status"));
  EXPECT_EQ(status["devices"], nlohmann::json::array({"cpu", "cpu"}));
  EXPECT_NE(server.Log().find("2 CPU replicas; OpenBLAS threads from OPENBLAS_NUM_THREADS=1"),
            std::string::npos)
      << server.Log();

  // A sweep with composition, dense edits at rho >= 0.7 (the spectra below
  // must not see them).
  pb::SweepSpec spec;
  spec.mutable_dataset()->set_path((root / "data" / "d.jsonl").string());
  for (double r : {1.0, 0.9, 0.8, 0.7, 0.5, 0.3, 0.1}) spec.mutable_rho()->add_values(r);
  spec.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
  spec.mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
  pb::Job job;
  ASSERT_TRUE(server.Create(spec, &job).ok());
  std::vector<pb::WatchJobEvent> evs;
  grpc::Status wst;
  std::thread watcher([&] { evs = server.Watch(job.id(), 0, &wst); });
  std::vector<pb::Spectrum> spectra;
  bool running_during = false;
  for (const char* type : {"mlp.in", "attn.o", "mlp.out"}) {
    for (int layer : {0, 1}) {
      running_during |= server.Get(job.id()).state() == pb::JOB_STATE_RUNNING;
      grpc::ClientContext ctx;
      Server::Auth(&ctx, kRead);
      pb::GetSpectrumRequest req;
      req.set_matrix_type(type);
      req.set_layer(layer);
      pb::Spectrum sp;
      ASSERT_TRUE(server.models().GetSpectrum(&ctx, req, &sp).ok());
      spectra.push_back(sp);
    }
  }
  watcher.join();
  ASSERT_TRUE(wst.ok()) << wst.error_message();
  EXPECT_TRUE(running_during) << "the sweep ended before the spectra were requested";
  ASSERT_TRUE(evs.back().has_state_change());
  EXPECT_EQ(evs.back().state_change().current(), pb::JOB_STATE_SUCCEEDED) << server.Log();
  std::vector<pb::Result> got;
  for (const auto& e : evs) {
    if (e.has_result()) got.push_back(e.result());
  }

  // The headless one-device run.
  const fs::path sp = root / "spec.json", out = root / "headless.jsonl";
  std::ofstream(sp) << JsonOf(spec);
  const std::string cmd =
      absl::StrCat(LASERD_BINARY_DIR, "/server/laserd sweep --model ", (root / "model").string(),
                   " --device cpu --spec ", sp.string(), " --out ", out.string(),
                   " --no-progress 2>/dev/null >/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto rf = laserd::server::ReadResultsFile(out.string());
  ASSERT_TRUE(rf.ok()) << rf.status();
  const std::vector<pb::Result>& want = rf->results;
  ASSERT_GT(want.size(), 14u * 7u);  // 14 matrices x 7 ranks, plus composition steps
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].index(), static_cast<int64_t>(i));
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(Comparable(got[i]), Comparable(want[i])))
        << "result " << i << "\n got: " << JsonOf(Comparable(got[i]))
        << "\nwant: " << JsonOf(Comparable(want[i]));
  }

  // Spectra of the unedited matrices.
  laserd_test::ExpectSpectraOfUneditedModel(root / "model", spectra);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
