// LASER on Gemma 3 270M (Q4_K_M GGUF) against the same interventions run with
// transformers and torch (tests/fixtures/gemma3_laser_reference.json, produced
// by scripts/fixtures/reference_laser_smollm2.py --model gemma3 on the
// capitals examples): exact interventions on local and global layers give the
// same kept rank, truncation error, per-example answer log-probabilities
// (<= 1e-3), log-loss (<= 1e-3) and accuracy. Skips when the model or the
// capitals data are absent.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Env {
  model::LoadedModel lm;
  eval::Dataset ds;
  json ref;
};

Env* Load() {
  static Env* env = []() -> Env* {
    const std::string model = std::string(LASERD_DATA_DIR) + "/models/gemma-3-270m-q4_k_m.gguf";
    const std::string caps = std::string(LASERD_DATA_DIR) + "/capitals.jsonl";
    if (!fs::exists(model) || !fs::exists(caps)) return nullptr;
    auto lm = model::LoadModel(model, "cpu");
    auto ds = eval::LoadDataset(caps);
    if (!lm.ok() || !ds.ok()) return nullptr;
    std::ifstream f(std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/gemma3_laser_reference.json");
    auto* e = new Env{*std::move(lm), *std::move(ds), json::parse(f)};
    // The reference scored the first split.n examples of the file.
    const size_t n = e->ref["split"]["n"].get<size_t>();
    if (e->ds.examples.size() > n) e->ds.examples.resize(n);
    return e;
  }();
  return env;
}

// Runs one intervention of the reference through the sweep runner.
laser::SweepResult RunOne(Env* env, const json& iv, kernels::SvdMethod method, uint64_t seed) {
  laser::SweepConfig cfg;
  cfg.matrix_types = {iv["matrix_type"].get<std::string>()};
  cfg.layer_indices = {iv["layer"].get<int64_t>()};
  if (iv["rate"].is_number()) {
    cfg.ranks = {iv["rate"].get<double>()};
    cfg.ranks_are_rates = true;
  } else {
    cfg.ranks = {iv["rho"].get<double>()};
  }
  cfg.svd.method = method;
  cfg.svd.seed = seed;
  cfg.keep_examples = true;
  laser::SweepResult out;
  auto runner = laser::SweepRunner::Create(env->lm.model.get(), *env->lm.tokenizer, env->ds, cfg);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return out;
  int n = 0;
  EXPECT_TRUE((*runner)
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          out = r;
                          ++n;
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(n, 1);
  return out;
}

TEST(Gemma3LaserReference, ExactInterventionsMatchTransformers) {
  Env* env = Load();
  if (env == nullptr) LASERD_SKIP_OR_FAIL_IN_CI("Gemma 3 model or .data/capitals.jsonl absent");
  int checked = 0;
  for (const json& iv : env->ref["interventions"]) {
    if (iv["svd_method"] != "exact") continue;
    SCOPED_TRACE(iv["matrix_type"].get<std::string>() + " L" +
                 std::to_string(iv["layer"].get<int>()));
    const laser::SweepResult r = RunOne(env, iv, kernels::SvdMethod::kExact, 0);
    EXPECT_EQ(r.intervention.rank, iv["rank"].get<int64_t>());
    EXPECT_EQ(r.intervention.max_rank, iv["max_rank"].get<int64_t>());
    EXPECT_NEAR(r.intervention.relative_error, iv["relative_error"].get<double>(), 1e-5);
    const json& m = iv["metrics"];
    EXPECT_NEAR(r.metrics.validation.log_loss, m["validation"]["log_loss"].get<double>(), 1e-3);
    EXPECT_NEAR(r.metrics.test.log_loss, m["test"]["log_loss"].get<double>(), 1e-3);
    EXPECT_DOUBLE_EQ(r.metrics.validation.accuracy, m["validation"]["accuracy"].get<double>());
    EXPECT_DOUBLE_EQ(r.metrics.test.accuracy, m["test"]["accuracy"].get<double>());
    const auto& lp = iv["per_example"]["answer_logprob"];
    ASSERT_EQ(r.examples.size(), lp.size());
    double worst = 0;
    for (size_t i = 0; i < lp.size(); ++i) {
      worst = std::max(worst, std::fabs(r.examples[i].logprob - lp[i].get<double>()));
      const json& g = iv["per_example"]["greedy_match"][i];
      EXPECT_EQ(r.examples[i].greedy_match, g.is_boolean() ? g.get<bool>() : g.get<int>() != 0)
          << "example " << i;
    }
    EXPECT_LE(worst, 1e-3);
    std::printf("%s L%d rho %.3g: k %lld, max |dlogprob| %.2g\n",
                iv["matrix_type"].get<std::string>().c_str(), iv["layer"].get<int>(),
                iv["rho"].get<double>(), static_cast<long long>(r.intervention.rank), worst);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace laserd
