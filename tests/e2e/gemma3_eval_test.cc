// End to end: Gemma 3 270M (Q4_K_M GGUF) in laserd against
// tests/fixtures/gemma3_capitals_reference.json, which
// scripts/fixtures/reference_gemma3.py produced with transformers loading the
// same GGUF (fp32) and llama.cpp's tokenizer. Checks: the logits of fixed
// token sequences (first logits, max, log-sum-exp, top-5 ids, the full last
// row of the first), token ids identical to llama.cpp's on every capitals
// example, every answer log-prob within 1e-3, greedy match and first-token
// top-k identical, aggregates consistent. Skips when the model is absent (CI
// fetches it with scripts/fetch_model.sh first).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/eval/example.h"
#include "engine/eval/metrics.h"
#include "engine/eval/run.h"
#include "engine/eval/scorer.h"
#include "engine/eval/split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/model_reference.h"
#include "tests/support/requirements.h"

namespace laserd::eval {
namespace {

using nlohmann::json;

constexpr double kLogprobTol = 1e-3;
constexpr double kLogitTol = 2e-3;

constexpr test_support::ModelReferenceSpec kGemma3{"gemma-3-270m-q4_k_m.gguf",
                                                   "gemma3_capitals_reference.json",
                                                   "scripts/fixtures/reference_gemma3.py"};
using Gemma3EvalTest = test_support::ModelReferenceTest<kGemma3>;

TEST_F(Gemma3EvalTest, ConfigIsGemma3) {
  const model::ModelConfig& c = lm_->model->config();
  EXPECT_EQ(c.arch->name, "gemma");
  EXPECT_EQ(c.model_type, "gemma3");
  EXPECT_EQ(c.layers, 18);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_EQ(c.vocab_size, 262144);
  const json& lt = (*ref_)["model_config"]["layer_types"];
  ASSERT_EQ(lt.size(), c.layer_sliding.size());
  for (size_t i = 0; i < lt.size(); ++i) {
    EXPECT_EQ(c.layer_sliding[i], lt[i] == "sliding_attention") << i;
  }
  EXPECT_TRUE(lm_->tokenizer->adds_bos());
  EXPECT_EQ((*ref_)["tokenizer"]["add_bos"], true);
}

TEST_F(Gemma3EvalTest, LogitsMatchTransformers) {
  double worst = 0;
  for (const json& s : (*ref_)["logits_check"]) {
    const std::vector<int32_t> ids = s["ids"].get<std::vector<int32_t>>();
    auto lg = lm_->model->Logits({ids});
    ASSERT_TRUE(lg.ok()) << lg.status();
    const int64_t V = lm_->model->config().vocab_size;
    for (size_t p = 0; p < ids.size(); ++p) {
      const json& want = s["positions"][p];
      const float* row = lg->data() + p * V;
      for (size_t j = 0; j < want["first_logits"].size(); ++j) {
        const double d = std::abs(row[j] - want["first_logits"][j].get<double>());
        worst = std::max(worst, d);
        EXPECT_LE(d, kLogitTol) << s["name"] << " position " << p << " logit " << j;
      }
      double mx = row[0], sum = 0;
      for (int64_t v = 1; v < V; ++v) mx = std::max<double>(mx, row[v]);
      for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      EXPECT_NEAR(mx, want["max"].get<double>(), kLogitTol) << s["name"] << " " << p;
      EXPECT_NEAR(mx + std::log(sum), want["logsumexp"].get<double>(), kLogitTol)
          << s["name"] << " " << p;
      // Top-5 ids, where the reference's neighbours are apart by more than the tolerance.
      const json& top = want["top5_ids"];
      const json& topv = want["top5_logits"];
      for (size_t j = 0; j < top.size(); ++j) {
        const bool clear =
            (j == 0 || topv[j - 1].get<double>() - topv[j].get<double>() > 1e-2) &&
            (j + 1 == top.size() || topv[j].get<double>() - topv[j + 1].get<double>() > 1e-2);
        if (!clear) continue;
        int64_t greater = 0;
        const float g = row[top[j].get<int32_t>()];
        for (int64_t v = 0; v < V; ++v) greater += row[v] > g;
        EXPECT_EQ(greater, static_cast<int64_t>(j)) << s["name"] << " " << p << " top " << j;
      }
    }
    if (s.contains("last_row_logits")) {
      const float* row = lg->data() + (ids.size() - 1) * V;
      const json& want = s["last_row_logits"];
      ASSERT_EQ(static_cast<int64_t>(want.size()), V);
      double d = 0;
      for (int64_t v = 0; v < V; ++v) d = std::max(d, std::abs(row[v] - want[v].get<double>()));
      worst = std::max(worst, d);
      EXPECT_LE(d, kLogitTol) << s["name"] << ": last row";
    }
  }
  std::printf("[ gemma3 ] max |logit - transformers| = %.3g\n", worst);
}

TEST_F(Gemma3EvalTest, MatchesTransformersOnEveryExample) {
  const json& ref = *ref_;
  const json& rex = ref["examples"];
  auto ds = ParseDataset(test_support::ReferenceJsonl(ref), "reference");
  ASSERT_TRUE(ds.ok()) << ds.status();

  // Token ids: laserd's GGUF SentencePiece tokenizer and lm-eval rule vs llama.cpp's.
  auto tok = TokenizeDataset(*lm_->tokenizer, *ds, lm_->model->config().max_positions);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_EQ(tok->size(), rex.size());
  ASSERT_EQ(test_support::CountTokenIdMismatches(*tok, rex), 0);

  EvalConfig cfg;
  cfg.score.batch_tokens = 1024;
  auto report = EvalLoaded(*lm_, *ds, cfg);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<ExampleResult>& res = report->results;
  ASSERT_EQ(res.size(), rex.size());
  const double max_err = test_support::ExpectScoresMatch(res, rex, kLogprobTol).max_logprob_error;
  std::printf("[ gemma3 ] %zu examples: max |answer logprob - transformers| = %.3g\n", res.size(),
              max_err);
  test_support::ExpectAggregatesMatch(report->splits, ref["aggregates"], kLogprobTol, 1);
}

}  // namespace
}  // namespace laserd::eval
