// Load on `laserd serve`: 100 concurrent watchers and 20 concurrent
// submitters (each creates a small sweep, then polls GetJob until it ends) for
// LASERD_LOAD_SECONDS seconds (default 5; BENCHMARKS.md reports 60). No RPC may
// fail; prints GetJob latency percentiles.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>

#include "nlohmann/json.hpp"
#include "tests/e2e/server_harness.h"
#include "tests/support/fixtures.h"

namespace {

using laserd_test::kRead;
using laserd_test::Server;
namespace fs = std::filesystem;
namespace pb = ::laser::v1;
using Clock = std::chrono::steady_clock;

TEST(ServerLoad, WatchersAndSubmittersWithoutFailures) {
  const char* env = std::getenv("LASERD_LOAD_SECONDS");
  const int seconds = env ? std::atoi(env) : 5;
  const fs::path root = fs::temp_directory_path() / absl::StrCat("laserd_server_load_", getpid());
  fs::remove_all(root);
  fs::create_directories(root / "data");
  laserd::test_support::MakeTinyLlamaDir(root / "model");
  {
    std::ofstream d(root / "data" / "d.jsonl");
    for (int i = 0; i < 10; ++i) {
      d << "{\"prompt\": \"The capital of country " << i << " is\", \"answer\": \" Paris\"}\n";
    }
  }
  Server server(root, root / "model", root / "data");
  server.Start();
  pb::SweepSpec spec;
  spec.mutable_dataset()->set_path((root / "data" / "d.jsonl").string());
  spec.add_matrix_types("mlp.in");
  spec.mutable_layers()->add_indices(1);
  spec.mutable_rho()->add_values(0.5);

  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  std::atomic<int64_t> failures{0}, rpcs{0}, jobs_done{0}, watch_events{0};
  std::mutex mu;
  std::vector<double> getjob_ms;
  std::string latest;  // a job for watchers to watch
  std::vector<std::string> errors;
  auto fail = [&](const grpc::Status& st, const char* what) {
    ++failures;
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 10) errors.push_back(absl::StrCat(what, ": ", st.error_message()));
  };
  std::vector<std::thread> threads;
  for (int s = 0; s < 20; ++s) {
    threads.emplace_back([&, s] {
      std::vector<double> mine;
      while (Clock::now() < deadline) {
        pb::Job job;
        pb::SweepSpec sp = spec;
        (*sp.mutable_labels())["submitter"] = std::to_string(s);
        grpc::Status st = server.Create(sp, &job);
        ++rpcs;
        if (!st.ok()) {
          fail(st, "CreateSweep");
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          latest = job.id();
        }
        while (true) {
          grpc::ClientContext ctx;
          Server::Auth(&ctx, kRead);
          pb::GetJobRequest req;
          req.set_job_id(job.id());
          pb::Job j;
          const auto t0 = Clock::now();
          st = server.sweeps().GetJob(&ctx, req, &j);
          mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          ++rpcs;
          if (!st.ok()) {
            fail(st, "GetJob");
            break;
          }
          if (j.state() == pb::JOB_STATE_SUCCEEDED) {
            ++jobs_done;
            break;
          }
          if (j.state() == pb::JOB_STATE_FAILED || j.state() == pb::JOB_STATE_CANCELLED) {
            fail(grpc::Status(grpc::StatusCode::INTERNAL, j.error().message()), "job");
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      getjob_ms.insert(getjob_ms.end(), mine.begin(), mine.end());
    });
  }
  for (int w = 0; w < 100; ++w) {
    threads.emplace_back([&] {
      while (Clock::now() < deadline) {
        std::string id;
        {
          std::lock_guard<std::mutex> lock(mu);
          id = latest;
        }
        if (id.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        grpc::Status st;
        const auto evs = server.Watch(id, 0, &st);
        ++rpcs;
        watch_events += static_cast<int64_t>(evs.size());
        if (!st.ok()) fail(st, "WatchJob");
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(getjob_ms.begin(), getjob_ms.end());
  ASSERT_FALSE(getjob_ms.empty());
  auto pct = [&](double p) { return getjob_ms[static_cast<size_t>(p * (getjob_ms.size() - 1))]; };
  std::printf(
      "load %d s: 100 watchers + 20 submitters: %lld RPCs, %lld jobs, %lld watch events, "
      "%lld failed; GetJob p50 %.2f ms p99 %.2f ms max %.2f ms (%zu calls)\n",
      seconds, (long long)rpcs.load(), (long long)jobs_done.load(), (long long)watch_events.load(),
      (long long)failures.load(), pct(0.5), pct(0.99), getjob_ms.back(), getjob_ms.size());
  for (const auto& e : errors) ADD_FAILURE() << e;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(jobs_done.load(), 0);
  EXPECT_EQ(server.Health(), 1);
  server.Kill(SIGKILL);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
