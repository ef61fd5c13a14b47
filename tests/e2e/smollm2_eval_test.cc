// End to end: SmolLM2-135M-Instruct (Q4_1 GGUF) scored by laserd on the capitals
// set, against tests/fixtures/smollm2_capitals_reference.json, which
// scripts/fixtures/reference_smollm2.py produced with transformers loading the
// same GGUF (fp32). Checks: token ids equal the reference's, every answer
// log-prob within 1e-3, greedy match and first-token top-k identical on every
// example, aggregates consistent. Skips when the model file is absent (CI
// fetches it with scripts/fetch_model.sh before the tests).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
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

std::string ModelPath() {
  return std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}
std::string ReferencePath() {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/smollm2_capitals_reference.json";
}
std::string Device() {
  const char* d = std::getenv("LASERD_E2E_DEVICE");
  return d ? d : "cpu";
}

// The reference's records as a JSONL dataset (prompt, answer), in its order.
std::string ReferenceJsonl(const json& ref, size_t limit = SIZE_MAX) {
  std::string out;
  const json& exs = ref["examples"];
  for (size_t i = 0; i < exs.size() && i < limit; ++i) {
    out += json{{"prompt", exs[i]["prompt"]}, {"answer", exs[i]["answer"]}}.dump() + "\n";
  }
  return out;
}

class SmolLM2EvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(ModelPath())) {
      skip_ = "model " + ModelPath() + " not found (run scripts/fetch_model.sh)";
      return;
    }
    std::ifstream in(ReferencePath());
    if (!in) {
      skip_ =
          "reference " + ReferencePath() + " not found (run scripts/fixtures/reference_smollm2.py)";
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

TEST_F(SmolLM2EvalTest, ReferenceDescribesThisModelAndRule) {
  EXPECT_EQ((*ref_)["model_file"], "SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ((*ref_)["tokenizer"]["add_bos"], false);
  EXPECT_FALSE(lm_->tokenizer->adds_bos());
  EXPECT_GE((*ref_)["examples"].size(), 200u);
  // The committed dataset generator's output, when present, is the reference's data.
  const std::string data = std::string(LASERD_DATA_DIR) + "/capitals.jsonl";
  if (std::filesystem::exists(data)) {
    auto ds = LoadDataset(data);
    ASSERT_TRUE(ds.ok()) << ds.status();
    ASSERT_EQ(ds->examples.size(), (*ref_)["examples"].size())
        << data << " differs from the reference's dataset (rerun scripts/make_capitals.py)";
    for (size_t i = 0; i < ds->examples.size(); ++i) {
      EXPECT_EQ(ds->examples[i].prompt, (*ref_)["examples"][i]["prompt"]) << i;
      EXPECT_EQ(ds->examples[i].answer, (*ref_)["examples"][i]["answer"]) << i;
    }
  }
}

TEST_F(SmolLM2EvalTest, MatchesTransformersOnEveryExample) {
  const json& ref = *ref_;
  const json& rex = ref["examples"];
  auto ds = ParseDataset(ReferenceJsonl(ref), "reference");
  ASSERT_TRUE(ds.ok()) << ds.status();

  // Token ids: laserd's lm-eval rule vs the reference's ids.
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
                      << "): token ids differ from the reference";
    EXPECT_EQ(s.boundary_mismatch, !rex[i]["whole_prefix_equals_prompt"].get<bool>()) << i;
    id_mismatches += !same;
  }
  ASSERT_EQ(id_mismatches, 0);

  // Scores, in packed batches.
  EvalConfig cfg;
  cfg.score.batch_tokens = 1024;  // several batches, mixed lengths
  auto report = EvalLoaded(*lm_, *ds, cfg);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<ExampleResult>& res = report->results;
  ASSERT_EQ(res.size(), rex.size());
  double max_err = 0;
  int greedy_diff = 0, topk_diff = 0;
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
    greedy_diff += res[i].greedy_match != r["greedy_match"].get<bool>();
    const std::vector<bool> want = {r["top1"].get<bool>(), r["top5"].get<bool>(),
                                    r["top10"].get<bool>()};
    EXPECT_EQ(res[i].topk_hits, want) << "example " << i << ": first-token rank "
                                      << res[i].first_greater << " vs " << r["first_token_rank"];
    topk_diff += res[i].topk_hits != want;
    EXPECT_EQ(res[i].correct, res[i].greedy_match) << i;
  }
  std::printf(
      "[ smollm2 ] %zu examples: max |answer logprob - transformers| = %.3g, "
      "greedy differences %d, top-k differences %d, %.1f tokens/s\n",
      res.size(), max_err, greedy_diff, topk_diff,
      report->tokens / std::max(report->score_seconds, 1e-9));

  // Aggregates: same split sizes; accuracy and top-k identical (they are counts of
  // identical flags); log-loss within the per-example tolerance.
  const json& agg = ref["aggregates"];
  ASSERT_EQ(report->splits.size(), 3u);
  for (const SplitAggregates& sp : report->splits) {
    const json& a = agg[sp.name];
    EXPECT_EQ(sp.agg.count, a["n"].get<int64_t>()) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.accuracy, a["accuracy"].get<double>()) << sp.name;
    EXPECT_NEAR(sp.agg.log_loss, a["log_loss"].get<double>(), kLogprobTol) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.topk_accuracy.at(0), a["top1_accuracy"].get<double>()) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.topk_accuracy.at(1), a["top5_accuracy"].get<double>()) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.topk_accuracy.at(2), a["top10_accuracy"].get<double>()) << sp.name;
  }
  EXPECT_EQ(report->split.validation.size(), ref["split"]["n_validation"].get<size_t>());
}

// The same numbers through the laserd binary: `laserd eval --json --per-example`
// on the first 25 reference examples.
TEST_F(SmolLM2EvalTest, CommandLineReport) {
  const std::string laserd = std::string(LASERD_BINARY_DIR) + "/server/laserd";
  LASERD_REQUIRE_BUILT(laserd);
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("laserd_e2e_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
       std::to_string(reinterpret_cast<uintptr_t>(this)));
  std::filesystem::create_directories(dir);
  const std::string data = (dir / "data.jsonl").string();
  const std::string per = (dir / "per.jsonl").string();
  const std::string out = (dir / "out.json").string();
  constexpr size_t kN = 25;
  std::ofstream(data) << ReferenceJsonl(*ref_, kN);
  const std::string cmd = laserd + " eval --model '" + ModelPath() + "' --data '" + data +
                          "' --device " + Device() + " --json --no-progress --per-example '" + per +
                          "' > '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream oin(out);
  json j = json::parse(oin);
  const json& rex = (*ref_)["examples"];
  // Expected aggregates from the reference's per-example values (n_val = 5 of 25).
  double val_correct = 0, test_correct = 0;
  for (size_t i = 0; i < kN; ++i) {
    (i < 5 ? val_correct : test_correct) += rex[i]["greedy_match"].get<bool>();
  }
  EXPECT_EQ(j["split"]["validation"], 5);
  EXPECT_EQ(j["split"]["test"], 20);
  EXPECT_EQ(j["data"]["examples"], 25);
  EXPECT_DOUBLE_EQ(j["metrics"]["validation"]["accuracy"].get<double>(), 100.0 * val_correct / 5);
  EXPECT_DOUBLE_EQ(j["metrics"]["test"]["accuracy"].get<double>(), 100.0 * test_correct / 20);
  EXPECT_EQ(j["metrics"]["all"]["count"], 25);
  std::ifstream pin(per);
  std::string line;
  size_t n = 0;
  while (std::getline(pin, line)) {
    json e = json::parse(line);
    ASSERT_LT(n, kN);
    EXPECT_EQ(e["index"], n);
    EXPECT_EQ(e["line"], n + 1);
    EXPECT_EQ(e["split"], n < 5 ? "validation" : "test");
    EXPECT_EQ(e["answer_ids"], rex[n]["answer_ids"]);
    EXPECT_NEAR(e["logprob"].get<double>(), rex[n]["answer_logprob"].get<double>(), kLogprobTol);
    EXPECT_EQ(e["greedy_match"], rex[n]["greedy_match"]);
    ++n;
  }
  EXPECT_EQ(n, kN);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace laserd::eval
