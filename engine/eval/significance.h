// Paired significance of an edited model against the baseline, from the two
// models' per-example outcomes on the same examples (docs/metrics.md,
// "Significance"): McNemar's exact test on paired correctness and a seeded
// paired bootstrap of the accuracy and log-loss deltas. Pure arithmetic.
#ifndef LASERD_ENGINE_EVAL_SIGNIFICANCE_H_
#define LASERD_ENGINE_EVAL_SIGNIFICANCE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::eval {

// One example under one model state.
struct PairedOutcome {
  bool correct = false;
  double log_loss = 0;  // -answer log-prob / answer tokens
};

struct SignificanceOptions {
  double alpha = 0.05;        // level of `significant`
  double confidence = 0.95;   // level of the bootstrap intervals
  int64_t resamples = 10000;  // bootstrap resamples
  uint64_t seed = 1;          // seed of the bootstrap generator (SplitMix64)
};

struct SplitTest {
  int64_t examples = 0;
  int64_t improved = 0;  // b: baseline wrong, edited right
  int64_t worsened = 0;  // c: baseline right, edited wrong
  double p_value = 1;
  bool significant = false;   // p_value < alpha
  double accuracy_delta = 0;  // percentage points
  double accuracy_ci_low = 0, accuracy_ci_high = 0;
  double log_loss_delta = 0;
  double log_loss_ci_low = 0, log_loss_ci_high = 0;
};

// Two-sided exact binomial p-value of McNemar's test for b and c discordant
// pairs: min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2); 1 when
// b + c = 0. Equals scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue.
double McNemarExactPValue(int64_t b, int64_t c);

// The generator of the bootstrap: SplitMix64 (Steele, Lea and Flood 2014).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // An index in [0, n): the high 64 bits of Next() * n.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

// The q-quantile (0 <= q <= 1) of sorted values by linear interpolation
// between closest ranks (numpy.quantile's default): h = (n - 1) q,
// x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]).
double Quantile(const std::vector<double>& sorted, double q);

// Tests `edited` against `baseline`, paired element by element.
// INVALID_ARGUMENT when their sizes differ or the options are out of range.
// The bootstrap draws options.resamples resamples of n indices each, every
// index SplitMix64(seed).Below(n) in turn (one generator for all resamples);
// the interval is [Quantile((1 - confidence) / 2), Quantile((1 + confidence) / 2)]
// of the resampled mean deltas. With no examples, every number is 0, p = 1.
absl::StatusOr<SplitTest> PairedTest(const std::vector<PairedOutcome>& baseline,
                                     const std::vector<PairedOutcome>& edited,
                                     const SignificanceOptions& options);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_SIGNIFICANCE_H_
