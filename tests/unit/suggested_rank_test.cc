// The Marchenko–Pastur rank suggestion (engine/laser/spectrum.h) and sweeps
// with add_suggested_rank (engine/laser/sweep.h, server/sweep_io.cc): the
// formula on hand-computed spectra and on a fixture matrix; the suggested
// interventions of a sweep (their k, rank source, ρ, error and metrics against
// a dense edit scored by eval::ScoreExamples); the swept results unchanged by
// the flag for every SVD method, the suggested one always an exact truncation;
// composition; replicas; and the laserd CLI (spec accepted,
// merged shards equal an unsharded run, resume). On the tiny Llama fixture
// with a byte-level tokenizer, as tests/unit/sweep_test.cc builds it.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/eval/scorer.h"
#include "engine/laser/intervention.h"
#include "engine/laser/paper_svd.h"
#include "engine/laser/spectrum.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

namespace fs = std::filesystem;

// --- The formula. ---

TEST(MarchenkoPasturRank, HandComputedSpectrumWithTwoValuesAboveTheThreshold) {
  // 5x500: beta = 5/500 = 0.01, 1 + sqrt(beta) = 1.1. Sorted: 2 3 4 12 20;
  // numpy linear quantiles at positions 0.25*4 = 1 and 0.75*4 = 3: Q1 = 3,
  // Q3 = 12; sigma = 9/1.349; threshold = 1.1 sigma = 7.3388...: 20 and 12
  // are above it. ‖W‖² = 400+144+16+9+4 = 573, dropped 16+9+4 = 29.
  auto f = laser::MarchenkoPasturRank({20, 12, 4, 3, 2}, 5, 500, 573.0);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_DOUBLE_EQ(f->sigma, 9.0 / 1.349);
  EXPECT_DOUBLE_EQ(f->beta, 0.01);
  EXPECT_DOUBLE_EQ(f->threshold, 9.0 / 1.349 * 1.1);
  EXPECT_NEAR(f->threshold, 7.33877, 1e-5);
  EXPECT_EQ(f->rank, 2);
  EXPECT_DOUBLE_EQ(f->rho, 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(f->relative_error, std::sqrt(29.0 / 573.0));
  // The middle value does not move the quartiles (positions 1 and 3): strictly
  // above the threshold 7.33877 it counts, below it does not.
  EXPECT_EQ(laser::MarchenkoPasturRank({20, 12, 7.34, 3, 2}, 5, 500, 610.8756)->rank, 3);
  EXPECT_EQ(laser::MarchenkoPasturRank({20, 12, 7.33, 3, 2}, 5, 500, 610.7289)->rank, 2);
}

TEST(MarchenkoPasturRank, InterpolatedQuartilesAndTallShape) {
  // 8x4 (rows > cols): beta = 4/8. Sorted 1 2 3 10: Q1 at position 0.75 =
  // 1 + 0.75·(2−1) = 1.75, Q3 at 2.25 = 3 + 0.25·(10−3) = 4.75; sigma =
  // 3/1.349 = 2.2239; threshold = sigma·(1 + sqrt(0.5)) = 3.7964: only 10.
  auto f = laser::MarchenkoPasturRank({10, 3, 2, 1}, 8, 4, 114.0);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_DOUBLE_EQ(f->sigma, 3.0 / 1.349);
  EXPECT_DOUBLE_EQ(f->beta, 0.5);
  EXPECT_NEAR(f->threshold, 3.0 / 1.349 * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(f->threshold, 3.79638, 1e-5);
  EXPECT_EQ(f->rank, 1);
  EXPECT_DOUBLE_EQ(f->rho, 0.25);
  EXPECT_DOUBLE_EQ(f->relative_error, std::sqrt(14.0 / 114.0));
}

TEST(MarchenkoPasturRank, AtLeastOneAndZeroNormAndBadInput) {
  // A zero matrix: nothing is above a zero threshold; k = 1, error 0.
  auto z = laser::MarchenkoPasturRank({0, 0, 0}, 3, 3, 0.0);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->rank, 1);
  EXPECT_EQ(z->threshold, 0.0);
  EXPECT_EQ(z->relative_error, 0.0);
  // A flat spectrum: sigma = 0, so every value is above the threshold.
  EXPECT_EQ(laser::MarchenkoPasturRank({2, 2, 2}, 3, 3, 12.0)->rank, 3);
  EXPECT_EQ(laser::MarchenkoPasturRank({3, 2}, 3, 3, 13.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(laser::MarchenkoPasturRank({}, 0, 3, 0.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(laser::MarchenkoPasturRank({1}, 1, 1, -1.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- The fixture model. ---

const char* kData = test_support::kTenExamples;

class SuggestedRankTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::temp_directory_path() / ("laserd_suggested_rank_test_" + std::to_string(getpid())))
            .string());
    test_support::MakeTinyLlamaDir(*dir_);
    data_ = new std::string(*dir_ + "/data.jsonl");
    std::ofstream(*data_) << kData;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete data_;
  }
  static std::string* dir_;
  static std::string* data_;
};
std::string* SuggestedRankTest::dir_ = nullptr;
std::string* SuggestedRankTest::data_ = nullptr;

// The suggestion by GetSpectrum's documented formula (model.proto,
// docs/laser.md), written out here independently of spectrum.cc.
struct Expected {
  int64_t rank;
  double threshold;
};
Expected ByTheFormula(std::vector<double> s, int64_t rows, int64_t cols) {
  std::sort(s.begin(), s.end());
  const double N = static_cast<double>(s.size());
  auto q = [&](double p) {  // numpy.quantile, method "linear"
    const double h = (N - 1) * p;
    const double lo = std::floor(h);
    const double a = s[static_cast<size_t>(lo)];
    const double b = s[std::min(static_cast<size_t>(lo) + 1, s.size() - 1)];
    return a + (h - lo) * (b - a);
  };
  const double sigma = (q(0.75) - q(0.25)) / 1.349;
  const double thr =
      sigma * (1.0 + std::sqrt(static_cast<double>(std::min(rows, cols)) / std::max(rows, cols)));
  int64_t k = 0;
  for (double v : s) k += v > thr ? 1 : 0;
  return {std::max<int64_t>(k, 1), thr};
}

TEST_F(SuggestedRankTest, FixtureMatricesFollowTheFormula) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  model::Model* model = lm->model.get();
  int checked = 0;
  std::set<int64_t> ranks;
  for (int64_t layer = 0; layer < model->config().layers; ++layer) {
    for (const std::string& type : model->MatrixTypes()) {
      auto host = laser::MatrixToHost(model, type, layer);
      ASSERT_TRUE(host.ok());
      auto w = model->Matrix(type, layer);
      const int64_t rows = (*w)->rows(), cols = (*w)->cols();
      auto svd = laser::ExactSpectrumSvd(*host, rows, cols, 1);
      ASSERT_TRUE(svd.ok()) << svd.status();
      ASSERT_EQ(static_cast<int64_t>(svd->spectrum.size()), std::min(rows, cols));
      // The spectrum is W's: Σσ² = ‖W‖², and the same values for any kept width.
      double ss = 0, fro = 0;
      for (float v : svd->spectrum) ss += static_cast<double>(v) * v;
      for (float v : *host) fro += static_cast<double>(v) * v;
      EXPECT_NEAR(ss / fro, 1.0, 1e-5);
      EXPECT_NEAR(svd->frobenius_sq / fro, 1.0, 1e-12);
      auto full = laser::ExactSpectrumSvd(*host, rows, cols, std::min(rows, cols));
      ASSERT_TRUE(full.ok());
      EXPECT_EQ(full->spectrum, svd->spectrum);
      const std::vector<double> s(svd->spectrum.begin(), svd->spectrum.end());
      auto fit = laser::MarchenkoPasturRank(s, rows, cols, svd->frobenius_sq);
      ASSERT_TRUE(fit.ok());
      const Expected e = ByTheFormula(s, rows, cols);
      EXPECT_EQ(fit->rank, e.rank) << type << " " << layer;
      EXPECT_NEAR(fit->threshold, e.threshold, 1e-12 * e.threshold);
      double dropped = 0;
      for (size_t i = fit->rank; i < s.size(); ++i) dropped += s[i] * s[i];
      EXPECT_NEAR(fit->relative_error, std::sqrt(dropped / svd->frobenius_sq), 1e-12);
      // The same rank from a double-precision SVD (dgesdd) of the same matrix.
      kernels::SvdOptions o;
      o.method = kernels::SvdMethod::kExact;
      o.exact_in_double = true;
      auto dsvd = kernels::ComputeTruncatedSvd(host->data(), rows, cols, 1, o);
      ASSERT_TRUE(dsvd.ok());
      EXPECT_EQ(ByTheFormula({dsvd->spectrum.begin(), dsvd->spectrum.end()}, rows, cols).rank,
                fit->rank)
          << type << " " << layer;
      ranks.insert(fit->rank);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 14);
  std::printf("fixture suggested ranks:");
  for (int64_t k : ranks) std::printf(" %lld", static_cast<long long>(k));
  std::printf("\n");
}

// --- Sweeps. ---

laser::SweepConfig BaseConfig() {
  laser::SweepConfig c;
  c.ranks = {0.05, 0.3, 0.95};  // k = 3, 19 and 60 of 64
  c.svd.method = kernels::SvdMethod::kExact;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;
  c.keep_examples = true;
  return c;
}

std::vector<laser::SweepResult> RunAll(laser::SweepRunner* r) {
  std::vector<laser::SweepResult> out;
  EXPECT_TRUE(r->Baseline().ok());
  auto st = r->Run({}, [&](const laser::SweepResult& x) {
    out.push_back(x);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// The suggested rank of W(type, layer) from its exact spectrum.
int64_t SuggestedOf(model::Model* model, const std::string& type, int64_t layer) {
  auto host = laser::MatrixToHost(model, type, layer);
  auto w = model->Matrix(type, layer);
  const int64_t rows = (*w)->rows(), cols = (*w)->cols();
  auto svd = laser::ExactSpectrumSvd(*host, rows, cols, 1);
  return ByTheFormula({svd->spectrum.begin(), svd->spectrum.end()}, rows, cols).rank;
}

// Checks a suggested result against a dense edit at its k of the rank-k_dec
// decomposition with `svd_opts`, scored by a plain eval::ScoreExamples.
void ExpectDenseEditMetrics(model::Model* model, const tokenizer::Tokenizer& tok,
                            const eval::Dataset& ds, const laser::SweepConfig& cfg,
                            const kernels::SvdOptions& svd_opts, const laser::SweepResult& r,
                            int64_t k_dec, const std::vector<int64_t>& ks) {
  const laser::Intervention& iv = r.intervention;
  auto toks = eval::TokenizeDataset(tok, ds, 0);
  ASSERT_TRUE(toks.ok());
  eval::ScoreOptions so;
  so.topk = cfg.topk;
  so.share_prefixes = false;
  auto split = eval::MakeSplit(ds.examples.size(), cfg.split);
  ASSERT_TRUE(split.ok());
  auto svd = laser::DecomposeMatrix(model, iv.type, iv.layer, k_dec, svd_opts);
  ASSERT_TRUE(svd.ok()) << svd.status();
  auto host = laser::MatrixToHost(model, iv.type, iv.layer);
  // The errors of all of the matrix's ranks (the randomized residuals are
  // accumulated rank after rank, as the sweep does).
  auto err = kernels::TruncationErrors(host->data(), *svd, ks);
  ASSERT_TRUE(err.ok());
  const size_t at = std::find(ks.begin(), ks.end(), iv.rank) - ks.begin();
  ASSERT_LT(at, ks.size());
  EXPECT_EQ(iv.relative_error, (*err)[at]);
  EXPECT_EQ(iv.svd_method, svd->method);
  laser::Editor ed(model);
  ASSERT_TRUE(ed.ApplyDense(iv.type, iv.layer, *svd, iv.rank).ok());
  auto ref = eval::ScoreExamples(*model, *toks, so);
  ed.RestoreAll();
  ASSERT_TRUE(ref.ok());
  ASSERT_EQ(ref->size(), r.examples.size());
  for (size_t e = 0; e < ref->size(); ++e) {
    EXPECT_LE(std::abs((*ref)[e].logprob - r.examples[e].logprob), 1e-4)
        << iv.type << " " << iv.layer << " k=" << iv.rank << " example " << e;
    EXPECT_EQ((*ref)[e].correct, r.examples[e].correct);
    EXPECT_EQ((*ref)[e].greedy_ids, r.examples[e].greedy_ids);
  }
  auto v = eval::ComputeAggregate(*ref, cfg.topk, &split->validation);
  auto t = eval::ComputeAggregate(*ref, cfg.topk, &split->test);
  EXPECT_NEAR(r.metrics.validation.log_loss, v.log_loss, 1e-4);
  EXPECT_NEAR(r.metrics.test.log_loss, t.log_loss, 1e-4);
  EXPECT_EQ(r.metrics.validation.accuracy, v.accuracy);
  EXPECT_EQ(r.metrics.test.accuracy, t.accuracy);
  EXPECT_EQ(r.metrics.test.topk_accuracy, t.topk_accuracy);
}

TEST_F(SuggestedRankTest, ExactSweepAddsOneSuggestedResultPerMatrix) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok());
  model::Model* model = lm->model.get();
  laser::SweepConfig plain_cfg = BaseConfig();
  laser::SweepConfig cfg = BaseConfig();
  cfg.add_suggested_rank = true;
  auto runner = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  // The plan: 14 matrices, 3 swept ranks + 1 suggested each, its slot last.
  ASSERT_EQ((*runner)->plan().size(), 14u);
  EXPECT_EQ((*runner)->total_interventions(), 14 * 4);
  EXPECT_EQ((*runner)->shard_interventions(), 14 * 4);
  for (const laser::PlanMatrix& m : (*runner)->plan()) {
    ASSERT_EQ(m.interventions.size(), 4u);
    EXPECT_EQ(m.k_max, std::min(m.rows, m.cols) * 95 / 100);  // 60 of 64, 30 of 32
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(m.interventions[i].plan_index, m.matrix_index * 4 + i);
      EXPECT_EQ(m.interventions[i].suggested, i == 3);
    }
    EXPECT_EQ(m.interventions[3].rank, 0);  // known once decomposed
  }
  const auto results = RunAll(runner->get());
  ASSERT_EQ(results.size(), 56u);

  auto plain = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, plain_cfg);
  ASSERT_TRUE(plain.ok());
  const auto plain_results = RunAll(plain->get());
  ASSERT_EQ(plain_results.size(), 42u);

  int suggested = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const laser::SweepResult& r = results[i];
    const laser::Intervention& iv = r.intervention;
    EXPECT_EQ(iv.plan_index, static_cast<int64_t>(i));
    if (i % 4 != 3) {
      // A swept rank: exactly the result of the same sweep without the flag
      // (exact SVD on the CPU: the same factors, the same error).
      const laser::SweepResult& p = plain_results[i / 4 * 3 + i % 4];
      EXPECT_FALSE(iv.suggested);
      EXPECT_EQ(iv.rank, p.intervention.rank);
      EXPECT_EQ(iv.relative_error, p.intervention.relative_error);
      EXPECT_EQ(r.metrics.validation.log_loss, p.metrics.validation.log_loss);
      EXPECT_EQ(r.metrics.test.log_loss, p.metrics.test.log_loss);
      EXPECT_EQ(r.metrics.test.accuracy, p.metrics.test.accuracy);
      continue;
    }
    ++suggested;
    EXPECT_TRUE(iv.suggested);
    EXPECT_FALSE(iv.rate.has_value());
    const int64_t k = SuggestedOf(model, iv.type, iv.layer);
    EXPECT_EQ(iv.rank, k) << iv.type << " " << iv.layer;
    EXPECT_EQ(iv.max_rank, std::min(iv.rows, iv.cols));
    EXPECT_DOUBLE_EQ(iv.rho, static_cast<double>(k) / iv.max_rank);
    EXPECT_EQ(iv.svd_method, kernels::SvdMethod::kExact);
    const laser::PlanMatrix& m = (*runner)->plan()[i / 4];
    std::vector<int64_t> ks;
    for (size_t j = i - 3; j <= i; ++j) ks.push_back(results[j].intervention.rank);
    ExpectDenseEditMetrics(model, *lm->tokenizer, *ds, cfg, cfg.svd, r, std::max(m.k_max, k), ks);
    // The API form: rank_source SUGGESTED, no rate, and back again.
    const ::laser::v1::Intervention p = server::InterventionProto(iv);
    EXPECT_EQ(p.rank_source(), ::laser::v1::RANK_SOURCE_SUGGESTED);
    EXPECT_FALSE(p.has_rate());
    EXPECT_EQ(p.rank(), k);
    const laser::Intervention back = server::InterventionFromProto(p, iv.plan_index);
    EXPECT_TRUE(back.suggested);
    EXPECT_EQ(back.rank, k);
  }
  EXPECT_EQ(suggested, 14);
  // A swept intervention keeps its source.
  EXPECT_EQ(server::InterventionProto(results[0].intervention).rank_source(),
            ::laser::v1::RANK_SOURCE_RHO);
}

TEST_F(SuggestedRankTest, RandomizedSweptRanksAreUnchangedAndTheSuggestedOneIsExact) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok());
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok());
  model::Model* model = lm->model.get();
  for (kernels::SvdMethod method :
       {kernels::SvdMethod::kRandomized, kernels::SvdMethod::kPaper, kernels::SvdMethod::kAuto}) {
    laser::SweepConfig cfg = BaseConfig();
    cfg.ranks = {0.05, 0.3};  // k_max = 19 (9 of 32): below the suggested ranks
    cfg.svd.method = method;
    cfg.svd.seed = 7;
    cfg.matrix_types = {"attn.k", "mlp.in"};
    cfg.layer_indices = {1};
    laser::SweepConfig plain_cfg = cfg;
    cfg.add_suggested_rank = true;
    auto runner = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
    ASSERT_TRUE(runner.ok()) << runner.status();
    const auto results = RunAll(runner->get());
    auto plain = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, plain_cfg);
    ASSERT_TRUE(plain.ok());
    const auto plain_results = RunAll(plain->get());
    ASSERT_EQ(results.size(), 6u);
    ASSERT_EQ(plain_results.size(), 4u);
    kernels::SvdOptions exact_opts;
    exact_opts.method = kernels::SvdMethod::kExact;
    for (size_t i = 0; i < results.size(); ++i) {
      const laser::SweepResult& r = results[i];
      const laser::Intervention& iv = r.intervention;
      const laser::PlanMatrix& m = (*runner)->plan()[i / 3];
      EXPECT_EQ(iv.suggested, i % 3 == 2);
      const int64_t k = SuggestedOf(model, iv.type, iv.layer);
      ASSERT_GT(k, m.k_max) << "the fixture's suggested rank should exceed k_max here";
      if (iv.suggested) {
        // The exact truncation at k_s, whatever the configured method.
        EXPECT_EQ(iv.rank, k);
        EXPECT_EQ(iv.svd_method, kernels::SvdMethod::kExact);
        ExpectDenseEditMetrics(model, *lm->tokenizer, *ds, cfg, exact_opts, r, k, {k});
        continue;
      }
      // A swept rank: the configured method to k_max (paper: to k), the same bits as without
      // the flag.
      const laser::SweepResult& p = plain_results[i / 3 * 2 + i % 3];
      EXPECT_EQ(iv.rank, p.intervention.rank);
      EXPECT_EQ(iv.svd_method, p.intervention.svd_method);
      EXPECT_EQ(iv.relative_error, p.intervention.relative_error);
      EXPECT_EQ(r.metrics.validation.log_loss, p.metrics.validation.log_loss);
      EXPECT_EQ(r.metrics.test.log_loss, p.metrics.test.log_loss);
      EXPECT_EQ(r.metrics.test.accuracy, p.metrics.test.accuracy);
      if (method == kernels::SvdMethod::kAuto) {
        EXPECT_EQ(iv.svd_method, kernels::AutoPicksRandomized(iv.rows, iv.cols, m.k_max)
                                     ? kernels::SvdMethod::kRandomized
                                     : kernels::SvdMethod::kExact);
      } else {
        EXPECT_EQ(iv.svd_method, method);
      }
      if (method == kernels::SvdMethod::kPaper) {
        // The paper method decomposes each rank itself, with its own seed.
        ExpectDenseEditMetrics(model, *lm->tokenizer, *ds, cfg,
                               laser::OptionsForRank(cfg.svd, iv.type, iv.layer, iv.rank), r,
                               iv.rank, {iv.rank});
      } else {
        ExpectDenseEditMetrics(model, *lm->tokenizer, *ds, cfg, cfg.svd, r, m.k_max,
                               {m.interventions[0].rank, m.interventions[1].rank});
      }
    }
  }
}

TEST_F(SuggestedRankTest, SuggestedOnlyCompositionAndReplicas) {
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok());
  auto lm2 = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm2.ok());
  auto ds = eval::LoadDataset(*data_);
  ASSERT_TRUE(ds.ok());
  model::Model* model = lm->model.get();
  // No ρ at all is refused, unless the suggested ranks are asked for.
  laser::SweepConfig cfg = BaseConfig();
  cfg.ranks.clear();
  cfg.matrix_types = {"attn.v", "mlp.out"};
  EXPECT_EQ(laser::SweepRunner::Create(model, *lm->tokenizer, *ds, cfg).status().code(),
            absl::StatusCode::kInvalidArgument);
  cfg.add_suggested_rank = true;
  cfg.compose = true;
  auto runner = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->total_interventions(), 4);
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok());
  std::vector<laser::SweepResult> results;
  std::vector<laser::SingleSummary> singles;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const laser::SweepResult& x) {
                          results.push_back(x);
                          singles.push_back({x.intervention, x.metrics.validation.accuracy,
                                             x.metrics.validation.log_loss});
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.intervention.suggested);
    EXPECT_EQ(r.intervention.rank, SuggestedOf(model, r.intervention.type, r.intervention.layer));
  }
  // Composition stacks suggested interventions; its first step is the best
  // single alone, so its metrics are that single's.
  std::vector<laser::CompositionStep> steps;
  auto st = (*runner)->Compose(singles, *base, {}, [&](const laser::CompositionStep& s) {
    steps.push_back(s);
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps[0].plan_index, 4);
  EXPECT_TRUE(steps[0].added.suggested);
  for (const auto& r : results) {
    if (r.intervention.plan_index == steps[0].added.plan_index) {
      EXPECT_NEAR(steps[0].metrics.validation.log_loss, r.metrics.validation.log_loss, 1e-9);
    }
  }
  // Composition from one summary (as a resumed job rebuilds it from its
  // results file: the rank and source only) decomposes it the same way.
  std::vector<laser::SingleSummary> first_only = {singles[0]};
  std::vector<laser::CompositionStep> steps2;
  ASSERT_TRUE((*runner)
                  ->Compose(first_only, *base, {},
                            [&](const laser::CompositionStep& s) {
                              steps2.push_back(s);
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_FALSE(steps2.empty());
  EXPECT_NEAR(steps2[0].metrics.validation.log_loss, singles[0].validation_log_loss, 1e-9);

  // Two CPU replicas give the same results, bit for bit, in plan order.
  laser::SweepConfig rc = BaseConfig();
  rc.add_suggested_rank = true;
  rc.matrix_types = {"attn", "mlp.in"};
  auto one = laser::SweepRunner::Create(model, *lm->tokenizer, *ds, rc);
  ASSERT_TRUE(one.ok());
  auto two = laser::SweepRunner::Create({model, lm2->model.get()}, *lm->tokenizer, *ds, rc);
  ASSERT_TRUE(two.ok()) << two.status();
  const auto a = RunAll(one->get());
  const auto b = RunAll(two->get());
  ASSERT_EQ(a.size(), 2u * 5u * 4u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].intervention.plan_index, b[i].intervention.plan_index);
    EXPECT_EQ(a[i].intervention.rank, b[i].intervention.rank);
    EXPECT_EQ(a[i].intervention.suggested, b[i].intervention.suggested);
    EXPECT_EQ(a[i].metrics.validation.log_loss, b[i].metrics.validation.log_loss);
    EXPECT_EQ(a[i].metrics.test.log_loss, b[i].metrics.test.log_loss);
  }
}

// --- laserd sweep / merge. ---

using test_support::LaserdBinary;
using test_support::ReadFile;
using test_support::Shell;

class SuggestedRankCliTest : public SuggestedRankTest {
 protected:
  void SetUp() override { LASERD_REQUIRE_BUILT(LaserdBinary()); }
  std::string Spec(const std::string& extra) {
    const std::string p = *dir_ + "/spec.json";
    std::ofstream(p) << R"({"dataset": {"path": ")" << *data_
                     << R"("}, "layers": {"ranges": [{"start": 0}]}, )"
                     << R"("svd": {"method": "SVD_METHOD_EXACT"}, )"
                     << R"("split": {"validation_fraction": 0.3}, )"
                     << R"("batch": {"max_batch_tokens": 64}, "add_suggested_rank": true)" << extra
                     << "}";
    return p;
  }
  int Sweep(const std::string& spec, const std::string& out, const std::string& flags = "") {
    return Shell(LaserdBinary() + " sweep --model " + *dir_ + " --spec " + spec + " --out " + out +
                 " --device cpu --no-progress " + flags + " > " + *dir_ + "/stdout.txt 2> " +
                 *dir_ + "/stderr.txt");
  }
};

TEST_F(SuggestedRankCliTest, MergedShardsEqualAnUnshardedRunAndResumeCompletesIt) {
  const std::string spec = Spec(R"(, "rho": {"values": [0.05, 0.3]})");
  const std::string full = *dir_ + "/full.jsonl";
  ASSERT_EQ(Sweep(spec, full), 0) << ReadFile(*dir_ + "/stderr.txt");
  const std::string text = ReadFile(full);
  auto rf = server::ReadResultsFile(full);
  ASSERT_TRUE(rf.ok()) << rf.status();
  ASSERT_TRUE(rf->has_header);
  EXPECT_TRUE(rf->header.spec().add_suggested_rank());
  EXPECT_EQ(rf->header.progress().interventions_total(), 14 * 3);
  ASSERT_EQ(rf->results.size(), 42u);
  auto lm = model::LoadModel(*dir_, "cpu");
  ASSERT_TRUE(lm.ok());
  for (size_t i = 0; i < rf->results.size(); ++i) {
    const auto& r = rf->results[i];
    EXPECT_EQ(r.plan_index(), static_cast<int64_t>(i));
    const auto& iv = r.intervention();
    if (i % 3 == 2) {
      EXPECT_EQ(iv.rank_source(), ::laser::v1::RANK_SOURCE_SUGGESTED);
      const int64_t k = SuggestedOf(lm->model.get(), iv.matrix_type(), iv.layer());
      EXPECT_EQ(iv.rank(), k);
      EXPECT_DOUBLE_EQ(iv.rho(), static_cast<double>(k) / iv.max_rank());
    } else {
      EXPECT_EQ(iv.rank_source(), ::laser::v1::RANK_SOURCE_RHO);
    }
  }
  EXPECT_NE(text.find("RANK_SOURCE_SUGGESTED"), std::string::npos);

  // Three shards merged give the unsharded file byte for byte.
  std::vector<std::string> shards;
  for (int s = 0; s < 3; ++s) {
    shards.push_back(*dir_ + "/shard" + std::to_string(s) + ".jsonl");
    ASSERT_EQ(Sweep(spec, *dir_ + "/shard{shard}.jsonl", "--shard " + std::to_string(s) + "/3"), 0)
        << ReadFile(*dir_ + "/stderr.txt");
  }
  const std::string merged = *dir_ + "/merged.jsonl";
  ASSERT_EQ(Shell(LaserdBinary() + " merge " + shards[1] + " " + shards[2] + " " + shards[0] +
                  " --out " + merged + " > /dev/null 2> " + *dir_ + "/merr.txt"),
            0)
      << ReadFile(*dir_ + "/merr.txt");
  EXPECT_EQ(ReadFile(merged), text);

  // A run cut after the 5th result (a suggested one is among them) resumes to
  // the same file.
  size_t pos = 0;
  for (int i = 0; i < 6; ++i) pos = text.find('\n', pos) + 1;
  const std::string part = *dir_ + "/part.jsonl";
  std::ofstream(part, std::ios::binary) << text.substr(0, pos + 11);
  ASSERT_EQ(Sweep(spec, part, "--resume"), 0) << ReadFile(*dir_ + "/stderr.txt");
  EXPECT_EQ(ReadFile(part), text);

  // The same sweep without the flag is another sweep: resuming is refused.
  std::ofstream(*dir_ + "/noflag.json")
      << R"({"dataset": {"path": ")" << *data_
      << R"("}, "layers": {"ranges": [{"start": 0}]}, "rho": {"values": [0.05, 0.3]}, )"
      << R"("svd": {"method": "SVD_METHOD_EXACT"}, "split": {"validation_fraction": 0.3}, )"
      << R"("batch": {"max_batch_tokens": 64}})";
  EXPECT_EQ(Sweep(*dir_ + "/noflag.json", full, "--resume"), 5);
  EXPECT_EQ(ReadFile(full), text);
}

TEST_F(SuggestedRankCliTest, SuggestedRanksAloneWithComposition) {
  // No rho/rate: the suggested ranks alone (one per matrix), then composition.
  const std::string spec =
      Spec(R"(, "matrix_types": ["mlp"], "composition": {"mode": "COMPOSITION_MODE_GREEDY"})");
  const std::string out = *dir_ + "/alone.jsonl";
  ASSERT_EQ(Sweep(spec, out), 0) << ReadFile(*dir_ + "/stderr.txt");
  auto rf = server::ReadResultsFile(out);
  ASSERT_TRUE(rf.ok()) << rf.status();
  int singles = 0, steps = 0;
  for (const auto& r : rf->results) {
    if (r.kind() == ::laser::v1::RESULT_KIND_SINGLE) {
      ++singles;
      EXPECT_EQ(r.intervention().rank_source(), ::laser::v1::RANK_SOURCE_SUGGESTED);
    } else {
      ++steps;
      EXPECT_EQ(r.intervention().rank_source(), ::laser::v1::RANK_SOURCE_SUGGESTED);
    }
  }
  EXPECT_EQ(singles, 2 * 3);  // 2 layers x mlp.in, mlp.up, mlp.out
  EXPECT_GE(steps, 1);
  // Without the flag, no rank at all is an error naming the field.
  std::ofstream(*dir_ + "/none.json") << R"({"dataset": {"path": ")" << *data_ << R"("}})";
  EXPECT_EQ(Sweep(*dir_ + "/none.json", *dir_ + "/none.jsonl"), 3);
  EXPECT_NE(ReadFile(*dir_ + "/stderr.txt").find("spec.rank: required"), std::string::npos)
      << ReadFile(*dir_ + "/stderr.txt");
}

}  // namespace
}  // namespace laserd
