#include "engine/laser/spectrum.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace laserd::laser {

absl::StatusOr<MarchenkoPasturFit> MarchenkoPasturRank(const std::vector<double>& s, int64_t rows,
                                                       int64_t cols, double frobenius_sq) {
  if (rows < 1 || cols < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Marchenko-Pastur: the matrix shape ", rows, "x", cols, " is empty"));
  }
  const int64_t n = std::min(rows, cols);
  if (static_cast<int64_t>(s.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("Marchenko-Pastur: ", s.size(),
                                                   " singular values for a ", rows, "x", cols,
                                                   " matrix; it has ", n));
  }
  if (!(frobenius_sq >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Marchenko-Pastur: frobenius_sq ", frobenius_sq, " is not >= 0"));
  }
  // numpy.quantile's default ("linear"): position q·(N−1) in the sorted values.
  std::vector<double> asc = s;
  std::sort(asc.begin(), asc.end());
  auto quantile = [&](double q) {
    const double pos = q * (asc.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, asc.size() - 1);
    return asc[lo] + (pos - lo) * (asc[hi] - asc[lo]);
  };
  MarchenkoPasturFit f;
  f.sigma = (quantile(0.75) - quantile(0.25)) / 1.349;
  f.beta = static_cast<double>(n) / std::max(rows, cols);
  f.threshold = f.sigma * (1 + std::sqrt(f.beta));
  int64_t k = 0;
  for (double v : s) k += v > f.threshold;
  f.rank = std::max<int64_t>(k, 1);
  f.rho = static_cast<double>(f.rank) / n;
  double dropped = 0;
  for (int64_t i = f.rank; i < n; ++i) dropped += s[i] * s[i];
  f.relative_error = frobenius_sq > 0 ? std::sqrt(dropped / frobenius_sq) : 0.0;
  return f;
}

absl::StatusOr<kernels::TruncatedSvd> ExactSpectrumSvd(const std::vector<float>& host, int64_t rows,
                                                       int64_t cols, int64_t keep) {
  if (static_cast<int64_t>(host.size()) != rows * cols) {
    return absl::InvalidArgumentError(
        absl::StrCat("spectrum: ", host.size(), " values for a ", rows, "x", cols, " matrix"));
  }
  kernels::SvdOptions o;
  o.method = kernels::SvdMethod::kExact;
  return kernels::ComputeTruncatedSvd(host.data(), rows, cols, keep, o);
}

}  // namespace laserd::laser
