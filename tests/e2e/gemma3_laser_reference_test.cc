// LASER on Gemma 3 270M (Q4_K_M GGUF) against the same interventions run with
// transformers and torch (tests/fixtures/gemma3_laser_reference.json, produced
// by scripts/fixtures/reference_laser_smollm2.py --model gemma3 on the
// capitals examples): exact interventions on local and global layers give the
// same kept rank, truncation error, per-example answer log-probabilities
// (<= 1e-3), log-loss (<= 1e-3) and accuracy. Skips when the model or the
// capitals data are absent.
#include "gtest/gtest.h"
#include "tests/support/laser_reference.h"
#include "tests/support/requirements.h"

namespace laserd {
namespace {

using test_support::LaserReferenceEnv;

LaserReferenceEnv* Load() {
  static LaserReferenceEnv* env =
      test_support::LoadLaserReference("gemma-3-270m-q4_k_m.gguf", "gemma3_laser_reference.json");
  return env;
}

TEST(Gemma3LaserReference, ExactInterventionsMatchTransformers) {
  LaserReferenceEnv* env = Load();
  if (env == nullptr) LASERD_SKIP_OR_FAIL_IN_CI("Gemma 3 model or .data/capitals.jsonl absent");
  EXPECT_EQ(test_support::CheckExactInterventions(env), 4);
}

}  // namespace
}  // namespace laserd
