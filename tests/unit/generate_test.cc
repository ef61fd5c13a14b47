// Greedy decoding with the KV cache (engine/model/generate.h) against greedy
// decoding without one: every step's token must be the first argmax of the
// full forward's logits of prompt + the tokens so far (Model::Logits), on
// tiny random models of every attention variant (grouped-query, learned
// positions, parallel blocks, sliding windows, soft-capping, experts).
#include "engine/model/generate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/test_model.h"

namespace laserd::model {
namespace {

std::string FixtureDir() { return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/"; }

// Prompts with shared prefixes (a prefix tree where the backend allows it),
// different lengths and one single-token prompt.
std::vector<std::vector<int32_t>> Prompts(int64_t vocab) {
  auto id = [&](int64_t x) { return static_cast<int32_t>((x * 37 + 11) % vocab); };
  std::vector<std::vector<int32_t>> p;
  std::vector<int32_t> base;
  for (int i = 0; i < 9; ++i) base.push_back(id(i));
  p.push_back(base);
  std::vector<int32_t> longer = base;
  for (int i = 0; i < 7; ++i) longer.push_back(id(100 + i));
  p.push_back(longer);
  std::vector<int32_t> other = base;
  other.back() = id(55);
  p.push_back(other);
  p.push_back({id(3)});
  p.push_back({id(7), id(8), id(9), id(10), id(11)});
  return p;
}

// Checks each generated id against the uncached forward: it must be the
// argmax of the last row, or tie it within `tol` (a near tie may break
// either way under another summation order).
void ExpectGreedy(Model& m, const std::vector<int32_t>& prompt, const Generation& g,
                  const std::string& what) {
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> seq = prompt;
  for (size_t t = 0; t < g.ids.size(); ++t) {
    auto logits = m.Logits({seq});
    ASSERT_TRUE(logits.ok()) << logits.status();
    const float* row = logits->data() + (seq.size() - 1) * V;
    int32_t am = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[am]) am = static_cast<int32_t>(v);
    if (g.ids[t] != am) {
      EXPECT_NEAR(row[g.ids[t]], row[am], 1e-4) << what << " step " << t;
    }
    seq.push_back(g.ids[t]);
  }
}

class GenerateTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateTest, MatchesUncachedGreedy) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir() + GetParam());
  ASSERT_NE(l.model, nullptr);
  Model& m = *l.model;
  const auto prompts = Prompts(m.config().vocab_size);
  for (bool share : {true, false}) {
    GenerateOptions opts;
    opts.max_new_tokens = 12;
    opts.share_prefixes = share;
    auto gen = Generate(m, prompts, opts);
    ASSERT_TRUE(gen.ok()) << gen.status();
    ASSERT_EQ(gen->size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ((*gen)[i].ids.size(), 12u);
      EXPECT_EQ((*gen)[i].reason, StopReason::kLength);
      ExpectGreedy(m, prompts[i], (*gen)[i],
                   GetParam() + (share ? " shared" : " packed") + " prompt " + std::to_string(i));
    }
    // One prompt alone gives the same ids as in the batch.
    auto alone = Generate(m, {prompts[1]}, opts);
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_EQ((*alone)[0].ids, (*gen)[1].ids) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, GenerateTest,
                         ::testing::Values("llama", "smollm", "mistral", "qwen2", "gpt2", "gptj",
                                           "gpt_neox", "phi", "phi3", "qwen3", "gemma2", "gemma3",
                                           "mixtral", "qwen2_moe", "llama_linear", "llama_yarn"));

TEST(GenerateStopTest, StopsAtStopIdAndCallback) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir() + "llama");
  ASSERT_NE(l.model, nullptr);
  Model& m = *l.model;
  const auto prompts = Prompts(m.config().vocab_size);
  GenerateOptions opts;
  opts.max_new_tokens = 10;
  auto free_run = Generate(m, prompts, opts);
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  // The third token of prompt 0 as a stop id: prompt 0 stops there, keeping it.
  const std::vector<int32_t>& ids0 = (*free_run)[0].ids;
  opts.stop_ids = {ids0[2]};
  auto eos = Generate(m, prompts, opts);
  ASSERT_TRUE(eos.ok()) << eos.status();
  size_t first = 0;
  while (ids0[first] != ids0[2]) ++first;
  EXPECT_EQ((*eos)[0].ids, std::vector<int32_t>(ids0.begin(), ids0.begin() + first + 1));
  EXPECT_EQ((*eos)[0].reason, StopReason::kEos);
  // Every other prompt is cut at its own first occurrence of that id, or runs on.
  for (size_t i = 1; i < prompts.size(); ++i) {
    const std::vector<int32_t>& f = (*free_run)[i].ids;
    auto it = std::find(f.begin(), f.end(), ids0[2]);
    const size_t len = it == f.end() ? f.size() : (it - f.begin()) + 1;
    EXPECT_EQ((*eos)[i].ids, std::vector<int32_t>(f.begin(), f.begin() + len)) << i;
  }
  // A callback stopping prompt 1 after four ids.
  opts.stop_ids.clear();
  opts.stop = [](size_t i, const std::vector<int32_t>& ids) { return i == 1 && ids.size() == 4; };
  auto cb = Generate(m, prompts, opts);
  ASSERT_TRUE(cb.ok()) << cb.status();
  EXPECT_EQ((*cb)[1].ids,
            std::vector<int32_t>((*free_run)[1].ids.begin(), (*free_run)[1].ids.begin() + 4));
  EXPECT_EQ((*cb)[1].reason, StopReason::kStopString);
  EXPECT_EQ((*cb)[0].ids, (*free_run)[0].ids);
}

TEST(GenerateStopTest, StopsAtTheContext) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir() + "llama");
  ASSERT_NE(l.model, nullptr);
  const int64_t ctx = l.model->config().max_positions;  // 128
  std::vector<int32_t> prompt(ctx - 3, 5);
  GenerateOptions opts;
  opts.max_new_tokens = 10;
  auto g = Generate(*l.model, {prompt}, opts);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)[0].ids.size(), 3u);
  EXPECT_EQ((*g)[0].reason, StopReason::kContext);
  auto full = Generate(*l.model, {std::vector<int32_t>(ctx, 5)}, opts);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kInvalidArgument);
  opts.max_new_tokens = 0;
  EXPECT_EQ(Generate(*l.model, {prompt}, opts).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GenerateStopTest, LengthDependentRopeIsUnimplemented) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir() + "llama_dynamic");
  ASSERT_NE(l.model, nullptr);
  GenerateOptions opts;
  auto g = Generate(*l.model, {{1, 2, 3}}, opts);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kUnimplemented) << g.status();
}

}  // namespace
}  // namespace laserd::model
