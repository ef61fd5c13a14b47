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
#include "tests/support/model_reference.h"
#include "tests/support/requirements.h"

namespace laserd::eval {
namespace {

using nlohmann::json;

constexpr double kLogprobTol = 1e-3;

constexpr test_support::ModelReferenceSpec kSmolLM2{"SmolLM2-135M-Instruct.Q4_1.gguf",
                                                    "smollm2_capitals_reference.json",
                                                    "scripts/fixtures/reference_smollm2.py"};
using SmolLM2EvalTest = test_support::ModelReferenceTest<kSmolLM2>;
using test_support::E2eDevice;
using test_support::ReferenceJsonl;

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
  for (size_t i = 0; i < rex.size(); ++i) {
    EXPECT_EQ((*tok)[i].seqs.at(0).boundary_mismatch,
              !rex[i]["whole_prefix_equals_prompt"].get<bool>())
        << i;
  }
  ASSERT_EQ(test_support::CountTokenIdMismatches(*tok, rex), 0);

  // Scores, in packed batches.
  EvalConfig cfg;
  cfg.score.batch_tokens = 1024;  // several batches, mixed lengths
  auto report = EvalLoaded(*lm_, *ds, cfg);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<ExampleResult>& res = report->results;
  ASSERT_EQ(res.size(), rex.size());
  const test_support::ScoreDifferences d = test_support::ExpectScoresMatch(res, rex, kLogprobTol);
  for (size_t i = 0; i < res.size(); ++i) EXPECT_EQ(res[i].correct, res[i].greedy_match) << i;
  std::printf(
      "[ smollm2 ] %zu examples: max |answer logprob - transformers| = %.3g, "
      "greedy differences %d, top-k differences %d, %.1f tokens/s\n",
      res.size(), d.max_logprob_error, d.greedy, d.topk,
      report->tokens / std::max(report->score_seconds, 1e-9));

  // Aggregates: same split sizes; accuracy and top-k identical (they are counts of
  // identical flags); log-loss within the per-example tolerance.
  ASSERT_EQ(report->splits.size(), 3u);
  test_support::ExpectAggregatesMatch(report->splits, ref["aggregates"], kLogprobTol, 3);
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
                          "' --device " + E2eDevice() + " --json --no-progress --per-example '" +
                          per + "' > '" + out + "'";
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
