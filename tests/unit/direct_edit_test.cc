// The zero and prune interventions (engine/laser/direct_edit.h): the paper
// code's threshold rule and pruning against values computed with its
// `sorted_mat`/`prune` in numpy, and, in a sweep on the tiny Llama fixture,
// the plan order, the matrix scored (read while its examples are scored)
// against a dense edit formed here, the reported error and count, composition,
// and the spec and results conversions.
#include "engine/laser/direct_edit.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/intervention.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;

TEST(DirectEditTest, ThresholdIndexIsThePaperRule) {
  // int((rate * 0.1) * N) in double, as the paper's Python computes it.
  EXPECT_EQ(PruneThresholdIndex(10, 0.8, 2.0), 2);
  EXPECT_EQ(PruneThresholdIndex(10, 0.7, 3.0), 3);
  EXPECT_EQ(PruneThresholdIndex(4096, 0.1, 9.0), 3686);
  EXPECT_EQ(PruneThresholdIndex(4096, 0.01, 9.9), 4055);
  EXPECT_EQ(PruneThresholdIndex(10, 0.01, 9.9), 9);
  EXPECT_EQ(PruneThresholdIndex(10, 1.0, 0.0), -1);  // rate 0: nothing pruned
  // A ρ: f = 1 − ρ in double ((1 − 0.8)·10 = 1.9999999999999996).
  EXPECT_EQ(PruneThresholdIndex(10, 0.3, std::nullopt), 7);
  EXPECT_EQ(PruneThresholdIndex(10, 0.8, std::nullopt), 1);
  EXPECT_EQ(PruneThresholdIndex(10, 1.0, std::nullopt), -1);
}

TEST(DirectEditTest, PruneMatchesThePaperCode) {
  const std::vector<float> w = {0.5f, -0.1f, 0.3f, -0.3f, 0.0f, 2.0f, -1.0f, 0.1f, 0.7f, -0.2f};
  struct Case {
    double rate;
    std::vector<float> want;
    int64_t zeroed;
  };
  // numpy: prune(w, sorted_mat(w), rate) of the paper's matrix utilities.
  for (const Case& c :
       {Case{3, {0.5f, 0, 0.3f, -0.3f, 0, 2.0f, -1.0f, 0, 0.7f, 0}, 4},
        Case{4, {0.5f, 0, 0, 0, 0, 2.0f, -1.0f, 0, 0.7f, 0}, 6},  // ties at α all pruned
        Case{0, w, 0}, Case{9.5, std::vector<float>(10, 0.0f), 10}}) {
    std::vector<float> x = w;
    const DirectEdit e = PruneInPlace(&x, 1 - c.rate / 10, c.rate);
    EXPECT_EQ(x, c.want) << "rate " << c.rate;
    EXPECT_EQ(e.zeroed, c.zeroed) << "rate " << c.rate;
    double total = 0, removed = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      total += double(w[i]) * w[i];
      if (x[i] == 0) removed += double(w[i]) * w[i];
    }
    EXPECT_EQ(e.relative_error, std::sqrt(removed / total)) << "rate " << c.rate;
  }
  std::vector<float> z = w;
  const DirectEdit e = ZeroInPlace(&z);
  EXPECT_EQ(z, std::vector<float>(10, 0.0f));
  EXPECT_EQ(e.zeroed, 10);
  EXPECT_EQ(e.relative_error, 1.0);
}

class DirectSweepTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("laserd_direct_edit_test_" + std::to_string(getpid())));
    test_support::MakeTinyLlamaDir(*dir_);
    std::ofstream(*dir_ / "data.jsonl") << test_support::kTenExamples;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* DirectSweepTest::dir_ = nullptr;

// The dense reference edit, written independently of direct_edit.cc: a full
// sort of |W| and the paper's index.
std::vector<float> ReferenceEdit(const std::vector<float>& w, const Intervention& iv) {
  if (iv.kind == InterventionKind::kZero) return std::vector<float>(w.size(), 0.0f);
  std::vector<float> mag(w.size());
  for (size_t i = 0; i < w.size(); ++i) mag[i] = std::fabs(w[i]);
  std::sort(mag.begin(), mag.end());
  const float alpha = mag[static_cast<size_t>(*iv.rate * 0.1 * w.size())];
  std::vector<float> out = w;
  for (float& x : out)
    if (std::fabs(x) <= alpha) x = 0;
  return out;
}

TEST_F(DirectSweepTest, ScoredMatrixIsTheDenseEdit) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  model::Model* model = lm->model.get();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  SweepConfig cfg;
  cfg.ranks = {2.0, 9.0};
  cfg.ranks_are_rates = true;
  cfg.kinds = {InterventionKind::kZero, InterventionKind::kPrune, InterventionKind::kRankReduction};
  cfg.matrix_types = {"mlp.in", "attn.o"};
  cfg.svd.method = kernels::SvdMethod::kExact;
  cfg.split.val_fraction = 0.3;
  cfg.batch_tokens = 64;
  cfg.compose = true;
  auto runner = SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  // Per matrix: the rank reductions, then prune at each rate, then zero.
  std::vector<const Intervention*> order;
  for (const PlanMatrix& m : (*runner)->plan()) {
    ASSERT_EQ(m.interventions.size(), 5u);
    const std::vector<InterventionKind> kinds = {
        InterventionKind::kRankReduction, InterventionKind::kRankReduction,
        InterventionKind::kPrune, InterventionKind::kPrune, InterventionKind::kZero};
    for (size_t i = 0; i < kinds.size(); ++i) {
      EXPECT_EQ(m.interventions[i].kind, kinds[i]) << i;
      order.push_back(&m.interventions[i]);
    }
    EXPECT_EQ(*m.interventions[2].rate, 2.0);
    EXPECT_EQ(*m.interventions[3].rate, 9.0);
    EXPECT_EQ(m.interventions[4].rank, 0);
  }
  EXPECT_EQ((*runner)->total_interventions(), static_cast<int64_t>(order.size()));
  int64_t current = -1;
  bool editing = false;
  std::vector<std::optional<std::vector<float>>> seen(order.size());
  (*runner)->set_edit_hook([&](size_t, bool e) {
    editing = e;
    if (e) ++current;
  });
  (*runner)->set_interrupt([&]() -> absl::Status {
    if (editing && !seen[current]) {
      auto w = MatrixToHost(model, order[current]->type, order[current]->layer);
      if (!w.ok()) return w.status();
      seen[current] = *std::move(w);
    }
    return absl::OkStatus();
  });
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok());
  std::vector<SweepResult> results;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const SweepResult& r) {
                          results.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(results.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const Intervention& iv = results[i].intervention;
    if (iv.kind == InterventionKind::kRankReduction) continue;
    SCOPED_TRACE(::testing::Message()
                 << InterventionKindName(iv.kind) << " " << iv.type << " " << iv.layer
                 << (iv.rate ? " rate " : "") << (iv.rate ? *iv.rate : 0.0));
    ASSERT_TRUE(seen[i].has_value());
    const std::vector<float> w = *MatrixToHost(model, iv.type, iv.layer);  // unedited again
    const std::vector<float> want = ReferenceEdit(w, iv);
    EXPECT_EQ(*seen[i], want);
    int64_t zeroed = 0;
    double total = 0, removed = 0;
    for (size_t j = 0; j < w.size(); ++j) {
      total += double(w[j]) * w[j];
      if (want[j] == 0) {
        ++zeroed;
        removed += double(w[j]) * w[j];
      }
    }
    EXPECT_EQ(iv.zeroed, zeroed);
    EXPECT_EQ(iv.relative_error,
              iv.kind == InterventionKind::kZero ? 1.0 : std::sqrt(removed / total));
    EXPECT_GT(zeroed, 0);
  }
  // Composition stacks the best singles of every kind; its first step is its
  // single, evaluated on the same matrix.
  std::vector<SingleSummary> singles;
  for (const SweepResult& r : results) {
    singles.push_back(
        {r.intervention, r.metrics.validation.accuracy, r.metrics.validation.log_loss});
  }
  (*runner)->set_interrupt(nullptr);
  (*runner)->set_edit_hook(nullptr);
  // Force a zero intervention to be the best single: stack it first.
  for (SingleSummary& s : singles) {
    if (s.intervention.kind == InterventionKind::kZero && s.intervention.type == "mlp.in" &&
        s.intervention.layer == 1) {
      s.validation_accuracy = 1000;
    }
  }
  std::vector<CompositionStep> steps;
  ASSERT_TRUE((*runner)
                  ->Compose(singles, *base, {},
                            [&](const CompositionStep& s) {
                              steps.push_back(s);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps[0].added.kind, InterventionKind::kZero);
  const SweepResult* single = nullptr;
  for (const SweepResult& r : results) {
    if (r.intervention.plan_index == steps[0].added.plan_index) single = &r;
  }
  ASSERT_NE(single, nullptr);
  EXPECT_EQ(steps[0].metrics.validation.log_loss, single->metrics.validation.log_loss);
  EXPECT_EQ(steps[0].metrics.test.log_loss, single->metrics.test.log_loss);
}

TEST_F(DirectSweepTest, ZeroAloneNeedsNoRanksAndPruneDoes) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok());
  SweepConfig cfg;
  cfg.kinds = {InterventionKind::kZero};
  cfg.matrix_types = {"mlp.out"};
  cfg.split.val_fraction = 0.3;
  auto runner = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->total_interventions(), lm->model->config().layers);
  int64_t n = 0;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const SweepResult& r) {
                          EXPECT_EQ(r.intervention.kind, InterventionKind::kZero);
                          EXPECT_EQ(r.intervention.relative_error, 1.0);
                          EXPECT_EQ(r.intervention.zeroed,
                                    r.intervention.rows * r.intervention.cols);
                          ++n;
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(n, lm->model->config().layers);
  EXPECT_EQ((*runner)->timings().decompositions, 0);
  cfg.kinds = {InterventionKind::kPrune};
  auto bad = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "rho.values: at least one value is required");
}

TEST(DirectSpecTest, SpecAndResultsCarryTheKind) {
  ::laser::v1::SweepSpec spec;
  spec.mutable_dataset()->set_path("/tmp/x.jsonl");
  spec.add_intervention_kinds(::laser::v1::INTERVENTION_KIND_ZERO);
  auto zero = server::SweepConfigFromSpec(spec);
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->config.kinds, std::vector<InterventionKind>{InterventionKind::kZero});
  spec.add_intervention_kinds(::laser::v1::INTERVENTION_KIND_PRUNE);
  EXPECT_EQ(server::SweepConfigFromSpec(spec).status().code(),
            absl::StatusCode::kInvalidArgument);  // prune needs rho or rate
  spec.mutable_rate()->add_values(9);
  spec.add_intervention_kinds(::laser::v1::INTERVENTION_KIND_RANK_REDUCTION);
  auto all = server::SweepConfigFromSpec(spec);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->config.kinds,
            (std::vector<InterventionKind>{InterventionKind::kZero, InterventionKind::kPrune,
                                           InterventionKind::kRankReduction}));

  Intervention iv;
  iv.type = "mlp.in";
  iv.layer = 3;
  iv.rho = 0.1;
  iv.rate = 9.0;
  iv.kind = InterventionKind::kPrune;
  iv.zeroed = 1234;
  iv.relative_error = 0.25;
  const ::laser::v1::Intervention p = server::InterventionProto(iv);
  EXPECT_EQ(p.kind(), ::laser::v1::INTERVENTION_KIND_PRUNE);
  EXPECT_EQ(p.zeroed_entries(), 1234);
  EXPECT_EQ(p.svd_method(), ::laser::v1::SVD_METHOD_UNSPECIFIED);
  const Intervention back = server::InterventionFromProto(p, 7);
  EXPECT_EQ(back.kind, InterventionKind::kPrune);
  EXPECT_EQ(back.zeroed, 1234);
  EXPECT_EQ(back.plan_index, 7);
  // A rank reduction's record is unchanged by the new fields.
  iv.kind = InterventionKind::kRankReduction;
  const ::laser::v1::Intervention r = server::InterventionProto(iv);
  EXPECT_EQ(r.kind(), ::laser::v1::INTERVENTION_KIND_UNSPECIFIED);
  EXPECT_EQ(r.zeroed_entries(), 0);
  EXPECT_EQ(server::InterventionFromProto(r, 0).kind, InterventionKind::kRankReduction);
}

}  // namespace
}  // namespace laserd::laser
