// The real-model LASER reference tests' shared part: a model and the capitals
// data loaded once with the reference file that transformers and torch wrote
// (scripts/fixtures/reference_laser_smollm2.py), one reference intervention run
// through the sweep runner, and the check that every exact intervention gives
// the same kept rank, truncation error, per-example answer log-probabilities
// (<= 1e-3), greedy matches, log-loss (<= 1e-3) and accuracy.
#ifndef LASERD_TESTS_SUPPORT_LASER_REFERENCE_H_
#define LASERD_TESTS_SUPPORT_LASER_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace laserd::test_support {

struct LaserReferenceEnv {
  model::LoadedModel lm;
  eval::Dataset ds;
  nlohmann::json ref;
};

// Loads LASERD_DATA_DIR/models/`model_file` on the CPU, LASERD_DATA_DIR/capitals.jsonl
// truncated to the reference's split.n (the examples it scored) and
// tests/fixtures/`reference_file`; nullptr when the model or the data are absent
// or fail to load.
inline LaserReferenceEnv* LoadLaserReference(const std::string& model_file,
                                             const std::string& reference_file) {
  const std::string model = std::string(LASERD_DATA_DIR) + "/models/" + model_file;
  const std::string caps = std::string(LASERD_DATA_DIR) + "/capitals.jsonl";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(caps)) return nullptr;
  auto lm = model::LoadModel(model, "cpu");
  auto ds = eval::LoadDataset(caps);
  if (!lm.ok() || !ds.ok()) return nullptr;
  std::ifstream f(std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/" + reference_file);
  auto* e = new LaserReferenceEnv{*std::move(lm), *std::move(ds), nlohmann::json::parse(f)};
  const size_t n = e->ref["split"]["n"].get<size_t>();
  if (e->ds.examples.size() > n) e->ds.examples.resize(n);
  return e;
}

// Runs one intervention of the reference through the sweep runner.
inline laser::SweepResult RunReferenceIntervention(LaserReferenceEnv* env, const nlohmann::json& iv,
                                                   kernels::SvdMethod method, uint64_t seed) {
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

// Checks every exact intervention of the reference against laserd's run of it;
// returns how many it checked.
inline int CheckExactInterventions(LaserReferenceEnv* env) {
  using nlohmann::json;
  int checked = 0;
  for (const json& iv : env->ref["interventions"]) {
    if (iv["svd_method"] != "exact") continue;
    SCOPED_TRACE(iv["matrix_type"].get<std::string>() + " L" +
                 std::to_string(iv["layer"].get<int>()));
    const laser::SweepResult r = RunReferenceIntervention(env, iv, kernels::SvdMethod::kExact, 0);
    EXPECT_EQ(r.intervention.rank, iv["rank"].get<int64_t>());
    EXPECT_EQ(r.intervention.max_rank, iv["max_rank"].get<int64_t>());
    EXPECT_NEAR(r.intervention.relative_error, iv["relative_error"].get<double>(), 1e-5);
    const json& m = iv["metrics"];
    EXPECT_NEAR(r.metrics.validation.log_loss, m["validation"]["log_loss"].get<double>(), 1e-3);
    EXPECT_NEAR(r.metrics.test.log_loss, m["test"]["log_loss"].get<double>(), 1e-3);
    EXPECT_DOUBLE_EQ(r.metrics.validation.accuracy, m["validation"]["accuracy"].get<double>());
    EXPECT_DOUBLE_EQ(r.metrics.test.accuracy, m["test"]["accuracy"].get<double>());
    const auto& lp = iv["per_example"]["answer_logprob"];
    // The checked count stays short of the expected one when this fails.
    EXPECT_EQ(r.examples.size(), lp.size());
    if (r.examples.size() != lp.size()) continue;
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
  return checked;
}

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_LASER_REFERENCE_H_
