// The paper method decomposes every rank separately (engine/laser/paper_svd.h):
// its seed derivation, the side torch.svd_lowrank sketches, and, in a sweep on
// the tiny Llama fixture, that each rank's W_k is its own decomposition to
// exactly k with its (matrix, rank) seed, independent of the other ranks
// swept, and reproduced by composition, resume, export and the spec.
#include "engine/laser/paper_svd.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/export.h"
#include "engine/laser/intervention.h"
#include "engine/laser/rank.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/svd.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;
using kernels::SvdMethod;
using kernels::SvdOptions;
using kernels::TruncatedSvd;

std::vector<float> Random(int64_t count, uint64_t seed) {
  std::vector<float> v(count);
  kernels::GaussianFill(seed, v.data(), count);
  return v;
}

std::vector<float> Transposed(const std::vector<float>& w, int64_t m, int64_t n) {
  std::vector<float> t(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) t[j * m + i] = w[i * n + j];
  return t;
}

// The 64-bit FNV-1a of "<seed>/<type>/<layer>/<k>" (values from Python).
TEST(PaperSeedTest, IsFnv1aOfTheKey) {
  EXPECT_EQ(PaperSeed(0, "mlp.in", 3, 57), 15372773811888190463ULL);
  EXPECT_EQ(PaperSeed(18446744073709551615ULL, "moe.in[3]", 0, 1), 13718288577313175985ULL);
  SvdOptions o;
  o.method = SvdMethod::kPaper;
  o.seed = 0;
  EXPECT_EQ(OptionsForRank(o, "mlp.in", 3, 57).seed, 15372773811888190463ULL);
  // Every other method keeps its seed: one decomposition serves every rank.
  for (SvdMethod m : {SvdMethod::kExact, SvdMethod::kRandomized, SvdMethod::kAuto}) {
    o.method = m;
    o.seed = 9;
    EXPECT_EQ(OptionsForRank(o, "mlp.in", 3, 57).seed, 9u);
  }
}

// torch.svd_lowrank sketches Aᵀ when m < n or n > q: the paper method is the
// randomized algorithm (no oversampling, its power iterations) on Wᵀ with U
// and V swapped, bit for bit; at full rank of a tall matrix it sketches W.
TEST(PaperSideTest, SketchesTheSideTorchSketches) {
  SvdOptions paper;
  paper.method = SvdMethod::kPaper;
  paper.seed = 5;
  SvdOptions rnd;
  rnd.method = SvdMethod::kRandomized;
  rnd.oversampling = 0;
  rnd.power_iters = 2;
  rnd.seed = 5;
  struct Case {
    int64_t m, n, k;
    bool rows;
  };
  for (const Case& c : {Case{30, 50, 7, true}, Case{50, 30, 7, true}, Case{30, 50, 30, true},
                        Case{50, 30, 30, false}}) {
    SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << " k " << c.k);
    const std::vector<float> w = Random(c.m * c.n, 11);
    auto plan = kernels::PlanSvd(c.m, c.n, c.k, paper);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->sketch_rows, c.rows);
    EXPECT_EQ(plan->SketchValues(), (c.rows ? c.m : c.n) * c.k);
    auto p = kernels::ComputeTruncatedSvd(w.data(), c.m, c.n, c.k, paper);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->method, SvdMethod::kPaper);
    EXPECT_EQ(p->m, c.m);
    EXPECT_EQ(p->n, c.n);
    if (c.rows) {
      const std::vector<float> wt = Transposed(w, c.m, c.n);
      auto r = kernels::ComputeTruncatedSvd(wt.data(), c.n, c.m, c.k, rnd);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(p->u, r->v);
      EXPECT_EQ(p->v, r->u);
      EXPECT_EQ(p->s, r->s);
    } else {
      auto r = kernels::ComputeTruncatedSvd(w.data(), c.m, c.n, c.k, rnd);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(p->u, r->u);
      EXPECT_EQ(p->v, r->v);
    }
    // The backend entry point gives the same bits.
    auto cpu = kernels::MakeBackend("cpu");
    ASSERT_TRUE(cpu.ok());
    kernels::Tensor t = (*cpu)->FromHost(w.data(), c.m, c.n);
    auto b = kernels::DecomposeOnBackend(cpu->get(), {&t}, c.k, paper, {c.k, 1});
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)[0].svd.u, p->u);
    EXPECT_EQ((*b)[0].svd.v, p->v);
    EXPECT_EQ((*b)[0].errors, *kernels::TruncationErrors(w.data(), *p, {c.k, 1}));
  }
}

class PaperSweepTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("laserd_paper_svd_test_" + std::to_string(getpid())));
    test_support::MakeTinyLlamaDir(*dir_);
    std::ofstream(*dir_ / "data.jsonl") << test_support::kTenExamples;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* PaperSweepTest::dir_ = nullptr;

SweepConfig PaperConfig(std::vector<double> rhos) {
  SweepConfig c;
  c.ranks = std::move(rhos);
  c.matrix_types = {"mlp.in", "attn.q"};
  c.svd.method = SvdMethod::kPaper;
  c.svd.seed = 3;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;
  return c;
}

std::vector<SweepResult> RunAll(model::LoadedModel& lm, const eval::Dataset& ds,
                                const SweepConfig& cfg, const std::set<int64_t>& skip = {}) {
  std::vector<SweepResult> out;
  auto runner = SweepRunner::Create(lm.model.get(), *lm.tokenizer, ds, cfg);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return out;
  absl::Status st = (*runner)->Run(skip, [&](const SweepResult& r) {
    out.push_back(r);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

using Key = std::tuple<std::string, int64_t, int64_t>;  // type, layer, rank

TEST_F(PaperSweepTest, EveryRankIsItsOwnDecomposition) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  const SweepConfig cfg = PaperConfig({0.05, 0.3, 0.95});
  const std::vector<SweepResult> all = RunAll(*lm, *ds, cfg);
  ASSERT_EQ(all.size(), 2u * 2u * 3u);
  std::map<Key, const SweepResult*> by_key;
  for (const SweepResult& r : all) {
    const Intervention& iv = r.intervention;
    SCOPED_TRACE(::testing::Message() << iv.type << " " << iv.layer << " k " << iv.rank);
    EXPECT_EQ(iv.svd_method, SvdMethod::kPaper);
    by_key[{iv.type, iv.layer, iv.rank}] = &r;
    // The reported error is that of the decomposition to exactly k with the
    // (matrix, rank) seed, not of a prefix of the largest rank's.
    auto host = MatrixToHost(lm->model.get(), iv.type, iv.layer);
    ASSERT_TRUE(host.ok());
    auto own = kernels::ComputeTruncatedSvd(host->data(), iv.rows, iv.cols, iv.rank,
                                            OptionsForRank(cfg.svd, iv.type, iv.layer, iv.rank));
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(iv.relative_error, (*kernels::TruncationErrors(host->data(), *own, {iv.rank}))[0]);
    const int64_t k_max = *KeptRankFromRho(iv.rows, iv.cols, 0.95);
    if (iv.rank < k_max) {
      auto big = kernels::ComputeTruncatedSvd(host->data(), iv.rows, iv.cols, k_max,
                                              OptionsForRank(cfg.svd, iv.type, iv.layer, k_max));
      ASSERT_TRUE(big.ok());
      EXPECT_NE(iv.relative_error, (*kernels::TruncationErrors(host->data(), *big, {iv.rank}))[0]);
    }
  }
  // A sweep of one rank gives that rank's results bit for bit.
  for (const SweepResult& r : RunAll(*lm, *ds, PaperConfig({0.3}))) {
    const Intervention& iv = r.intervention;
    const SweepResult* want = by_key.at({iv.type, iv.layer, iv.rank});
    EXPECT_EQ(iv.relative_error, want->intervention.relative_error);
    EXPECT_EQ(r.metrics.validation.log_loss, want->metrics.validation.log_loss);
    EXPECT_EQ(r.metrics.test.log_loss, want->metrics.test.log_loss);
  }
  // A resume that skips the first four results gives the rest bit for bit.
  const std::vector<SweepResult> rest = RunAll(*lm, *ds, cfg, {0, 1, 2, 3});
  ASSERT_EQ(rest.size() + 4, all.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].intervention.plan_index, all[i + 4].intervention.plan_index);
    EXPECT_EQ(rest[i].intervention.relative_error, all[i + 4].intervention.relative_error);
    EXPECT_EQ(rest[i].metrics.validation.log_loss, all[i + 4].metrics.validation.log_loss);
  }
  // Export decomposes an edit as the sweep did.
  const SweepResult& pick = all[1];
  Editor editor(lm->model.get());
  auto applied =
      ApplyEdits(lm->model.get(),
                 {EditSpec{pick.intervention.type, pick.intervention.layer, pick.intervention.rho}},
                 cfg.svd, &editor);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)[0].k, pick.intervention.rank);
  EXPECT_EQ((*applied)[0].rel_error, pick.intervention.relative_error);
}

// The first composition step (the best single alone) is evaluated on the
// same W_k as its single: composition decomposes the rank with its own seed.
TEST_F(PaperSweepTest, CompositionReusesEachRanksDecomposition) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  SweepConfig cfg = PaperConfig({0.05, 0.3, 0.95});
  cfg.compose = true;
  auto runner = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok());
  std::vector<SweepResult> singles_full;
  std::vector<SingleSummary> singles;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const SweepResult& r) {
                          singles_full.push_back(r);
                          singles.push_back({r.intervention, r.metrics.validation.accuracy,
                                             r.metrics.validation.log_loss});
                          return absl::OkStatus();
                        })
                  .ok());
  std::vector<CompositionStep> steps;
  ASSERT_TRUE((*runner)
                  ->Compose(singles, *base, {},
                            [&](const CompositionStep& s) {
                              steps.push_back(s);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_FALSE(steps.empty());
  const SweepResult* single = nullptr;
  for (const SweepResult& r : singles_full) {
    if (r.intervention.plan_index == steps[0].added.plan_index) single = &r;
  }
  ASSERT_NE(single, nullptr);
  EXPECT_TRUE(steps[0].stacked_on.empty());
  EXPECT_EQ(steps[0].metrics.validation.log_loss, single->metrics.validation.log_loss);
  EXPECT_EQ(steps[0].metrics.test.log_loss, single->metrics.test.log_loss);
}

// The spec takes the paper method's power iterations (20 as the paper's code
// uses for RoBERTa); oversampling stays refused.
TEST(PaperSpecTest, PowerIterationsAreTaken) {
  ::laser::v1::SweepSpec spec;
  spec.mutable_dataset()->set_path("/tmp/x.jsonl");
  spec.mutable_rho()->add_values(0.1);
  spec.mutable_svd()->set_method(::laser::v1::SVD_METHOD_PAPER);
  spec.mutable_svd()->set_power_iterations(20);
  auto c = server::SweepConfigFromSpec(spec);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.svd.method, SvdMethod::kPaper);
  EXPECT_EQ(c->config.svd.power_iters, 20);
  auto plan = kernels::PlanSvd(64, 32, 5, c->config.svd);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->q, 20);
  spec.mutable_svd()->clear_power_iterations();
  spec.mutable_svd()->set_oversampling(4);
  EXPECT_EQ(server::SweepConfigFromSpec(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace laserd::laser
