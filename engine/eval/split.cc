#include "engine/eval/split.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace laserd::eval {

absl::StatusOr<SplitMode> ParseSplitMode(const std::string& s) {
  if (s == "first") return SplitMode::kFirst;
  if (s == "shuffle") return SplitMode::kShuffle;
  return absl::InvalidArgumentError(
      absl::StrCat("split: unknown mode '", s, "' (expected first or shuffle)"));
}

const char* SplitModeName(SplitMode m) { return m == SplitMode::kShuffle ? "shuffle" : "first"; }

int64_t ValidationCount(int64_t n, double val_fraction) {
  if (n < 2) return 0;
  int64_t v = static_cast<int64_t>(std::floor(val_fraction * static_cast<double>(n) + 1e-9));
  return std::clamp<int64_t>(v, 1, n - 1);
}

std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  // mt19937_64's output sequence is fixed by the C++ standard. Fisher–Yates from
  // the back: for i = n-1 .. 1, j uniform in [0, i] by rejection (draw r, reject
  // r >= limit where limit is the largest multiple of (i+1) not above 2^64,
  // j = r mod (i+1)), then swap p[i], p[j].
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i >= 1; --i) {
    const uint64_t range = static_cast<uint64_t>(i) + 1;
    // 2^64 mod range, computed without overflow.
    const uint64_t rem = (std::numeric_limits<uint64_t>::max() % range + 1) % range;
    uint64_t r;
    do {
      r = rng();
    } while (rem != 0 && r > std::numeric_limits<uint64_t>::max() - rem);
    std::swap(p[i], p[r % range]);
  }
  return p;
}

absl::StatusOr<Split> MakeSplit(int64_t n, const SplitOptions& opts) {
  if (!(opts.val_fraction > 0.0 && opts.val_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction must be in (0, 1), got ", opts.val_fraction));
  }
  if (n < 1) return absl::InvalidArgumentError("split: the dataset has no examples");
  const int64_t n_val = ValidationCount(n, opts.val_fraction);
  std::vector<int64_t> order;
  if (opts.mode == SplitMode::kShuffle) {
    order = SeededPermutation(n, opts.seed);
  } else {
    order.resize(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
  }
  Split s;
  s.validation.assign(order.begin(), order.begin() + n_val);
  s.test.assign(order.begin() + n_val, order.end());
  std::sort(s.validation.begin(), s.validation.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

}  // namespace laserd::eval
