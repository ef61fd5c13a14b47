// The real-model evaluation tests' shared part: a GoogleTest fixture that loads
// one fetched GGUF model (LASERD_DATA_DIR/models, on LASERD_E2E_DEVICE or the
// CPU) and its transformers reference (tests/fixtures) once per suite, and the
// checks of laserd's token ids, per-example scores and split aggregates
// against that reference.
#ifndef LASERD_TESTS_SUPPORT_MODEL_REFERENCE_H_
#define LASERD_TESTS_SUPPORT_MODEL_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/eval/example.h"
#include "engine/eval/metrics.h"
#include "engine/eval/run.h"
#include "engine/eval/scorer.h"
#include "engine/eval/split.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/requirements.h"

namespace laserd::test_support {

// The device of the end-to-end model tests: LASERD_E2E_DEVICE, else "cpu".
inline std::string E2eDevice() {
  const char* d = std::getenv("LASERD_E2E_DEVICE");
  return d ? d : "cpu";
}

// The reference's records as a JSONL dataset (prompt, answer), in its order.
inline std::string ReferenceJsonl(const nlohmann::json& ref, size_t limit = SIZE_MAX) {
  std::string out;
  const nlohmann::json& exs = ref["examples"];
  for (size_t i = 0; i < exs.size() && i < limit; ++i) {
    out += nlohmann::json{{"prompt", exs[i]["prompt"]}, {"answer", exs[i]["answer"]}}.dump() + "\n";
  }
  return out;
}

// A real model and its transformers reference.
struct ModelReferenceSpec {
  const char* model_file;  // under LASERD_DATA_DIR/models
  const char* reference;   // under tests/fixtures
  const char* generator;   // the script that writes the reference
};

// Loads the model and the reference that kSpec names once for the suite. Each
// test skips (fails under CI) when either is absent and fails when the model
// does not load.
template <const ModelReferenceSpec& kSpec>
class ModelReferenceTest : public ::testing::Test {
 protected:
  static std::string ModelPath() {
    return std::string(LASERD_DATA_DIR) + "/models/" + kSpec.model_file;
  }
  static std::string ReferencePath() {
    return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/" + kSpec.reference;
  }

  static void SetUpTestSuite() {
    if (!std::filesystem::exists(ModelPath())) {
      skip_ = "model " + ModelPath() + " not found (run scripts/fetch_model.sh)";
      return;
    }
    std::ifstream in(ReferencePath());
    if (!in) {
      skip_ = "reference " + ReferencePath() + " not found (run " + kSpec.generator + ")";
      return;
    }
    ref_ = new nlohmann::json(nlohmann::json::parse(in));
    auto lm = model::LoadModel(ModelPath(), E2eDevice());
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
  static inline nlohmann::json* ref_ = nullptr;
  static inline model::LoadedModel* lm_ = nullptr;
};

// Expects each example's prompt and answer token ids to equal the reference
// example's prompt_ids and answer_ids; returns how many differ.
inline int CountTokenIdMismatches(const std::vector<eval::TokenizedExample>& tok,
                                  const nlohmann::json& rex) {
  int mismatches = 0;
  for (size_t i = 0; i < rex.size() && i < tok.size(); ++i) {
    const eval::TokenizedSequence& s = tok[i].seqs.at(0);
    std::vector<int32_t> prompt(s.tokens.begin(), s.tokens.begin() + s.answer_start);
    std::vector<int32_t> answer(s.tokens.begin() + s.answer_start, s.tokens.end());
    const bool same = prompt == rex[i]["prompt_ids"].get<std::vector<int32_t>>() &&
                      answer == rex[i]["answer_ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(same) << "example " << i << " (" << rex[i]["prompt"] << " +" << rex[i]["answer"]
                      << "): token ids " << nlohmann::json(prompt) << nlohmann::json(answer)
                      << " vs " << rex[i]["prompt_ids"] << rex[i]["answer_ids"];
    mismatches += !same;
  }
  return mismatches;
}

struct ScoreDifferences {
  double max_logprob_error = 0;
  int greedy = 0;  // examples whose greedy match differs
  int topk = 0;    // examples whose first-token top-1/5/10 hits differ
};

// Expects every example's answer log-prob within `tol` of the reference's and
// its answer length, greedy match and first-token top-1/5/10 hits identical.
inline ScoreDifferences ExpectScoresMatch(const std::vector<eval::ExampleResult>& res,
                                          const nlohmann::json& rex, double tol) {
  ScoreDifferences d;
  for (size_t i = 0; i < res.size() && i < rex.size(); ++i) {
    const nlohmann::json& r = rex[i];
    const double err = std::abs(res[i].logprob - r["answer_logprob"].get<double>());
    d.max_logprob_error = std::max(d.max_logprob_error, err);
    EXPECT_LE(err, tol) << "example " << i << ": laserd " << res[i].logprob << ", transformers "
                        << r["answer_logprob"];
    EXPECT_EQ(res[i].answer_tokens, r["answer_len"].get<int64_t>()) << i;
    EXPECT_EQ(res[i].greedy_match, r["greedy_match"].get<bool>())
        << "example " << i << ": greedy ids " << nlohmann::json(res[i].greedy_ids) << " vs "
        << r["argmax_ids"];
    d.greedy += res[i].greedy_match != r["greedy_match"].get<bool>();
    const std::vector<bool> want = {r["top1"].get<bool>(), r["top5"].get<bool>(),
                                    r["top10"].get<bool>()};
    EXPECT_EQ(res[i].topk_hits, want) << "example " << i << ": first-token rank "
                                      << res[i].first_greater << " vs " << r["first_token_rank"];
    d.topk += res[i].topk_hits != want;
  }
  return d;
}

// Expects each split's count, accuracy and the first `topk_checked` of top-1,
// top-5 and top-10 accuracy to equal the reference aggregates' (they are counts
// of identical flags) and its log-loss within `tol`.
inline void ExpectAggregatesMatch(const std::vector<eval::SplitAggregates>& splits,
                                  const nlohmann::json& agg, double tol, size_t topk_checked) {
  static const char* const kTopk[] = {"top1_accuracy", "top5_accuracy", "top10_accuracy"};
  for (const eval::SplitAggregates& sp : splits) {
    const nlohmann::json& a = agg[sp.name];
    EXPECT_EQ(sp.agg.count, a["n"].get<int64_t>()) << sp.name;
    EXPECT_DOUBLE_EQ(sp.agg.accuracy, a["accuracy"].get<double>()) << sp.name;
    EXPECT_NEAR(sp.agg.log_loss, a["log_loss"].get<double>(), tol) << sp.name;
    for (size_t k = 0; k < topk_checked && k < 3; ++k) {
      EXPECT_DOUBLE_EQ(sp.agg.topk_accuracy.at(k), a[kTopk[k]].get<double>())
          << sp.name << " " << kTopk[k];
    }
  }
}

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_MODEL_REFERENCE_H_
