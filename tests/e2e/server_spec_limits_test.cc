// The documented limits of a sweep spec and of a job's labels through
// CreateSweep on a real `laserd serve` (validate_only, so nothing runs): each
// accepted at its limit, refused one past it with INVALID_ARGUMENT and the
// same message `laserd sweep` gives (server/sweep_io.h SpecLimits,
// server/sweep_handlers.h kMaxLabels / kMaxLabelBytes, docs/sweep.md).
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/sweep_handlers.h"
#include "server/sweep_io.h"
#include "tests/e2e/server_harness.h"
#include "tests/e2e/server_test_fixture.h"

namespace pb = ::laser::v1;

namespace {

using laserd::server::SpecLimits;
using laserd_test::kWrite;
using laserd_test::Server;
using laserd_test::ServerTest;

grpc::Status Validate(Server& s, const pb::SweepSpec& spec) {
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kWrite);
  pb::CreateSweepRequest req;
  *req.mutable_spec() = spec;
  req.set_validate_only(true);
  pb::Job j;
  return s.sweeps().CreateSweep(&ctx, req, &j);
}

struct Bound {
  const char* name;
  std::function<void(pb::SweepSpec*, int64_t)> set;
  int64_t limit;
  std::string message;
};

TEST_F(ServerTest, SpecAndLabelLimitsOnCreateSweep) {
  const std::vector<Bound> bounds = {
      {"power iterations",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_svd()->set_method(pb::SVD_METHOD_RANDOMIZED);
         s->mutable_svd()->set_power_iterations(static_cast<int32_t>(v));
       },
       SpecLimits::kPowerIterations,
       absl::StrCat("spec.svd.power_iterations: ", SpecLimits::kPowerIterations + 1,
                    " is above the limit ", SpecLimits::kPowerIterations)},
      {"batch tokens",
       [](pb::SweepSpec* s, int64_t v) { s->mutable_batch()->set_max_batch_tokens(v); },
       SpecLimits::kMaxBatchTokens,
       absl::StrCat("spec.batch.max_batch_tokens: ", SpecLimits::kMaxBatchTokens + 1,
                    " is above the limit ", SpecLimits::kMaxBatchTokens)},
      {"top_k", [](pb::SweepSpec* s, int64_t v) { s->add_top_k(static_cast<int32_t>(v)); },
       SpecLimits::kTopK,
       absl::StrCat("spec.top_k[0]: ", SpecLimits::kTopK + 1, " is above the limit ",
                    SpecLimits::kTopK)},
      {"composition length",
       [](pb::SweepSpec* s, int64_t v) {
         s->mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
         s->mutable_composition()->set_max_interventions(static_cast<int32_t>(v));
       },
       SpecLimits::kCompositionMaxInterventions,
       absl::StrCat(
           "spec.composition.max_interventions: ", SpecLimits::kCompositionMaxInterventions + 1,
           " is above the limit ", SpecLimits::kCompositionMaxInterventions)},
      {"label count",
       [](pb::SweepSpec* s, int64_t v) {
         for (int64_t i = 0; i < v; ++i) (*s->mutable_labels())[absl::StrCat("k", i)] = "v";
       },
       laserd::server::kMaxLabels,
       absl::StrCat("spec.labels: ", laserd::server::kMaxLabels + 1, " labels; the limit is ",
                    laserd::server::kMaxLabels)},
      {"label bytes",
       [](pb::SweepSpec* s, int64_t v) {
         // Labels of 315 bytes (a 60-byte key "NNaaa…", a 255-byte value),
         // the last one holding what is left: exactly v bytes in at most 64.
         int64_t left = v;
         for (int i = 0; left > 0; ++i) {
           const int64_t n = std::min<int64_t>(315, left);
           const int64_t key = n > 63 ? 60 : n;
           std::string k = n == 1 ? "z" : absl::StrCat(i / 10, i % 10);
           k.resize(key, 'a');
           (*s->mutable_labels())[k] = std::string(n - key, 'x');
           left -= n;
         }
       },
       laserd::server::kMaxLabelBytes,
       absl::StrCat("spec.labels: ", laserd::server::kMaxLabelBytes + 1,
                    " bytes of keys and values; the limit is ", laserd::server::kMaxLabelBytes)},
  };
  for (const Bound& b : bounds) {
    SCOPED_TRACE(b.name);
    pb::SweepSpec at = Spec("small.jsonl", {0.5});
    b.set(&at, b.limit);
    grpc::Status ok = Validate(*server_, at);
    EXPECT_TRUE(ok.ok()) << ok.error_message();
    pb::SweepSpec past = Spec("small.jsonl", {0.5});
    b.set(&past, b.limit + 1);
    grpc::Status bad = Validate(*server_, past);
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(bad.error_message(), b.message);
  }
}

}  // namespace
