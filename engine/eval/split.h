// Validation/test split of a dataset (edits are chosen on validation and
// reported on test; rules in docs/metrics.md).
//
//   first   (default, the paper's rule) validation = the first n_val examples in
//           file order, test = the rest.
//   shuffle validation = the first n_val examples of a seeded permutation,
//           test = the rest. The permutation is a Fisher–Yates shuffle driven
//           by std::mt19937_64(seed) with an unbiased rejection draw, spelled
//           out in split.cc, so it is the same on every platform and compiler.
//
// n_val = floor(fraction · n) (computed as floor(fraction · n + 1e-9) so that
// decimal fractions such as 0.3 · 10 give 3), at least 1 when n >= 2, at most
// n − 1; n = 1 gives an empty validation set. Both parts list example indices in
// ascending (file) order.
#ifndef LASERD_ENGINE_EVAL_SPLIT_H_
#define LASERD_ENGINE_EVAL_SPLIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::eval {

enum class SplitMode { kFirst, kShuffle };
absl::StatusOr<SplitMode> ParseSplitMode(const std::string& s);  // "first" | "shuffle"
const char* SplitModeName(SplitMode m);

struct SplitOptions {
  SplitMode mode = SplitMode::kFirst;
  double val_fraction = 0.2;  // in (0, 1)
  uint64_t seed = 0;          // shuffle only
};

struct Split {
  std::vector<int64_t> validation;
  std::vector<int64_t> test;
};

// The number of validation examples out of n.
int64_t ValidationCount(int64_t n, double val_fraction);
// The seeded permutation of 0..n-1 used by SplitMode::kShuffle.
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed);
// INVALID_ARGUMENT when val_fraction is not in (0, 1) or n < 1.
absl::StatusOr<Split> MakeSplit(int64_t n, const SplitOptions& opts);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_SPLIT_H_
