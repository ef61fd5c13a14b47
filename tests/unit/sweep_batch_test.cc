// Batched decompositions in a sweep (engine/laser/svd_batch.h): a sweep whose
// same-shaped matrices are decomposed together gives exactly the results of
// one decomposition at a time (every method, one and two replicas, with the
// suggested rank, resumed), and the batcher honours its budget. On the tiny
// Llama fixture.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/svd_batch.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;

class SweepBatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("laserd_sweep_batch_test_" + std::to_string(getpid())));
    test_support::MakeTinyLlamaDir(*dir_);
    std::ofstream(*dir_ / "data.jsonl") << test_support::kTenExamples;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* SweepBatchTest::dir_ = nullptr;

SweepConfig Config(kernels::SvdMethod method, int64_t batch_bytes) {
  SweepConfig c;
  c.ranks = {0.05, 0.3, 0.95};
  c.svd.method = method;
  c.svd.seed = 3;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;
  c.svd_batch_bytes = batch_bytes;
  return c;
}

// Every result's fields that a results file records, except timings.
struct Row {
  int64_t plan_index, rank;
  double rho, error, val_acc, val_loss, test_acc, test_loss;
  kernels::SvdMethod method;
  bool operator==(const Row&) const = default;
};

std::vector<Row> RunSweep(const std::vector<model::Model*>& models, const eval::Dataset& ds,
                          const model::LoadedModel& lm, const SweepConfig& cfg,
                          const std::set<int64_t>& skip = {}) {
  auto runner = SweepRunner::Create(models, *lm.tokenizer, ds, cfg);
  EXPECT_TRUE(runner.ok()) << runner.status();
  std::vector<Row> rows;
  if (!runner.ok()) return rows;
  absl::Status st = (*runner)->Run(skip, [&](const SweepResult& r) {
    const Intervention& iv = r.intervention;
    rows.push_back({iv.plan_index, iv.rank, iv.rho, iv.relative_error,
                    r.metrics.validation.accuracy, r.metrics.validation.log_loss,
                    r.metrics.test.accuracy, r.metrics.test.log_loss, iv.svd_method});
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ((*runner)->timings().decompositions,
            static_cast<int64_t>((*runner)->plan().size() - (skip.empty() ? 0 : skip.size() / 3)));
  return rows;
}

// Every result of a one-replica sweep.
std::vector<SweepResult> Results(model::Model* model, const eval::Dataset& ds,
                                 const model::LoadedModel& lm, const SweepConfig& cfg) {
  std::vector<SweepResult> out;
  auto runner = SweepRunner::Create(model, *lm.tokenizer, ds, cfg);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return out;
  absl::Status st = (*runner)->Run({}, [&](const SweepResult& r) {
    out.push_back(r);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

TEST_F(SweepBatchTest, BatchedSweepGivesTheSameResultsAsOneAtATime) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto lm2 = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm2.ok()) << lm2.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::vector<model::Model*> one = {lm->model.get()};
  std::vector<model::Model*> two = {lm->model.get(), lm2->model.get()};
  for (kernels::SvdMethod method : {kernels::SvdMethod::kRandomized, kernels::SvdMethod::kPaper,
                                    kernels::SvdMethod::kExact, kernels::SvdMethod::kAuto}) {
    SCOPED_TRACE(kernels::SvdMethodName(method));
    const std::vector<Row> alone = RunSweep(one, *ds, *lm, Config(method, 0));
    ASSERT_EQ(alone.size(), 2u * 7u * 3u);
    // Everything in one batch per shape; batches of two; two replicas.
    EXPECT_EQ(RunSweep(one, *ds, *lm, Config(method, int64_t{1} << 30)), alone);
    {
      const kernels::SvdPlan p = *kernels::PlanSvd(64, 64, 61, Config(method, 0).svd);
      EXPECT_EQ(RunSweep(one, *ds, *lm, Config(method, 2 * (p.ResultBytes() + p.WorkingBytes()))),
                alone);
    }
    EXPECT_EQ(RunSweep(two, *ds, *lm, Config(method, int64_t{1} << 30)), alone);
  }
  // With the suggested rank (its own exact SVD besides the batched ones).
  SweepConfig cfg = Config(kernels::SvdMethod::kRandomized, 0);
  cfg.add_suggested_rank = true;
  const std::vector<SweepResult> want = Results(lm->model.get(), *ds, *lm, cfg);
  cfg.svd_batch_bytes = int64_t{1} << 30;
  const std::vector<SweepResult> got = Results(lm->model.get(), *ds, *lm, cfg);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got.size(), 2u * 7u * 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].intervention.rank, want[i].intervention.rank);
    EXPECT_EQ(got[i].intervention.relative_error, want[i].intervention.relative_error);
    EXPECT_EQ(got[i].metrics.validation.log_loss, want[i].metrics.validation.log_loss);
    EXPECT_EQ(got[i].metrics.test.log_loss, want[i].metrics.test.log_loss);
  }
}

TEST_F(SweepBatchTest, ResumedBatchedSweepMatches) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok());
  std::vector<model::Model*> one = {lm->model.get()};
  const SweepConfig cfg = Config(kernels::SvdMethod::kRandomized, int64_t{1} << 30);
  const std::vector<Row> all = RunSweep(one, *ds, *lm, cfg);
  // Skip the first three matrices' interventions (as a resume does).
  std::set<int64_t> skip;
  for (int64_t i = 0; i < 9; ++i) skip.insert(i);
  const std::vector<Row> rest = RunSweep(one, *ds, *lm, cfg, skip);
  ASSERT_EQ(rest.size() + 9, all.size());
  for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(rest[i], all[i + 9]);
}

TEST_F(SweepBatchTest, BatcherTakesSameShapedMatricesWithinItsBudget) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok());
  const SweepConfig cfg = Config(kernels::SvdMethod::kRandomized, 0);
  auto runner = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok());
  const std::vector<PlanMatrix>& plan = (*runner)->plan();
  const kernels::SvdPlan p = *kernels::PlanSvd(plan[0].rows, plan[0].cols, plan[0].k_max, cfg.svd);
  const int64_t per = p.ResultBytes() + p.WorkingBytes();
  // Room for three: the first matrix and two of the others offered.
  SvdBatcher batcher(lm->model.get(), cfg.svd, 3 * per);
  std::vector<const PlanMatrix*> same;
  for (const PlanMatrix& m : plan) {
    if (&m != &plan[0] && m.rows == plan[0].rows && m.cols == plan[0].cols) same.push_back(&m);
  }
  ASSERT_GE(same.size(), 2u);
  size_t asked = 0;
  auto more = [&](const PlanMatrix&, size_t max) {
    asked = max;
    return same;
  };
  double seconds = -1;
  auto first = batcher.Take(plan[0], more, &seconds);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(asked, 2u);
  EXPECT_GE(seconds, 0.0);
  EXPECT_EQ(batcher.pending(), std::min<size_t>(same.size(), 2u));
  // A pending one is answered without decomposing, and equals a lone decomposition.
  auto second = batcher.Take(*same[0], nullptr, &seconds);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(batcher.pending(), 1u);
  auto w = lm->model->Matrix(same[0]->type, same[0]->layer);
  ASSERT_TRUE(w.ok());
  auto lone = kernels::DecomposeOnBackend(lm->model->backend(), {*w}, same[0]->k_max, cfg.svd,
                                          SweptRanks(*same[0]));
  ASSERT_TRUE(lone.ok());
  ASSERT_EQ(second->svds.size(), 1u);
  EXPECT_EQ(second->svds[0].u, (*lone)[0].svd.u);
  EXPECT_EQ(second->errors, (*lone)[0].errors);
  batcher.Clear();
  EXPECT_EQ(batcher.pending(), 0u);
}

}  // namespace
}  // namespace laserd::laser
