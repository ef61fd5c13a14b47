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
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
#include "tests/support/requirements.h"

namespace laserd::eval {
namespace {

using nlohmann::json;

constexpr double kLogprobTol = 1e-3;
constexpr double kLogitTol = 2e-3;

std::string ModelPath() {
  return std::string(LASERD_DATA_DIR) + "/models/gemma-3-270m-q4_k_m.gguf";
}
std::string ReferencePath() {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/gemma3_capitals_reference.json";
}
std::string Device() {
  const char* d = std::getenv("LASERD_E2E_DEVICE");
  return d ? d : "cpu";
}

class Gemma3EvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(ModelPath())) {
      skip_ = "model " + ModelPath() + " not found (run scripts/fetch_model.sh)";
      return;
    }
    std::ifstream in(ReferencePath());
    if (!in) {
      skip_ =
          "reference " + ReferencePath() + " not found (run scripts/fixtures/reference_gemma3.py)";
      return;
    }
    ref_ = new json(json::parse(in));
    auto lm = model::LoadModel(ModelPath(), Device());
    if (!lm.ok()) {
      load_error_ = lm.status().ToString();
      return;
    }
    lm_ = new model::LoadedModel(*std::move(lm));
  }
  static void TearDownTestSuite() {
    delete lm_;
    delete ref_;
    lm_ = nullptr;
    ref_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) LASERD_SKIP_OR_FAIL_IN_CI(skip_);
    ASSERT_NE(lm_, nullptr) << "loading " << ModelPath() << " failed: " << load_error_;
  }

  static inline std::string skip_, load_error_;
  static inline json* ref_ = nullptr;
  static inline model::LoadedModel* lm_ = nullptr;
};

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
  std::string jsonl;
  for (const json& e : rex)
    jsonl += json{{"prompt", e["prompt"]}, {"answer", e["answer"]}}.dump() + "\n";
  auto ds = ParseDataset(jsonl, "reference");
  ASSERT_TRUE(ds.ok()) << ds.status();

  // Token ids: laserd's GGUF SentencePiece tokenizer and lm-eval rule vs llama.cpp's.
  auto tok = TokenizeDataset(*lm_->tokenizer, *ds, lm_->model->config().max_positions);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_EQ(tok->size(), rex.size());
  int id_mismatches = 0;
  for (size_t i = 0; i < rex.size(); ++i) {
    const TokenizedSequence& s = (*tok)[i].seqs.at(0);
    std::vector<int32_t> prompt(s.tokens.begin(), s.tokens.begin() + s.answer_start);
    std::vector<int32_t> answer(s.tokens.begin() + s.answer_start, s.tokens.end());
    const bool same = prompt == rex[i]["prompt_ids"].get<std::vector<int32_t>>() &&
                      answer == rex[i]["answer_ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(same) << "example " << i << " (" << rex[i]["prompt"] << " +" << rex[i]["answer"]
                      << "): token ids " << json(prompt) << json(answer) << " vs "
                      << rex[i]["prompt_ids"] << rex[i]["answer_ids"];
    id_mismatches += !same;
  }
  ASSERT_EQ(id_mismatches, 0);

  EvalConfig cfg;
  cfg.score.batch_tokens = 1024;
  auto report = EvalLoaded(*lm_, *ds, cfg);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<ExampleResult>& res = report->results;
  ASSERT_EQ(res.size(), rex.size());
  double max_err = 0;
  for (size_t i = 0; i < res.size(); ++i) {
    const json& r = rex[i];
    const double err = std::abs(res[i].logprob - r["answer_logprob"].get<double>());
    max_err = std::max(max_err, err);
    EXPECT_LE(err, kLogprobTol) << "example " << i << ": laserd " << res[i].logprob
                                << ", transformers " << r["answer_logprob"];
    EXPECT_EQ(res[i].answer_tokens, r["answer_len"].get<int64_t>()) << i;
    EXPECT_EQ(res[i].greedy_match, r["greedy_match"].get<bool>())
        << "example " << i << ": greedy ids " << json(res[i].greedy_ids) << " vs "
        << r["argmax_ids"];
    const std::vector<bool> want = {r["top1"].get<bool>(), r["top5"].get<bool>(),
                                    r["top10"].get<bool>()};
    EXPECT_EQ(res[i].topk_hits, want) << "example " << i << ": first-token rank "
                                      << res[i].first_greater << " vs " << r["first_token_rank"];
  }
  std::printf("[ gemma3 ] %zu examples: max |answer logprob - transformers| = %.3g\n", res.size(),
              max_err);
  const json& agg = ref["aggregates"];
  for (const SplitAggregates& sp : report->splits) {
    const json& a = agg[sp.name];
    EXPECT_EQ(sp.agg.count, a["n"].get<int64_t>()) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.accuracy, a["accuracy"].get<double>()) << sp.name;
    EXPECT_NEAR(sp.agg.log_loss, a["log_loss"].get<double>(), kLogprobTol) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.topk_accuracy.at(0), a["top1_accuracy"].get<double>()) << sp.name;
  }
}

}  // namespace
}  // namespace laserd::eval
