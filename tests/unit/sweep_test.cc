// Sweep execution: prefix reuse, factored apply and the answer-only
// head against a plain full forward of the dense edited model; sharded runs
// merged against one unsharded run; --resume after a truncated file; spec
// errors naming the field. On the tiny Llama fixture with a byte-level
// tokenizer of exactly its 256-entry vocabulary, written by the test.
#include "engine/laser/sweep.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/eval/example.h"
#include "engine/eval/scorer.h"
#include "engine/laser/intervention.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/results_io.h"
#include "tests/support/fixtures.h"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

namespace fs = std::filesystem;

// A model directory: the tiny Llama fixture plus a 256-token byte-level
// tokenizer.json (no merges, no BOS), so every byte is one token.
std::string MakeModelDir() {
  const fs::path dir =
      fs::temp_directory_path() / ("laserd_sweep_test_" + std::to_string(getpid()));
  test_support::MakeTinyLlamaDir(dir);
  return dir.string();
}

const char* kData = test_support::kTenExamples;

std::string WriteData(const std::string& dir) {
  const std::string p = dir + "/data.jsonl";
  std::ofstream(p) << kData;
  return p;
}

class SweepTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeModelDir());
    data_ = new std::string(WriteData(*dir_));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete data_;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* SweepTest::dir_ = nullptr;
std::string* SweepTest::data_ = nullptr;

laser::SweepConfig BaseConfig() {
  laser::SweepConfig c;
  c.ranks = {0.05, 0.3, 0.95};  // k = 3, 19 (factored) and 60 (dense) of 64
  c.svd.method = kernels::SvdMethod::kExact;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;  // several batches
  c.keep_examples = true;
  return c;
}

TEST_F(SweepTest, PrefixReuseFactoredApplyAndAnswerHeadMatchAFullDenseForward) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok()) << ds.status();
  model::Model* model = lm->model.get();
  laser::SweepConfig cfg = BaseConfig();
  auto runner = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->plan().size(), 2u * 7u);  // 2 layers x 7 Llama types
  EXPECT_EQ((*runner)->total_interventions(), 2 * 7 * 3);
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok());

  auto toks = eval::TokenizeDataset(*lm->tokenizer, *ds, 0);
  ASSERT_TRUE(toks.ok());
  eval::ScoreOptions so;
  so.topk = cfg.topk;
  so.share_prefixes = false;  // the reference is plain packed sequences
  auto split = eval::MakeSplit(ds->examples.size(), cfg.split);
  ASSERT_TRUE(split.ok());
  // The baseline equals a plain Model::Score.
  {
    auto ref = eval::ScoreExamples(*model, *toks, so);
    ASSERT_TRUE(ref.ok());
    auto v = eval::ComputeAggregate(*ref, cfg.topk, &split->validation);
    EXPECT_NEAR(base->validation.log_loss, v.log_loss, 1e-6);
  }
  std::vector<laser::SweepResult> results;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          results.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(results.size(), 42u);
  int factored = 0;
  double max_diff = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const laser::SweepResult& r = results[i];
    const laser::Intervention& iv = r.intervention;
    EXPECT_EQ(iv.plan_index, static_cast<int64_t>(i));
    if (iv.rank * (iv.rows + iv.cols) < iv.rows * iv.cols) ++factored;
    const laser::PlanMatrix& m = (*runner)->plan()[i / 3];
    auto svd = laser::DecomposeMatrix(model, iv.type, iv.layer, m.k_max, cfg.svd);
    ASSERT_TRUE(svd.ok());
    laser::Editor ed(model);
    ASSERT_TRUE(ed.ApplyDense(iv.type, iv.layer, *svd, iv.rank).ok());
    auto ref = eval::ScoreExamples(*model, *toks, so);
    ed.RestoreAll();
    ASSERT_TRUE(ref.ok());
    ASSERT_EQ(ref->size(), r.examples.size());
    for (size_t e = 0; e < ref->size(); ++e) {
      const double d = std::abs((*ref)[e].logprob - r.examples[e].logprob);
      max_diff = std::max(max_diff, d);
      EXPECT_LE(d, 1e-4) << iv.type << " " << iv.layer << " k=" << iv.rank << " example " << e;
      EXPECT_EQ((*ref)[e].correct, r.examples[e].correct);
      EXPECT_EQ((*ref)[e].greedy_ids, r.examples[e].greedy_ids);
      EXPECT_EQ((*ref)[e].first_greater, r.examples[e].first_greater);
    }
    auto v = eval::ComputeAggregate(*ref, cfg.topk, &split->validation);
    auto t = eval::ComputeAggregate(*ref, cfg.topk, &split->test);
    EXPECT_NEAR(r.metrics.validation.log_loss, v.log_loss, 1e-4);
    EXPECT_NEAR(r.metrics.test.log_loss, t.log_loss, 1e-4);
    EXPECT_EQ(r.metrics.validation.accuracy, v.accuracy);
    EXPECT_EQ(r.metrics.test.accuracy, t.accuracy);
    EXPECT_EQ(r.metrics.test.topk_accuracy, t.topk_accuracy);
    // The reported error is the exact truncation error of W.
    auto host = laser::MatrixToHost(model, iv.type, iv.layer);
    auto err = kernels::TruncationErrors(host->data(), *svd, {iv.rank});
    EXPECT_NEAR(iv.relative_error, (*err)[0], 1e-9);
  }
  EXPECT_GE(factored, 14);  // both paths are exercised
  EXPECT_LT(factored, 42);
  std::printf("max |logprob| difference to the dense full forward: %.3g\n", max_diff);
}

TEST_F(SweepTest, CacheOverBudgetRecomputesWithIdenticalResults) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok());
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok());
  auto run = [&](int64_t budget, bool prefix) {
    laser::SweepConfig cfg = BaseConfig();
    cfg.cache_budget_bytes = budget;
    cfg.prefix_reuse = prefix;
    cfg.matrix_types = {"mlp"};
    auto r = laser::SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
    EXPECT_TRUE(r.ok());
    std::vector<double> out;
    EXPECT_TRUE((*r)->Baseline().ok());
    EXPECT_TRUE((*r)->Run({},
                          [&](const laser::SweepResult& x) {
                            for (const auto& e : x.examples) out.push_back(e.logprob);
                            return absl::OkStatus();
                          })
                    .ok());
    return out;
  };
  const auto cached = run(int64_t{1} << 30, true);
  const auto part = run(3000, true);  // some batches cached, the others recomputed
  const auto none = run(0, false);
  ASSERT_FALSE(cached.empty());
  // Layers before l are the same computation either way: bit-identical.
  EXPECT_EQ(cached, part);
  EXPECT_EQ(cached, none);
}

TEST_F(SweepTest, ShardsPartitionMatricesAndCompositionStacksGreedily) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok());
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok());
  laser::SweepConfig cfg = BaseConfig();
  std::set<int64_t> seen;
  for (int s = 0; s < 3; ++s) {
    cfg.shard_index = s;
    cfg.shard_count = 3;
    auto r = laser::SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
    ASSERT_TRUE(r.ok());
    for (const auto& m : (*r)->plan()) {
      if (!(*r)->InShard(m)) continue;
      EXPECT_EQ(m.matrix_index % 3, s);
      for (const auto& iv : m.interventions) EXPECT_TRUE(seen.insert(iv.plan_index).second);
    }
  }
  EXPECT_EQ(seen.size(), 42u);
  cfg.compose = true;
  auto bad = laser::SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  // Composition: steps stack the per-matrix best singles in order.
  cfg = BaseConfig();
  cfg.compose = true;
  auto r = laser::SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(r.ok());
  auto base = (*r)->Baseline();
  ASSERT_TRUE(base.ok());
  std::vector<laser::SingleSummary> singles;
  ASSERT_TRUE((*r)->Run({},
                        [&](const laser::SweepResult& x) {
                          singles.push_back({x.intervention, x.metrics.validation.accuracy,
                                             x.metrics.validation.log_loss});
                          return absl::OkStatus();
                        })
                  .ok());
  std::vector<laser::CompositionStep> steps;
  ASSERT_TRUE((*r)->Compose(singles, *base, {},
                            [&](const laser::CompositionStep& s) {
                              steps.push_back(s);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_FALSE(steps.empty());
  double acc = base->validation.accuracy, loss = base->validation.log_loss;
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].plan_index, 42 + static_cast<int64_t>(i));
    EXPECT_EQ(steps[i].stacked_on.size(), i);
    const bool better = laser::BetterOnValidation(steps[i].metrics.validation.accuracy,
                                                  steps[i].metrics.validation.log_loss, acc, loss);
    EXPECT_EQ(steps[i].kept, better);
    if (i + 1 < steps.size()) {
      EXPECT_TRUE(steps[i].kept);
    }
    acc = steps[i].metrics.validation.accuracy;
    loss = steps[i].metrics.validation.log_loss;
  }
  // The first step is the best single, evaluated alone: its metrics are that single's.
  const auto& first = steps[0].added;
  for (const auto& s : singles) {
    if (s.intervention.plan_index == first.plan_index) {
      EXPECT_NEAR(steps[0].metrics.validation.log_loss, s.validation_log_loss, 1e-9);
    }
  }
}

// --- The laserd binary: JSONL files, merge, resume, spec errors. ---

class SweepCliTest : public SweepTest {
 protected:
  void SetUp() override { LASERD_REQUIRE_BUILT(test_support::LaserdBinary()); }
  std::string Spec(const std::string& extra) {
    const std::string p = *dir_ + "/spec.json";
    std::ofstream(p)
        << R"({"dataset": {"path": ")" << *data_
        << R"("}, "layers": {"ranges": [{"start": 0}]}, "rho": {"values": [0.05, 0.3, 0.95]}, )"
        << R"("svd": {"method": "SVD_METHOD_EXACT"}, "split": {"validation_fraction": 0.3}, )"
        << R"("batch": {"max_batch_tokens": 64})" << extra << "}";
    return p;
  }
  int Sweep(const std::string& spec, const std::string& out, const std::string& flags = "") {
    return test_support::Shell(test_support::LaserdBinary() + " sweep --model " + *dir_ +
                               " --spec " + spec + " --out " + out + " --device cpu " + flags +
                               " > " + *dir_ + "/stdout.txt 2> " + *dir_ + "/stderr.txt");
  }
};

TEST_F(SweepCliTest, MergedShardsEqualAnUnshardedRunByteForByte) {
  const std::string spec = Spec("");
  const std::string full = *dir_ + "/full.jsonl";
  ASSERT_EQ(Sweep(spec, full), 0) << test_support::ReadFile(*dir_ + "/stderr.txt");
  const std::string text = test_support::ReadFile(full);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 43);  // header + 42 results
  EXPECT_EQ(text.find("duration"), std::string::npos);        // no timing fields
  EXPECT_EQ(text.find("create_time"), std::string::npos);
  // Every line is protobuf JSON with proto field names.
  auto rf = api::ParseResultsFile(test_support::ReadFile(full), full);
  ASSERT_TRUE(rf.ok());
  ASSERT_TRUE(rf->has_header);
  ASSERT_EQ(rf->results.size(), 42u);
  for (size_t i = 0; i < rf->results.size(); ++i) {
    EXPECT_EQ(rf->results[i].plan_index(), static_cast<int64_t>(i));
    EXPECT_EQ(rf->results[i].index(), static_cast<int64_t>(i));
  }
  EXPECT_NE(text.find("\"plan_index\""), std::string::npos);
  EXPECT_NE(text.find("\"validation_delta\""), std::string::npos);

  std::vector<std::string> shards;
  for (int s = 0; s < 3; ++s) {
    shards.push_back(*dir_ + "/shard" + std::to_string(s) + ".jsonl");
    ASSERT_EQ(Sweep(spec, *dir_ + "/shard{shard}.jsonl", "--shard " + std::to_string(s) + "/3"), 0)
        << test_support::ReadFile(*dir_ + "/stderr.txt");
  }
  // JOB_COMPLETION_INDEX (with --shards) gives the same shard as --shard.
  ASSERT_EQ(test_support::Shell("JOB_COMPLETION_INDEX=1 " + test_support::LaserdBinary() +
                                " sweep --model " + *dir_ + " --spec " + spec + " --out " + *dir_ +
                                "/env1.jsonl --device cpu --shards 3 > /dev/null 2>&1"),
            0);
  EXPECT_EQ(test_support::ReadFile(*dir_ + "/env1.jsonl"), test_support::ReadFile(shards[1]));
  const std::string merged = *dir_ + "/merged.jsonl";
  ASSERT_EQ(
      test_support::Shell(test_support::LaserdBinary() + " merge " + shards[2] + " " + shards[0] +
                          " " + shards[1] + " --out " + merged + " > /dev/null 2>&1"),
      0);
  EXPECT_EQ(test_support::ReadFile(merged), text);
  // A missing shard is refused, naming what is missing.
  EXPECT_NE(test_support::Shell(test_support::LaserdBinary() + " merge " + shards[0] + " " +
                                shards[1] + " --out " + merged + " 2> " + *dir_ + "/merr.txt"),
            0);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/merr.txt").find("planned results are missing"),
            std::string::npos);
  // A shard of another sweep is refused, naming the differing field.
  const std::string other = Spec(R"(, "top_k": [1, 3])");
  ASSERT_EQ(Sweep(other, *dir_ + "/other.jsonl", "--shard 2/3"), 0);
  EXPECT_NE(test_support::Shell(test_support::LaserdBinary() + " merge " + shards[0] + " " +
                                shards[1] + " " + *dir_ + "/other.jsonl --out " + merged + " 2> " +
                                *dir_ + "/merr.txt"),
            0);
  const std::string err = test_support::ReadFile(*dir_ + "/merr.txt");
  EXPECT_NE(err.find("specs differ"), std::string::npos) << err;
  EXPECT_NE(err.find("top_k"), std::string::npos) << err;
}

TEST_F(SweepCliTest, ResumeAfterATruncatedFileGivesTheSameFile) {
  const std::string spec = Spec(
      R"(, "matrix_types": ["attn.q", "mlp.out"], "composition": {"mode": "COMPOSITION_MODE_GREEDY"})");
  const std::string full = *dir_ + "/cfull.jsonl";
  ASSERT_EQ(Sweep(spec, full), 0) << test_support::ReadFile(*dir_ + "/stderr.txt");
  const std::string text = test_support::ReadFile(full);
  EXPECT_NE(text.find("RESULT_KIND_COMPOSITION"), std::string::npos);
  // Cut in the middle of the 6th line, and also right after the header.
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) pos = text.find('\n', pos) + 1;
  for (size_t cut : {pos + 17, text.find('\n') + 1, size_t{10}}) {
    const std::string part = *dir_ + "/cpart.jsonl";
    std::ofstream(part, std::ios::binary) << text.substr(0, cut);
    ASSERT_EQ(Sweep(spec, part, "--resume"), 0) << test_support::ReadFile(*dir_ + "/stderr.txt");
    EXPECT_EQ(test_support::ReadFile(part), text) << "cut at byte " << cut;
  }
  // Resuming a complete file computes nothing and changes nothing.
  ASSERT_EQ(Sweep(spec, full, "--resume"), 0);
  EXPECT_EQ(test_support::ReadFile(full), text);
  // Resuming with another spec is refused.
  EXPECT_EQ(Sweep(Spec(R"(, "matrix_types": ["attn.q"])"), full, "--resume"), 5);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("different sweep"),
            std::string::npos);
  EXPECT_EQ(test_support::ReadFile(full), text);
}

TEST_F(SweepCliTest, SpecErrorsNameTheField) {
  struct Case {
    std::string extra, field;
  };
  const std::string p = *dir_ + "/bad.json";
  auto write = [&](const std::string& body) { std::ofstream(p) << body; };
  write(R"({"dataset": {"path": "x.jsonl"}, "rho": {"values": [0.1, 1.5]}})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt")
                .find("spec.rho.values[1]: 1.5 is not in (0, 1]"),
            std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  write(R"({"dataset": {"path": ")" + *data_ +
        R"("}, "rho": {"values": [0.1]}, "layers": {"indices": [0, 7]}})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("spec.layers.indices[1]: 7"),
            std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  write(R"({"dataset": {"path": ")" + *data_ +
        R"("}, "rho": {"values": [0.1]}, "matrix_types": ["mlp.in", "fc_bogus"]})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("spec.matrix_types"),
            std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  write(R"({"dataset": {"path": "x.jsonl"}, "rho": {"values": [0.1]}, "svd": {"methodd": 1}})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("methodd"), std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  write(
      R"({"dataset": {"path": "x.jsonl"}, "rho": {"values": [0.1]}, "svd": {"method": "SVD_METHOD_FAST"}})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("method"), std::string::npos)
      << test_support::ReadFile(*dir_ + "/stderr.txt");
  write(R"({"dataset": {"path": "x.jsonl"}})");
  EXPECT_EQ(Sweep(p, *dir_ + "/bad.jsonl"), 3);
  EXPECT_NE(test_support::ReadFile(*dir_ + "/stderr.txt").find("spec.rank: required"),
            std::string::npos);
}

}  // namespace
}  // namespace laserd
