// The documented limits of a sweep spec (server/sweep_io.h SpecLimits,
// docs/sweep.md "Limits"): every bounded field is accepted at its limit and
// refused one past it with INVALID_ARGUMENT naming the field and the limit,
// through SweepConfigFromSpec, the check `laserd sweep` and `laserd serve`
// both run.
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/sweep_io.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using L = SpecLimits;

pb::SweepSpec Base() {
  pb::SweepSpec s;
  s.mutable_dataset()->set_path("data.jsonl");
  s.mutable_rho()->add_values(0.5);
  return s;
}

struct Bound {
  const char* name;
  // Sets the field to `v` (a value, or a number of values).
  std::function<void(pb::SweepSpec*, int64_t)> set;
  int64_t limit;
  // The message one past the limit gives.
  std::string message;
};

std::string Above(const std::string& field, int64_t limit) {
  return "spec." + field + ": " + std::to_string(limit + 1) + " is above the limit " +
         std::to_string(limit);
}
std::string TooMany(const std::string& field, int64_t limit) {
  return "spec." + field + ": " + std::to_string(limit + 1) + " values; the limit is " +
         std::to_string(limit);
}

std::vector<Bound> Bounds() {
  return {
      {"power_iterations",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_svd()->set_method(pb::SVD_METHOD_RANDOMIZED);
         s->mutable_svd()->set_power_iterations(static_cast<int32_t>(v));
       },
       L::kPowerIterations, Above("svd.power_iterations", L::kPowerIterations)},
      {"oversampling",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_svd()->set_oversampling(static_cast<int32_t>(v));
       },
       L::kOversampling, Above("svd.oversampling", L::kOversampling)},
      {"batch_size",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_batch()->set_batch_size(static_cast<int32_t>(v));
       },
       L::kBatchSize, Above("batch.batch_size", L::kBatchSize)},
      {"max_batch_tokens",
       [](pb::SweepSpec* s, int64_t v) { s->mutable_batch()->set_max_batch_tokens(v); },
       L::kMaxBatchTokens, Above("batch.max_batch_tokens", L::kMaxBatchTokens)},
      {"top_k value", [](pb::SweepSpec* s, int64_t v) { s->add_top_k(static_cast<int32_t>(v)); },
       L::kTopK, Above("top_k[0]", L::kTopK)},
      {"top_k count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 1; i <= v; ++i) s->add_top_k(static_cast<int32_t>(i));
       },
       L::kTopKValues, TooMany("top_k", L::kTopKValues)},
      {"composition length",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
         s->mutable_composition()->set_max_interventions(static_cast<int32_t>(v));
       },
       L::kCompositionMaxInterventions,
       Above("composition.max_interventions", L::kCompositionMaxInterventions)},
      {"matrix_types count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 0; i < v; ++i) s->add_matrix_types("mlp");
       },
       L::kMatrixTypes, TooMany("matrix_types", L::kMatrixTypes)},
      {"layer indices count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 0; i < v; ++i) s->mutable_layers()->add_indices(0);
       },
       L::kLayerIndices, TooMany("layers.indices", L::kLayerIndices)},
      {"layer index",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_layers()->add_indices(static_cast<int32_t>(v));
       },
       L::kLayer, Above("layers.indices[0]", L::kLayer)},
      {"layer ranges count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 0; i < v; ++i) s->mutable_layers()->add_ranges();
       },
       L::kLayerRanges, TooMany("layers.ranges", L::kLayerRanges)},
      {"layer range start",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_layers()->add_ranges()->set_start(static_cast<int32_t>(v));
       },
       L::kLayer, Above("layers.ranges[0].start", L::kLayer)},
      {"layer range stop",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_layers()->add_ranges()->set_stop(static_cast<int32_t>(v));
       },
       L::kLayer, Above("layers.ranges[0].stop", L::kLayer)},
      {"layer range step",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_layers()->add_ranges()->set_step(static_cast<int32_t>(v));
       },
       L::kLayer, Above("layers.ranges[0].step", L::kLayer)},
      {"rho count",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_rho()->clear_values();
         for (int64_t i = 0; i < v; ++i) s->mutable_rho()->add_values(0.5);
       },
       L::kRankValues, TooMany("rho.values", L::kRankValues)},
      {"rate count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 0; i < v; ++i) s->mutable_rate()->add_values(9);
       },
       L::kRankValues, TooMany("rate.values", L::kRankValues)},
      {"shard count",
       [](pb::SweepSpec* s, int64_t v) { s->mutable_shard()->set_count(static_cast<uint32_t>(v)); },
       L::kShardCount, Above("shard.count", L::kShardCount)},
  };
}

TEST(SpecLimitsTest, EachFieldAcceptedAtItsLimitRefusedOnePast) {
  for (const Bound& b : Bounds()) {
    SCOPED_TRACE(b.name);
    pb::SweepSpec at = Base();
    b.set(&at, b.limit);
    auto ok = SweepConfigFromSpec(at);
    EXPECT_TRUE(ok.ok()) << ok.status();
    pb::SweepSpec past = Base();
    b.set(&past, b.limit + 1);
    auto bad = SweepConfigFromSpec(past);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(bad.status().message(), b.message);
  }
}

TEST(SpecLimitsTest, ThePowerIterationsThatWedgedAWorkerAreRefused) {
  pb::SweepSpec s = Base();
  s.mutable_svd()->set_power_iterations(2147483647);
  auto r = SweepConfigFromSpec(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "spec.svd.power_iterations: 2147483647 is above the limit 64");
}

}  // namespace
}  // namespace laserd::server
