#include "engine/eval/significance.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace laserd::eval {

double McNemarExactPValue(int64_t b, int64_t c) {
  const int64_t n = b + c;
  if (n <= 0) return 1.0;
  const int64_t k = std::min(b, c);
  if (2 * k == n) return 1.0;  // the observed count is the mode: every outcome is as likely or less
  // log P[X = i] = lgamma(n+1) - lgamma(i+1) - lgamma(n-i+1) - n log 2, summed
  // in log space from the largest term (i = k) down.
  const double ln2n = static_cast<double>(n) * std::log(2.0);
  const double lgn = std::lgamma(static_cast<double>(n) + 1);
  auto logpmf = [&](int64_t i) {
    return lgn - std::lgamma(static_cast<double>(i) + 1) -
           std::lgamma(static_cast<double>(n - i) + 1) - ln2n;
  };
  const double top = logpmf(k);
  double sum = 0;
  for (int64_t i = k; i >= 0; --i) {
    const double term = std::exp(logpmf(i) - top);
    sum += term;
    if (term < 1e-18 * sum) break;
  }
  const double p = 2.0 * std::exp(top + std::log(sum));
  return std::min(1.0, p);
}

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double h = (static_cast<double>(sorted.size()) - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= sorted.size()) return sorted.back();
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

absl::StatusOr<SplitTest> PairedTest(const std::vector<PairedOutcome>& baseline,
                                     const std::vector<PairedOutcome>& edited,
                                     const SignificanceOptions& options) {
  if (baseline.size() != edited.size()) {
    return absl::InvalidArgumentError(absl::StrCat("significance: ", baseline.size(),
                                                   " baseline outcomes but ", edited.size(),
                                                   " edited ones"));
  }
  if (!(options.alpha > 0 && options.alpha < 1) ||
      !(options.confidence > 0 && options.confidence < 1) || options.resamples < 1) {
    return absl::InvalidArgumentError(
        "significance: alpha and confidence must be in (0, 1) and resamples >= 1");
  }
  SplitTest t;
  const size_t n = baseline.size();
  t.examples = static_cast<int64_t>(n);
  if (n == 0) return t;
  std::vector<double> d_acc(n), d_loss(n);
  double sum_acc = 0, sum_loss = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!baseline[i].correct && edited[i].correct) ++t.improved;
    if (baseline[i].correct && !edited[i].correct) ++t.worsened;
    d_acc[i] = (edited[i].correct ? 100.0 : 0.0) - (baseline[i].correct ? 100.0 : 0.0);
    d_loss[i] = edited[i].log_loss - baseline[i].log_loss;
    sum_acc += d_acc[i];
    sum_loss += d_loss[i];
  }
  const double dn = static_cast<double>(n);
  t.accuracy_delta = sum_acc / dn;
  t.log_loss_delta = sum_loss / dn;
  t.p_value = McNemarExactPValue(t.improved, t.worsened);
  t.significant = t.p_value < options.alpha;

  std::vector<double> acc(static_cast<size_t>(options.resamples));
  std::vector<double> loss(acc.size());
  SplitMix64 rng(options.seed);
  for (size_t r = 0; r < acc.size(); ++r) {
    double a = 0, l = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t j = rng.Below(n);
      a += d_acc[j];
      l += d_loss[j];
    }
    acc[r] = a / dn;
    loss[r] = l / dn;
  }
  std::sort(acc.begin(), acc.end());
  std::sort(loss.begin(), loss.end());
  const double lo = (1 - options.confidence) / 2, hi = (1 + options.confidence) / 2;
  t.accuracy_ci_low = Quantile(acc, lo);
  t.accuracy_ci_high = Quantile(acc, hi);
  t.log_loss_ci_low = Quantile(loss, lo);
  t.log_loss_ci_high = Quantile(loss, hi);
  return t;
}

}  // namespace laserd::eval
