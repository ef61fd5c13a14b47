// The paper method against torch.svd_lowrank(W, q=k, niter=2) over seeds.
// tests/fixtures/paper_svd_reference.json (scripts/fixtures/reference_paper_svd.py)
// holds torch's excess error ‖W − A‖_F / ‖W − W_k‖_F − 1 and distance
// ‖A − W_k‖_F / ‖W_k‖_F of 200 seeds at k = 10 and 51 on the 2048×1024 matrix
// U diag(i^-0.3) Vᵀ (U, V orthonormal DCT-II bases). laserd's paper method
// draws other random numbers (its own Gaussian stream), so the bits differ,
// but the distributions must agree: the test computes the same two numbers
// for laserd seeds 0..199 (fixed, so the test is deterministic) and requires
//   * means within 5 standard errors (Welch: sqrt(s_a²/n_a + s_b²/n_b));
//     a chance failure of two equal distributions has probability ~6e-7;
//   * standard deviations within a factor 1.35 of each other: the ratio of two
//     sample standard deviations of 200 draws from one distribution has a
//     relative standard error of about 0.07 (normal kurtosis), so 1.35 is more
//     than 4 of them;
//   * the two-sample Kolmogorov–Smirnov statistic D below the α = 1e-4
//     critical value c(α)·sqrt((n_a + n_b)/(n_a·n_b)), c(α) = sqrt(−ln(α/2)/2).
// The distribution depends only on the singular values (a Gaussian sketch is
// rotation invariant), so fp32 rounding differences in building W do not
// matter. Also checked: at k = 10 the paper recipe lands about 0.53 from the
// exact truncation, while a prefix of a k = 204 sketch (what laserd computed
// before the paper method decomposed every rank) lands under 0.05.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/svd.h"
#include "nlohmann/json.hpp"

namespace laserd::kernels {
namespace {

constexpr int64_t kM = 2048, kN = 1024;
constexpr int kSeeds = 200;

// Row-major [size, cols]: the first cols vectors of the orthonormal DCT-II basis.
std::vector<double> DctBasis(int64_t size, int64_t cols) {
  std::vector<double> b(size * cols);
  const double pi = std::acos(-1.0);
  for (int64_t a = 0; a < size; ++a)
    for (int64_t j = 0; j < cols; ++j) {
      double v = std::sqrt(2.0 / size) * std::cos(pi * (a + 0.5) * j / size);
      if (j == 0) v /= std::sqrt(2.0);
      b[a * cols + j] = v;
    }
  return b;
}

struct Problem {
  std::vector<double> u, v, s;  // U [kM, kN], V [kN, kN], s [kN]
  std::vector<float> w;         // W = U diag(s) Vᵀ in fp32, row-major [kM, kN]
};

const Problem& TheProblem() {
  static const Problem* p = [] {
    auto* p = new Problem;
    p->u = DctBasis(kM, kN);
    p->v = DctBasis(kN, kN);
    p->s.resize(kN);
    for (int64_t i = 0; i < kN; ++i) p->s[i] = std::pow(static_cast<double>(i + 1), -0.3);
    std::vector<double> us(kM * kN);
    for (int64_t i = 0; i < kM; ++i)
      for (int64_t l = 0; l < kN; ++l) us[i * kN + l] = p->u[i * kN + l] * p->s[l];
    std::vector<double> w(kM * kN);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kM, kN, kN, 1.0, us.data(), kN,
                p->v.data(), kN, 0.0, w.data(), kN);
    p->w.assign(w.begin(), w.end());
    return p;
  }();
  return *p;
}

struct Measure {
  double excess, distance;
};

// Excess error and distance to W_k of the rank-k prefix of `svd`, in double
// from the factors (as the reference script computes them).
Measure Measured(const TruncatedSvd& svd, int64_t k) {
  const Problem& p = TheProblem();
  const int64_t K = svd.k;
  std::vector<double> a(kM * k), b(kN * k);
  for (int64_t i = 0; i < kM; ++i)
    for (int64_t j = 0; j < k; ++j) a[i * k + j] = svd.u[i * K + j];
  for (int64_t i = 0; i < kN; ++i)
    for (int64_t j = 0; j < k; ++j) b[i * k + j] = svd.v[i * K + j];
  // cu = Uᵀ a [kN, k], cv = Vᵀ b [kN, k].
  std::vector<double> cu(kN * k), cv(kN * k), aa(k * k), bb(k * k);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kN, k, kM, 1.0, p.u.data(), kN, a.data(), k,
              0.0, cu.data(), k);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kN, k, kN, 1.0, p.v.data(), kN, b.data(), k,
              0.0, cv.data(), k);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, kM, 1.0, a.data(), k, a.data(), k, 0.0,
              aa.data(), k);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, kN, 1.0, b.data(), k, b.data(), k, 0.0,
              bb.data(), k);
  double inner_all = 0, inner_head = 0, a_sq = 0, total_sq = 0, opt_sq = 0;
  for (int64_t l = 0; l < kN; ++l) {
    double row = 0;
    for (int64_t j = 0; j < k; ++j) row += cu[l * k + j] * svd.s[j] * cv[l * k + j];
    inner_all += p.s[l] * row;
    if (l < k) inner_head += p.s[l] * row;
    total_sq += p.s[l] * p.s[l];
    if (l >= k) opt_sq += p.s[l] * p.s[l];
  }
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      a_sq += aa[i * k + j] * static_cast<double>(svd.s[i]) * svd.s[j] * bb[i * k + j];
  const double head_sq = total_sq - opt_sq;
  return {std::sqrt((total_sq - 2 * inner_all + a_sq) / opt_sq) - 1,
          std::sqrt((head_sq - 2 * inner_head + a_sq) / head_sq)};
}

struct Stats {
  double mean = 0, sd = 0;
};
Stats Describe(const std::vector<double>& x) {
  Stats s;
  for (double v : x) s.mean += v;
  s.mean /= x.size();
  for (double v : x) s.sd += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(s.sd / (x.size() - 1));
  return s;
}

double Quantile(std::vector<double> x, double q) {  // numpy's default (linear)
  std::sort(x.begin(), x.end());
  const double pos = q * (x.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const double f = pos - i;
  return i + 1 < x.size() ? x[i] + f * (x[i + 1] - x[i]) : x[i];
}

// Two-sample Kolmogorov–Smirnov statistic.
double KsStatistic(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double t = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= t) ++i;
    while (j < b.size() && b[j] <= t) ++j;
    d = std::max(d,
                 std::abs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
  }
  return d;
}

void ExpectSameDistribution(const std::string& what, const std::vector<double>& ours,
                            const nlohmann::json& ref) {
  const std::vector<double> theirs = ref["samples"].get<std::vector<double>>();
  ASSERT_EQ(theirs.size(), static_cast<size_t>(kSeeds)) << what;
  const Stats a = Describe(ours), b = Describe(theirs);
  // The committed summary is that of the committed samples.
  EXPECT_NEAR(b.mean, ref["mean"].get<double>(), 1e-12 * std::abs(b.mean)) << what;
  EXPECT_NEAR(b.sd, ref["std"].get<double>(), 1e-9 * b.sd) << what;
  const double se = std::sqrt(a.sd * a.sd / ours.size() + b.sd * b.sd / theirs.size());
  const double ks = KsStatistic(ours, theirs);
  const double ks_crit =
      std::sqrt(-std::log(1e-4 / 2) / 2) *
      std::sqrt(static_cast<double>(ours.size() + theirs.size()) / (ours.size() * theirs.size()));
  std::printf(
      "%s: laserd mean %.6g sd %.3g median %.6g | torch mean %.6g sd %.3g median %.6g | "
      "z %.2f sd ratio %.3f KS D %.3f (crit %.3f)\n",
      what.c_str(), a.mean, a.sd, Quantile(ours, 0.5), b.mean, b.sd,
      ref["quantiles"]["0.5"].get<double>(), (a.mean - b.mean) / se, a.sd / b.sd, ks, ks_crit);
  EXPECT_LE(std::abs(a.mean - b.mean), 5 * se) << what;
  EXPECT_LE(a.sd / b.sd, 1.35) << what;
  EXPECT_GE(a.sd / b.sd, 1 / 1.35) << what;
  EXPECT_LE(ks, ks_crit) << what;
}

nlohmann::json Reference() {
  std::ifstream f(std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/paper_svd_reference.json");
  EXPECT_TRUE(f.good());
  return nlohmann::json::parse(f);
}

TEST(PaperSvdDistributionTest, ExcessErrorMatchesTorchSvdLowrankOverSeeds) {
  const nlohmann::json ref = Reference();
  ASSERT_EQ(ref["niter"].get<int>(), 2);
  ASSERT_EQ(ref["seeds"].get<int>(), kSeeds);
  const Problem& p = TheProblem();
  for (const nlohmann::json& r : ref["ranks"]) {
    const int64_t k = r["k"].get<int64_t>();
    std::vector<double> excess, distance;
    for (int seed = 0; seed < kSeeds; ++seed) {
      SvdOptions o;
      o.method = SvdMethod::kPaper;
      o.seed = seed;
      auto svd = ComputeTruncatedSvd(p.w.data(), kM, kN, k, o);
      ASSERT_TRUE(svd.ok()) << svd.status();
      const Measure m = Measured(*svd, k);
      excess.push_back(m.excess);
      distance.push_back(m.distance);
    }
    ExpectSameDistribution("k=" + std::to_string(k) + " excess", excess, r["excess"]);
    ExpectSameDistribution("k=" + std::to_string(k) + " distance", distance, r["distance"]);
    if (k == 10) {
      // The figure: the paper's recipe at k = 10 is about 0.53 from W_10.
      EXPECT_NEAR(Describe(distance).mean, 0.53, 0.02);
      EXPECT_NEAR(r["distance"]["mean"].get<double>(), 0.53, 0.02);
    }
  }
}

// What laserd computed before the paper method decomposed each rank: the
// k = 10 prefix of one sketch to k = 204 is nearly the exact truncation, a
// distribution the checks above reject (KS D = 1).
TEST(PaperSvdDistributionTest, PrefixOfALargerSketchIsNearlyExact) {
  const Problem& p = TheProblem();
  for (int seed = 0; seed < 3; ++seed) {
    SvdOptions o;
    o.method = SvdMethod::kPaper;
    o.seed = seed;
    auto svd = ComputeTruncatedSvd(p.w.data(), kM, kN, 204, o);
    ASSERT_TRUE(svd.ok());
    const Measure m = Measured(*svd, 10);
    std::printf("seed %d: prefix k=10 of a k=204 sketch: distance %.4f excess %.2e\n", seed,
                m.distance, m.excess);
    EXPECT_LT(m.distance, 0.05);
  }
}

}  // namespace
}  // namespace laserd::kernels
