// Several resident replicas in one process (`--devices`): the device
// list, SweepRunner over two CPU replicas against one replica (the same bits,
// the same order, composition on the first replica, stopping early), and
// `laserd sweep --devices cpu,cpu` against `--device cpu` byte for byte. On
// the tiny Llama fixture with a byte-level tokenizer of exactly its vocabulary.
//
// OpenBLAS's results depend on its thread count in the last bits, so every
// comparison runs both sides with one OpenBLAS thread (OPENBLAS_NUM_THREADS=1),
// which LoadReplicas then leaves alone.
#include <cblas.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/replicas.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/fixtures.h"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

namespace fs = std::filesystem;

// The tiny Llama fixture plus a 256-token byte-level tokenizer.json.
std::string MakeModelDir() {
  const fs::path dir =
      fs::temp_directory_path() / ("laserd_multi_device_test_" + std::to_string(getpid()));
  test_support::MakeTinyLlamaDir(dir);
  std::ofstream(dir / "data.jsonl") << test_support::kTenExamples;
  return dir.string();
}

TEST(DeviceListTest, ShorthandsValidationAndMixedKinds) {
  auto d = laser::ParseDeviceList("0,1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, (std::vector<std::string>{"cuda:0", "cuda:1"}));
  d = laser::ParseDeviceList("cpu, cpu,cpu");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, (std::vector<std::string>{"cpu", "cpu", "cpu"}));
  d = laser::ParseDeviceList("cuda:0/bf16,cuda:3/bf16");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, (std::vector<std::string>{"cuda:0/bf16", "cuda:3/bf16"}));
  d = laser::ParseDeviceList("cpu");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, (std::vector<std::string>{"cpu"}));

  d = laser::ParseDeviceList("cpu,,cpu");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(), "--devices: entry 1 of \"cpu,,cpu\" is empty");
  d = laser::ParseDeviceList("cpu,cuda:0");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("\"cuda:0\" is not the same kind of device as \"cpu\""),
            std::string::npos)
      << d.status();
  d = laser::ParseDeviceList("cuda:0/bf16,1");  // bf16 and fp32 replicas
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  d = laser::ParseDeviceList("cpu,tpu");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("--devices: entry 1: device must be one of"),
            std::string::npos)
      << d.status();
  d = laser::ParseDeviceList("-1");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

class MultiDeviceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(MakeModelDir()); }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string data() { return *dir_ + "/data.jsonl"; }
  static std::string* dir_;
};
std::string* MultiDeviceTest::dir_ = nullptr;

laser::SweepConfig Config() {
  laser::SweepConfig c;
  c.ranks = {0.05, 0.3, 0.95};  // k = 3, 19 (factored) and 60 (dense) of 64
  c.svd.method = kernels::SvdMethod::kRandomized;
  c.svd.seed = 7;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;          // several batches
  c.cache_budget_bytes = 6000;  // some batches cached, some recomputed
  c.keep_examples = true;
  return c;
}

void ExpectSameResult(const laser::SweepResult& a, const laser::SweepResult& b) {
  EXPECT_EQ(a.intervention.plan_index, b.intervention.plan_index);
  EXPECT_EQ(a.intervention.type, b.intervention.type);
  EXPECT_EQ(a.intervention.layer, b.intervention.layer);
  EXPECT_EQ(a.intervention.rank, b.intervention.rank);
  EXPECT_EQ(a.intervention.relative_error, b.intervention.relative_error);  // bits
  EXPECT_EQ(a.intervention.svd_method, b.intervention.svd_method);
  EXPECT_EQ(a.metrics.validation.accuracy, b.metrics.validation.accuracy);
  EXPECT_EQ(a.metrics.validation.log_loss, b.metrics.validation.log_loss);
  EXPECT_EQ(a.metrics.test.accuracy, b.metrics.test.accuracy);
  EXPECT_EQ(a.metrics.test.log_loss, b.metrics.test.log_loss);
  ASSERT_EQ(a.examples.size(), b.examples.size());
  for (size_t e = 0; e < a.examples.size(); ++e) {
    EXPECT_EQ(a.examples[e].logprob, b.examples[e].logprob) << "example " << e;
    EXPECT_EQ(a.examples[e].greedy_ids, b.examples[e].greedy_ids) << "example " << e;
  }
}

// One OpenBLAS thread for this process and the laserd processes it starts.
void OneBlasThread() {
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  openblas_set_num_threads(1);
}

TEST_F(MultiDeviceTest, TwoCpuReplicasGiveTheSameResultsInTheSameOrder) {
  OneBlasThread();
  auto ds = eval::LoadDataset(data());
  ASSERT_TRUE(ds.ok()) << ds.status();
  const laser::SweepConfig cfg = Config();

  // One replica.
  auto one = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(one.ok()) << one.status();
  auto r1 = laser::SweepRunner::Create(one->model.get(), *one->tokenizer, *ds, cfg);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ((*r1)->replica_count(), 1u);
  auto base1 = (*r1)->Baseline();
  ASSERT_TRUE(base1.ok());
  std::vector<laser::SweepResult> want;
  const std::set<int64_t> skip = {0, 4, 5, 13};  // as after a resume
  ASSERT_TRUE((*r1)
                  ->Run(skip,
                        [&](const laser::SweepResult& r) {
                          want.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(want.size(), 42u - skip.size());

  // Two replicas. Replica 0 waits at its first edit until replica 1 has made
  // one, so both take part whatever the scheduling.
  auto two = laser::LoadReplicas(*dir_, {"cpu", "cpu"});
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ(laser::ReplicaDeviceName("cpu", (*two)[1]), "cpu");
  auto r2 = laser::SweepRunner::Create(laser::ReplicaModels(*two), *(*two)[0].tokenizer, *ds, cfg);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ((*r2)->replica_count(), 2u);
  EXPECT_EQ((*r2)->total_interventions(), (*r1)->total_interventions());
  auto base2 = (*r2)->Baseline();
  ASSERT_TRUE(base2.ok());
  EXPECT_EQ(base2->validation.log_loss, base1->validation.log_loss);
  EXPECT_EQ(base2->test.log_loss, base1->test.log_loss);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> edits(2, 0);
  std::vector<bool> editing(2, false);
  bool overlap_error = false;
  (*r2)->set_edit_hook([&](size_t replica, bool on) {
    std::unique_lock<std::mutex> lock(mu);
    if (editing[replica] == on) overlap_error = true;  // strictly alternating per replica
    editing[replica] = on;
    if (on) {
      ++edits[replica];
      cv.notify_all();
      if (replica == 0 && edits[0] == 1) {
        cv.wait_for(lock, std::chrono::seconds(30), [&] { return edits[1] > 0; });
      }
    }
  });
  std::vector<laser::SweepResult> got;
  const auto caller = std::this_thread::get_id();
  bool other_thread = false;
  ASSERT_TRUE((*r2)
                  ->Run(skip,
                        [&](const laser::SweepResult& r) {
                          if (std::this_thread::get_id() != caller) other_thread = true;
                          got.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_FALSE(other_thread);
  EXPECT_FALSE(overlap_error);
  EXPECT_FALSE(editing[0] || editing[1]);
  EXPECT_GT(edits[0], 0);
  EXPECT_GT(edits[1], 0);
  EXPECT_EQ(edits[0] + edits[1], 42 - static_cast<int>(skip.size()));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameResult(got[i], want[i]);
  }
  const laser::SweepTimings t = (*r2)->timings();
  EXPECT_EQ(t.interventions, 42 - static_cast<int64_t>(skip.size()));
  EXPECT_EQ(t.decompositions, 14);  // one per matrix, over both replicas

  // Composition runs on the first replica and matches the one-replica run.
  std::vector<laser::SingleSummary> singles;
  for (const auto& r : want) {
    singles.push_back(
        {r.intervention, r.metrics.validation.accuracy, r.metrics.validation.log_loss});
  }
  std::vector<laser::CompositionStep> s1, s2;
  ASSERT_TRUE((*r1)
                  ->Compose(singles, *base1, {},
                            [&](const laser::CompositionStep& cs) {
                              s1.push_back(cs);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_TRUE((*r2)
                  ->Compose(singles, *base2, {},
                            [&](const laser::CompositionStep& cs) {
                              s2.push_back(cs);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_FALSE(s1.empty());
  ASSERT_EQ(s1.size(), s2.size());
  for (size_t i = 0; i < s1.size(); ++i) {
    EXPECT_EQ(s1[i].plan_index, s2[i].plan_index);
    EXPECT_EQ(s1[i].added.plan_index, s2[i].added.plan_index);
    EXPECT_EQ(s1[i].kept, s2[i].kept);
    EXPECT_EQ(s1[i].metrics.validation.log_loss, s2[i].metrics.validation.log_loss);
  }
}

TEST_F(MultiDeviceTest, AnErrorFromTheCallbackStopsTheRunAndLeavesReplicasUnedited) {
  auto ds = eval::LoadDataset(data());
  ASSERT_TRUE(ds.ok()) << ds.status();
  laser::SweepConfig cfg = Config();
  cfg.svd.method = kernels::SvdMethod::kExact;
  auto two = laser::LoadReplicas(*dir_, {"cpu", "cpu"});
  ASSERT_TRUE(two.ok()) << two.status();
  // The unedited weights of one matrix of each replica.
  auto snapshot = [&](size_t r) {
    auto host = laser::MatrixToHost((*two)[r].model.get(), "mlp.out", 1);
    EXPECT_TRUE(host.ok());
    return *host;
  };
  const std::vector<float> w0 = snapshot(0), w1 = snapshot(1);
  auto runner =
      laser::SweepRunner::Create(laser::ReplicaModels(*two), *(*two)[0].tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  std::vector<int64_t> seen;
  absl::Status st = (*runner)->Run({}, [&](const laser::SweepResult& r) -> absl::Status {
    seen.push_back(r.intervention.plan_index);
    if (seen.size() == 5) return absl::CancelledError("job cancelled");
    return absl::OkStatus();
  });
  EXPECT_EQ(st, absl::CancelledError("job cancelled"));
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(snapshot(0), w0);
  EXPECT_EQ(snapshot(1), w1);
  // The runner can run again after a stop, skipping what was reported.
  std::vector<int64_t> rest;
  ASSERT_TRUE((*runner)
                  ->Run(std::set<int64_t>(seen.begin(), seen.end()),
                        [&](const laser::SweepResult& r) {
                          rest.push_back(r.intervention.plan_index);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(rest.size(), 37u);
  for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(rest[i], static_cast<int64_t>(i + 5));
}

TEST_F(MultiDeviceTest, ReplicasOfDifferentModelsAreRefused) {
  auto ds = eval::LoadDataset(data());
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto a = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(a.ok());
  // The same fixture with one layer fewer is another plan.
  const fs::path other = fs::path(*dir_) / "other";
  fs::create_directories(other);
  for (const char* f : {"model.safetensors", "tokenizer.json"}) {
    fs::copy_file(fs::path(*dir_) / f, other / f, fs::copy_options::overwrite_existing);
  }
  nlohmann::json config = nlohmann::json::parse(std::ifstream(fs::path(*dir_) / "config.json"));
  config["num_hidden_layers"] = config["num_hidden_layers"].get<int>() - 1;
  std::ofstream(other / "config.json") << config.dump();
  auto b = model::LoadModel(other.string(), "cpu");
  ASSERT_TRUE(b.ok()) << b.status();
  laser::SweepConfig cfg = Config();
  auto r = laser::SweepRunner::Create({a->model.get(), b->model.get()}, *a->tokenizer, *ds, cfg);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "replica 1 is not the same model as replica 0 (its plan differs)");
}

// --- laserd sweep --devices ---

class MultiDeviceCliTest : public MultiDeviceTest {
 protected:
  void SetUp() override { LASERD_REQUIRE_BUILT(test_support::LaserdBinary()); }
  int Sweep(const std::string& spec, const std::string& out, const std::string& flags) {
    return test_support::Shell(test_support::LaserdBinary() + " sweep --model " + *dir_ +
                               " --spec " + spec + " --out " + out + " " + flags + " > " + *dir_ +
                               "/stdout.txt 2> " + *dir_ + "/stderr.txt");
  }
};

TEST_F(MultiDeviceCliTest, DevicesCpuCpuWritesTheSameBytesAsOneDevice) {
  // Without OPENBLAS_NUM_THREADS, CPU replicas share the cores.
  unsetenv("OPENBLAS_NUM_THREADS");
  const std::string nproc = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  const std::string shard_spec = *dir_ + "/spec_shard.json";
  std::ofstream(shard_spec) << R"({"dataset": {"path": ")" << data()
                            << R"("}, "rho": {"values": [0.1, 0.5]}, )"
                            << R"("split": {"validation_fraction": 0.3}})";
  ASSERT_EQ(Sweep(shard_spec, *dir_ + "/x.jsonl", "--devices cpu,cpu --shard 0/3"), 0);
  const std::string log = test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_NE(log.find("2 CPU replicas on " + nproc + " cores: "), std::string::npos) << log;
  OneBlasThread();
  const std::string spec = *dir_ + "/spec.json";
  std::ofstream(spec)
      << R"({"dataset": {"path": ")" << data()
      << R"("}, "layers": {"ranges": [{"start": 0}]}, "rho": {"values": [0.05, 0.3, 0.95]}, )"
      << R"("svd": {"method": "SVD_METHOD_RANDOMIZED", "seed": 3}, )"
      << R"("split": {"validation_fraction": 0.3}, "batch": {"max_batch_tokens": 64}, )"
      << R"("composition": {"mode": "COMPOSITION_MODE_GREEDY"}})";
  const std::string one = *dir_ + "/one.jsonl", two = *dir_ + "/two.jsonl";
  ASSERT_EQ(Sweep(spec, one, "--device cpu"), 0) << test_support::ReadFile(*dir_ + "/stderr.txt");
  const std::string want = test_support::ReadFile(one);
  EXPECT_NE(want.find("RESULT_KIND_COMPOSITION"), std::string::npos);
  ASSERT_EQ(Sweep(spec, two, "--devices cpu,cpu"), 0)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_EQ(test_support::ReadFile(two), want);
  const std::string err = test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_NE(err.find("2 replicas (cpu, cpu)"), std::string::npos) << err;
  EXPECT_EQ(test_support::ReadFile(*dir_ + "/stdout.txt").substr(0, 6), "sweep ");

  // Resumed with three replicas after a cut: the same file again.
  size_t pos = 0;
  for (int i = 0; i < 9; ++i) pos = want.find('\n', pos) + 1;
  std::ofstream(two, std::ios::binary | std::ios::trunc) << want.substr(0, pos + 11);
  ASSERT_EQ(Sweep(spec, two, "--devices cpu,cpu,cpu --resume"), 0)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_EQ(test_support::ReadFile(two), want);

  // A shard over two replicas equals the same shard on one device.
  ASSERT_EQ(Sweep(shard_spec, one, "--device cpu --shard 1/3"), 0)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  ASSERT_EQ(Sweep(shard_spec, two, "--devices cpu,cpu --shard 1/3"), 0)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_EQ(test_support::ReadFile(two), test_support::ReadFile(one));
  EXPECT_NE(test_support::ReadFile(one).find("\"shard_index\":1"), std::string::npos);

  // Usage errors.
  EXPECT_NE(Sweep(spec, two, "--device cpu --devices cpu,cpu"), 0);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("excludes"), std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  EXPECT_EQ(Sweep(spec, two, "--devices cpu,cuda:0"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("is not the same kind of device"),
            std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
}

}  // namespace
}  // namespace laserd
