// Greedy generation and the match rules on the real SmolLM2-135M against
// transformers' generate() (tests/fixtures/smollm2_generation_reference.json,
// written by scripts/fixtures/reference_generation_smollm2.py): the same
// prompt ids, the same generated token ids (EOS and stop strings included),
// the same text and the same exact / prefix / contains / contains-with-prompt
// / top1_decoded decisions, on the capitals set and on a small set of prompts
// whose continuations run many tokens (with and without stop strings).
#include <gtest/gtest.h>

#include "engine/eval/dataset.h"
#include "engine/eval/generation.h"
#include "engine/eval/match.h"
#include "engine/eval/run.h"
#include "engine/laser/sweep.h"
#include "tests/support/model_reference.h"

namespace laserd::eval {
namespace {

using nlohmann::json;

constexpr test_support::ModelReferenceSpec kSmolLM2Generation = {
    "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2_generation_reference.json",
    "scripts/fixtures/reference_generation_smollm2.py"};

class SmolLM2GenerationTest : public test_support::ModelReferenceTest<kSmolLM2Generation> {
 protected:
  static const json& Set(const std::string& name) {
    for (const json& s : (*ref_)["sets"])
      if (s["name"] == name) return s;
    ADD_FAILURE() << "no set " << name;
    static const json empty;
    return empty;
  }

  static Dataset Load(const json& set) {
    const std::string path =
        set["name"] == "capitals"
            ? std::string(LASERD_DATA_DIR) + "/capitals.jsonl"
            : std::string(LASERD_SOURCE_DIR) + "/" + set["data"].get<std::string>();
    auto ds = LoadDataset(path);
    EXPECT_TRUE(ds.ok()) << ds.status();
    ds->examples.resize(set["examples"].size());
    return *std::move(ds);
  }

  static std::vector<ExampleResult> Run(const Dataset& ds, const json& set, MatchRule rule,
                                        bool match_prompt = false) {
    EvalConfig cfg;
    cfg.match.rule = rule;
    cfg.match.max_new_tokens = set["max_new_tokens"].get<int64_t>();
    cfg.match.stop_strings = set["stop_strings"].get<std::vector<std::string>>();
    cfg.match.match_prompt = match_prompt;
    auto rep = EvalLoaded(*lm_, ds, cfg);
    EXPECT_TRUE(rep.ok()) << rep.status();
    return rep.ok() ? rep->results : std::vector<ExampleResult>{};
  }

  // Every generation and the contains and top1_decoded decisions; on small
  // sets also exact, prefix and contains with the prompt through their own
  // runs.
  void CheckSet(const std::string& name, bool every_rule) {
    const json& set = Set(name);
    const json& rex = set["examples"];
    ASSERT_GT(rex.size(), 0u);
    const Dataset ds = Load(set);
    int id_mismatches = 0, decision_mismatches = 0;
    const std::vector<ExampleResult> res = Run(ds, set, MatchRule::kContains);
    ASSERT_EQ(res.size(), rex.size());
    for (size_t i = 0; i < rex.size(); ++i) {
      const json& r = rex[i];
      auto prompt_ids = lm_->tokenizer->Encode(ds.examples[i].prompt, true);
      ASSERT_TRUE(prompt_ids.ok());
      EXPECT_EQ(*prompt_ids, r["prompt_ids"].get<std::vector<int32_t>>()) << name << " " << i;
      const bool same = res[i].generated_ids == r["generated_ids"].get<std::vector<int32_t>>();
      EXPECT_TRUE(same) << name << " example " << i << " (" << ds.examples[i].prompt << "): laserd "
                        << json(res[i].generated_ids) << " " << json(res[i].generated_text)
                        << ", transformers " << r["generated_ids"] << " " << r["text"];
      id_mismatches += !same;
      EXPECT_EQ(res[i].generated_text, r["text"].get<std::string>()) << name << " " << i;
      EXPECT_TRUE(res[i].generated);
      EXPECT_EQ(res[i].correct, r["contains"].get<bool>()) << name << " " << i;
      decision_mismatches += res[i].correct != r["contains"].get<bool>();
    }
    const std::vector<ExampleResult> top1 = Run(ds, set, MatchRule::kTop1Decoded);
    ASSERT_EQ(top1.size(), rex.size());
    for (size_t i = 0; i < rex.size(); ++i) {
      EXPECT_EQ(top1[i].correct, rex[i]["top1_decoded"].get<bool>()) << name << " " << i;
      EXPECT_FALSE(top1[i].generated);
      decision_mismatches += top1[i].correct != rex[i]["top1_decoded"].get<bool>();
    }
    if (every_rule) {
      struct Rule {
        MatchRule rule;
        bool prompt;
        const char* key;
      };
      for (const Rule& rule :
           {Rule{MatchRule::kExact, false, "exact"}, Rule{MatchRule::kPrefix, false, "prefix"},
            Rule{MatchRule::kContains, true, "contains_prompt"}}) {
        const std::vector<ExampleResult> rr = Run(ds, set, rule.rule, rule.prompt);
        ASSERT_EQ(rr.size(), rex.size());
        for (size_t i = 0; i < rex.size(); ++i) {
          EXPECT_EQ(rr[i].correct, rex[i][rule.key].get<bool>())
              << name << " " << rule.key << " " << i;
          decision_mismatches += rr[i].correct != rex[i][rule.key].get<bool>();
        }
      }
    } else {
      // The other decisions from the generated text (the same function the
      // runs above use).
      for (size_t i = 0; i < rex.size(); ++i) {
        const std::string t = NormalizeAnswer(res[i].generated_text);
        const std::string a = NormalizeAnswer(ds.examples[i].answer);
        EXPECT_EQ(TextMatches(MatchRule::kExact, t, a), rex[i]["exact"].get<bool>()) << i;
        EXPECT_EQ(TextMatches(MatchRule::kPrefix, t, a), rex[i]["prefix"].get<bool>()) << i;
        EXPECT_EQ(TextMatches(MatchRule::kContains,
                              NormalizeAnswer(ds.examples[i].prompt + res[i].generated_text), a),
                  rex[i]["contains_prompt"].get<bool>())
            << i;
      }
    }
    std::printf("%s: %zu examples, %d generated id mismatches, %d decision mismatches\n",
                name.c_str(), rex.size(), id_mismatches, decision_mismatches);
  }
};

TEST_F(SmolLM2GenerationTest, CapitalsMatchTransformersGenerate) { CheckSet("capitals", false); }

TEST_F(SmolLM2GenerationTest, LongContinuationsMatchTransformersGenerate) {
  CheckSet("prompts", true);
}

TEST_F(SmolLM2GenerationTest, StopStringsMatchTransformersGenerate) {
  CheckSet("prompts_stop", true);
}

// A sweep with the contains rule: the baseline's accuracy per split is the
// share of the reference's contains decisions, and an edited model is scored
// by generating with the edit applied (its F1 and accuracy differ from the
// baseline's; the model is restored after).
TEST_F(SmolLM2GenerationTest, SweepScoresByGeneration) {
  const json& set = Set("prompts");
  const json& rex = set["examples"];
  const Dataset ds = Load(set);
  laser::SweepConfig cfg;
  cfg.task = laser::TaskFilter::kCompletion;
  cfg.match.rule = MatchRule::kContains;
  cfg.match.max_new_tokens = set["max_new_tokens"].get<int64_t>();
  cfg.matrix_types = {"mlp.in"};
  cfg.layer_indices = {3};
  cfg.ranks = {0.01};
  cfg.split.val_fraction = 0.25;  // 3 validation, 9 test
  auto runner = laser::SweepRunner::Create(lm_->model.get(), *lm_->tokenizer, ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok()) << base.status();
  auto share = [&](size_t from, size_t to) {
    double c = 0;
    for (size_t i = from; i < to; ++i) c += rex[i]["contains"].get<bool>();
    return 100.0 * c / static_cast<double>(to - from);
  };
  EXPECT_DOUBLE_EQ(base->validation.accuracy, share(0, 3));
  EXPECT_DOUBLE_EQ(base->test.accuracy, share(3, rex.size()));
  EXPECT_EQ(base->validation.generated, 3);
  EXPECT_GT(base->validation.generated_tokens, 1.0);
  std::vector<laser::SweepResult> results;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          results.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].metrics.test.generated, 9);
  // Rank 5 of 576 in layer 3's MLP input changes the continuations.
  EXPECT_NE(results[0].metrics.test.f1, base->test.f1);
  // Restored: the baseline again gives the same numbers.
  auto again = (*runner)->Baseline();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->test.f1, base->test.f1);
  EXPECT_EQ(again->test.accuracy, base->test.accuracy);
}

}  // namespace
}  // namespace laserd::eval
