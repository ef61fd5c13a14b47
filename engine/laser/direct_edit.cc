#include "engine/laser/direct_edit.h"

#include <algorithm>
#include <cmath>

namespace laserd::laser {
namespace {

double SumSquares(const std::vector<float>& w) {
  double s = 0.0;
  for (float x : w) s += static_cast<double>(x) * x;
  return s;
}

}  // namespace

DirectEdit ZeroInPlace(std::vector<float>* w) {
  DirectEdit e;
  e.relative_error = SumSquares(*w) > 0.0 ? 1.0 : 0.0;
  e.zeroed = static_cast<int64_t>(w->size());
  std::fill(w->begin(), w->end(), 0.0f);
  return e;
}

int64_t PruneThresholdIndex(int64_t count, double rho, std::optional<double> rate) {
  const double f = rate ? *rate * 0.1 : 1.0 - rho;
  if (f == 0.0 || count == 0) return -1;
  const double pos = f * static_cast<double>(count);
  return std::clamp<int64_t>(static_cast<int64_t>(pos), 0, count - 1);
}

DirectEdit PruneInPlace(std::vector<float>* w, double rho, std::optional<double> rate) {
  DirectEdit e;
  const int64_t n = static_cast<int64_t>(w->size());
  const int64_t idx = PruneThresholdIndex(n, rho, rate);
  if (idx < 0) return e;
  std::vector<float> mag(n);
  for (int64_t i = 0; i < n; ++i) mag[i] = std::fabs((*w)[i]);
  std::nth_element(mag.begin(), mag.begin() + idx, mag.end());
  const float alpha = mag[idx];
  const double total = SumSquares(*w);
  double removed = 0.0;
  for (float& x : *w) {
    if (std::fabs(x) <= alpha) {
      removed += static_cast<double>(x) * x;
      x = 0.0f;
      ++e.zeroed;
    }
  }
  e.relative_error = total > 0.0 ? std::sqrt(removed / total) : 0.0;
  return e;
}

}  // namespace laserd::laser
