// `laserd sweep` end to end on SmolLM2-135M (skips when the model or the
// capitals data are absent): 2 types x 2 layers x 2 rho on the first 40
// capitals; every result's metrics equal a sweep run in-process without prefix
// reuse or factored apply (full forwards of the densely edited model).
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "proto/results_io.h"
#include "tests/support/fixtures.h"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

namespace fs = std::filesystem;

TEST(SmolLM2SweepTest, SmallSweepEndToEnd) {
  const std::string model =
      std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const std::string caps = std::string(LASERD_DATA_DIR) + "/capitals.jsonl";
  const std::string laserd = std::string(LASERD_BINARY_DIR) + "/server/laserd";
  if (!fs::exists(model) || !fs::exists(caps)) {
    LASERD_SKIP_OR_FAIL_IN_CI("SmolLM2 or capitals data absent");
  }
  LASERD_REQUIRE_BUILT(laserd);
  const fs::path dir =
      fs::temp_directory_path() / ("laserd_smol_sweep_" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ifstream in(caps);
    std::ofstream out(dir / "data.jsonl");
    std::string line;
    for (int i = 0; i < 40 && std::getline(in, line); ++i) out << line << '\n';
  }
  const std::string spec = (dir / "spec.json").string();
  std::ofstream(spec)
      << R"({"dataset": {"path": ")" << (dir / "data.jsonl").string()
      << R"("}, "matrix_types": ["mlp.in", "attn.o"], "layers": {"indices": [28, 26]},
      "rho": {"values": [0.05, 0.5]}, "svd": {"method": "SVD_METHOD_AUTO", "seed": 7}})";
  const std::string out = (dir / "r.jsonl").string();
  const int rc =
      std::system((laserd + " sweep --device cpu --no-progress --model " + model + " --spec " +
                   spec + " --out " + out + " > " + (dir / "o.txt").string() + " 2>&1")
                      .c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  auto rf = api::ParseResultsFile(test_support::ReadFile(out), out);
  ASSERT_TRUE(rf.ok()) << rf.status();
  ASSERT_TRUE(rf->has_header);
  EXPECT_EQ(rf->header.progress().interventions_total(), 8);
  EXPECT_EQ(rf->header.validation_examples(), 8);
  EXPECT_EQ(rf->header.test_examples(), 32);
  ASSERT_EQ(rf->results.size(), 8u);

  auto lm = model::LoadModel(model, "cpu");
  ASSERT_TRUE(lm.ok());
  auto ds = eval::LoadDataset((dir / "data.jsonl").string());
  ASSERT_TRUE(ds.ok());
  laser::SweepConfig cfg;
  cfg.matrix_types = {"mlp.in", "attn.o"};
  cfg.layer_indices = {28, 26};
  cfg.ranks = {0.05, 0.5};
  cfg.svd.seed = 7;
  cfg.prefix_reuse = false;
  cfg.factored_apply = false;
  auto runner = laser::SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok());
  auto base = (*runner)->Baseline();
  ASSERT_TRUE(base.ok());
  EXPECT_NEAR(rf->header.baseline().validation().log_loss(), base->validation.log_loss, 1e-4);
  EXPECT_EQ(rf->header.baseline().test().accuracy(), base->test.accuracy);
  size_t i = 0;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          const auto& p = rf->results[i++];
                          EXPECT_EQ(p.plan_index(), r.intervention.plan_index);
                          EXPECT_EQ(p.intervention().matrix_type(), r.intervention.type);
                          EXPECT_EQ(p.intervention().layer(), r.intervention.layer);
                          EXPECT_EQ(p.intervention().rank(), r.intervention.rank);
                          EXPECT_NEAR(p.metrics().validation().log_loss(),
                                      r.metrics.validation.log_loss, 1e-4);
                          EXPECT_NEAR(p.metrics().test().log_loss(), r.metrics.test.log_loss, 1e-4);
                          EXPECT_EQ(p.metrics().validation().accuracy(),
                                    r.metrics.validation.accuracy);
                          EXPECT_EQ(p.metrics().test().accuracy(), r.metrics.test.accuracy);
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(i, 8u);
  // Layer-major plan: layer 26 first.
  EXPECT_EQ(rf->results[0].intervention().layer(), 26);
  EXPECT_EQ(rf->results[0].intervention().matrix_type(), "attn.o");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace laserd
