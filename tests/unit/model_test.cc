// Logits of every supported architecture against transformers' fp32 logits on
// tiny random models (tests/fixtures/models, made by
// scripts/fixtures/make_tiny_models.py).
#include "engine/model/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/formats/weights.h"
#include "tests/support/test_model.h"

namespace laserd::model {
namespace {

using nlohmann::json;

std::string FixtureDir() { return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/"; }

json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

// A fixture directory of tests/fixtures/models on the CPU.
test_support::LoadedModel LoadFixture(const std::string& dir) {
  return test_support::LoadTestModel(FixtureDir() + dir);
}

// Every score of `scores` equals a log-softmax of the request's own full
// logits (each request alone, on its input tokens: all but the last, which
// only length-dependent rope scaling can tell apart), its first argmax and its
// count of greater logits.
void ExpectScoresMatchLogits(Model& m, const std::vector<ScoreRequest>& reqs,
                             const std::vector<std::vector<TokenScore>>& scores,
                             const std::string& what) {
  const int64_t V = m.config().vocab_size;
  ASSERT_EQ(scores.size(), reqs.size()) << what;
  for (size_t r = 0; r < reqs.size(); ++r) {
    auto full = m.Logits({std::vector<int32_t>(reqs[r].tokens.begin(), reqs[r].tokens.end() - 1)});
    ASSERT_TRUE(full.ok());
    ASSERT_EQ(scores[r].size(), reqs[r].tokens.size() - reqs[r].answer_start) << what;
    for (size_t q = reqs[r].answer_start; q < reqs[r].tokens.size(); ++q) {
      const float* row = full->data() + (q - 1) * V;
      double mx = row[0];
      int32_t am = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > mx) mx = row[v], am = v;
      double sum = 0;
      int64_t greater = 0;
      const float g = row[reqs[r].tokens[q]];
      for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx), greater += row[v] > g;
      const TokenScore& ts = scores[r][q - reqs[r].answer_start];
      EXPECT_NEAR(ts.logprob, g - mx - std::log(sum), 1e-5)
          << what << ": request " << r << " position " << q;
      EXPECT_EQ(ts.argmax, am) << what;
      EXPECT_EQ(ts.greater, greater) << what;
    }
  }
}

class TinyModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyModelTest, LogitsMatchTransformers) {
  const json manifest = ReadJson(FixtureDir() + "manifest.json");
  json entry;
  for (const json& m : manifest["models"])
    if (m["name"] == GetParam()) entry = m;
  ASSERT_FALSE(entry.is_null()) << GetParam();
  test_support::LoadedModel l = LoadFixture(entry["dir"]);
  ASSERT_NE(l.model, nullptr);
  const json ref = ReadJson(FixtureDir() + entry["reference"].get<std::string>());
  const int64_t V = l.model->config().vocab_size;
  ASSERT_EQ(V, ref["vocab_size"].get<int64_t>());

  std::vector<std::vector<int32_t>> all;
  std::vector<std::vector<float>> want;  // reference rows at `positions`
  std::vector<std::vector<int64_t>> positions;
  for (const json& s : ref["sequences"]) {
    all.push_back(s["ids"].get<std::vector<int32_t>>());
    positions.push_back(s["positions"].get<std::vector<int64_t>>());
    std::vector<float> w;
    for (const json& row : s["logits"])
      for (const json& x : row) w.push_back(x.get<float>());
    ASSERT_EQ(w.size(), positions.back().size() * V);
    want.push_back(std::move(w));
  }
  // Max abs difference between reference rows and a logits block of one sequence.
  auto diff = [&](size_t i, const float* got) {
    double d = 0;
    for (size_t r = 0; r < positions[i].size(); ++r)
      for (int64_t v = 0; v < V; ++v)
        d = std::max<double>(d, std::fabs(got[positions[i][r] * V + v] - want[i][r * V + v]));
    return d;
  };
  // Each sequence alone, then all of them packed into one batch.
  double worst = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    auto got = l.model->Logits({all[i]});
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), all[i].size() * V);
    worst = std::max(worst, diff(i, got->data()));
  }
  EXPECT_LE(worst, 1e-4) << GetParam() << ": single-sequence max abs error";
  auto packed = l.model->Logits(all);
  ASSERT_TRUE(packed.ok()) << packed.status();
  double worst_packed = 0;
  size_t off = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    worst_packed = std::max(worst_packed, diff(i, packed->data() + off));
    off += all[i].size() * V;
  }
  EXPECT_EQ(off, packed->size());
  EXPECT_LE(worst_packed, 1e-4) << GetParam() << ": packed-batch max abs error";
  std::printf("%s: max abs logit error vs transformers %.3g (single), %.3g (packed)\n",
              GetParam().c_str(), worst, worst_packed);

  // Score() agrees with a log-softmax of the full logits.
  std::vector<ScoreRequest> reqs;
  for (const auto& s : all)
    if (s.size() >= 2) reqs.push_back({s, static_cast<int64_t>(s.size() / 2)});
  auto scores = l.model->Score(reqs);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ExpectScoresMatchLogits(*l.model, reqs, *scores, GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Archs, TinyModelTest,
    ::testing::Values("llama", "llama_float16", "llama_bfloat16", "llama_sharded", "smollm",
                      "mistral", "qwen2", "gpt2", "gptj", "gpt_neox", "gpt_neox_seq", "llama3_1",
                      "llama3_2_tied", "llama_linear", "llama_dynamic", "llama_yarn", "qwen3",
                      "phi", "phi3", "phi4_mini", "gemma2", "gemma3", "gemma3_legacy", "mixtral",
                      "qwen2_moe", "mistral_swa", "qwen2_swa", "qwen3_moe", "olmoe"));

// Requests that share prefixes: every fixture sequence, its prefixes with
// other continuations, and the same sequence scored from two answer starts
// (so one row is scored twice, as a multiple-choice task does).
std::vector<ScoreRequest> SharedPrefixRequests(const std::vector<std::vector<int32_t>>& seqs,
                                               int32_t vocab) {
  std::vector<ScoreRequest> reqs;
  for (const auto& s : seqs) {
    if (s.size() < 4) continue;
    const int64_t n = static_cast<int64_t>(s.size());
    reqs.push_back({s, n / 2});
    reqs.push_back({s, n - 1});
    for (int64_t cut : {n / 2, n - 1}) {
      std::vector<int32_t> alt(s.begin(), s.begin() + cut);
      alt.push_back((s[cut] + 7) % vocab);
      alt.push_back((s[cut] + 3) % vocab);
      reqs.push_back({alt, cut});
    }
  }
  return reqs;
}

// The prefix tree and the last-layer-only-for-scored-rows path give what each
// sequence alone gives (a log-softmax of its full logits).
TEST_P(TinyModelTest, SharedPrefixesScoreLikeSeparateSequences) {
  const json manifest = ReadJson(FixtureDir() + "manifest.json");
  json entry;
  for (const json& m : manifest["models"])
    if (m["name"] == GetParam()) entry = m;
  ASSERT_FALSE(entry.is_null()) << GetParam();
  test_support::LoadedModel l = LoadFixture(entry["dir"]);
  ASSERT_NE(l.model, nullptr);
  const json ref = ReadJson(FixtureDir() + entry["reference"].get<std::string>());
  std::vector<std::vector<int32_t>> seqs;
  for (const json& s : ref["sequences"]) seqs.push_back(s["ids"].get<std::vector<int32_t>>());
  const int64_t V = l.model->config().vocab_size;
  const std::vector<ScoreRequest> reqs = SharedPrefixRequests(seqs, static_cast<int32_t>(V));
  ASSERT_GE(reqs.size(), 4u);

  auto tree = l.model->PrepareScore(reqs, /*share_prefixes=*/true);
  ASSERT_TRUE(tree.ok()) << tree.status();
  auto packed = l.model->PrepareScore(reqs, /*share_prefixes=*/false);
  ASSERT_TRUE(packed.ok()) << packed.status();
  if (RopeDependsOnLength(l.model->config().rope)) {
    // A shared row would need each sequence's own frequencies: never shared.
    EXPECT_FALSE(tree->layout.is_tree()) << GetParam();
    const std::vector<std::vector<TokenScore>> scores =
        l.model->ScoreFrom(l.model->EmbedScore(*tree), *tree, 0);
    ExpectScoresMatchLogits(*l.model, reqs, scores, GetParam() + " packed");
    return;
  }
  ASSERT_TRUE(tree->layout.is_tree());
  EXPECT_FALSE(packed->layout.is_tree());
  EXPECT_LT(tree->layout.total_rows(), packed->layout.total_rows());
  EXPECT_LT(tree->distinct_rows.size(), tree->rows.size());  // a row scored twice
  EXPECT_EQ(tree->rows.size(), packed->rows.size());

  for (const auto* p : {&*tree, &*packed}) {
    for (int64_t from : {int64_t{0}, l.model->config().layers - 1}) {
      kernels::Tensor h = l.model->EmbedScore(*p);
      l.model->RunLayers(&h, p->layout, 0, from);
      auto scores = l.model->ScoreFrom(std::move(h), *p, from);
      ExpectScoresMatchLogits(
          *l.model, reqs, scores,
          absl::StrCat(GetParam(), p->layout.is_tree() ? " tree" : " packed", " from ", from));
    }
  }
}

TEST(ModelTest, CanonicalMatrices) {
  test_support::LoadedModel l = LoadFixture("llama");
  ASSERT_NE(l.model, nullptr);
  EXPECT_EQ(l.model->MatrixTypes(), CanonicalMatrixTypes());
  auto q = l.model->Matrix("attn.q", 1);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->rows(), 64);
  EXPECT_EQ((*q)->cols(), 64);
  auto k = l.model->Matrix("attn.k", 0);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ((*k)->rows(), 32);  // 2 kv heads x 16
  EXPECT_EQ(l.model->Matrix("attn.q", 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(l.model->Matrix("mlp.fc", 0).status().code(), absl::StatusCode::kNotFound);

  test_support::LoadedModel g = LoadFixture("gpt2");
  ASSERT_NE(g.model, nullptr);
  // GPT-2's fused c_attn is exposed as q, k, v blocks; it has no gated mlp.up.
  EXPECT_EQ(g.model->MatrixTypes(), (std::vector<std::string>{"attn.q", "attn.k", "attn.v",
                                                              "attn.o", "mlp.in", "mlp.out"}));
  auto gq = g.model->Matrix("attn.v", 1);
  ASSERT_TRUE(gq.ok());
  EXPECT_EQ((*gq)->rows(), 64);
}

TEST(ModelTest, RejectsBadTokens) {
  test_support::LoadedModel l = LoadFixture("llama");
  ASSERT_NE(l.model, nullptr);
  EXPECT_EQ(l.model->Logits({{1, 2, 999}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(l.model->Score({{{1, 2}, 0}}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(l.model->config().max_positions + 1, 3);
  auto s = l.model->Logits({too_long});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("context"), std::string::npos) << s.status();
  too_long.push_back(3);  // the last token is not an input: one more than the context fits
  auto sc = l.model->Score({{too_long, 1}});
  EXPECT_EQ(sc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(sc.status().message().find("context"), std::string::npos) << sc.status();
  too_long.pop_back();
  EXPECT_TRUE(l.model->Score({{too_long, 1}}).ok());
}

}  // namespace
}  // namespace laserd::model
