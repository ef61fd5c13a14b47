// Truncated SVDs on the host: LAPACKE gesdd (exact) and a Halko–Martinsson–
// Tropp randomized range finder over OpenBLAS SGEMM and LAPACKE geqrf/orgqr.
//
// Layout: the caller's W is row-major [m, n], which is the column-major
// matrix Wᵀ [n, m] (leading dimension n). Everything inside runs column-major
// on that view (no transposing copies of W); only the small outputs are
// rearranged into the row-major U [m, k] and V [n, k] of TruncatedSvd.
#include "kernels/svd.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::kernels {
namespace {

double SumSquares(const float* x, int64_t count) {
  double s = 0.0;
  for (int64_t i = 0; i < count; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// In-place Householder QR of the column-major [rows, cols] matrix a (rows >=
// cols), replaced by its orthonormal factor Q.
absl::Status OrthonormalizeColumns(std::vector<float>* a, int64_t rows, int64_t cols) {
  std::vector<float> tau(cols);
  lapack_int info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, rows, cols, a->data(), rows, tau.data());
  if (info != 0) return absl::InternalError(absl::StrCat("LAPACKE_sgeqrf failed: info ", info));
  info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, rows, cols, cols, a->data(), rows, tau.data());
  if (info != 0) return absl::InternalError(absl::StrCat("LAPACKE_sorgqr failed: info ", info));
  return absl::OkStatus();
}

// Exact SVD. With A = Wᵀ (column-major [n, m]) = V Σ Uᵀ, gesdd's left vectors
// (column-major [n, mn]) are V and its right vectors' transpose (column-major
// [mn, m]) is Uᵀ, i.e. U row-major [m, mn].
template <typename T>
absl::Status ExactSvd(const float* w, int64_t m, int64_t n, int64_t k, TruncatedSvd* out) {
  const int64_t mn = std::min(m, n);
  std::vector<T> a(w, w + m * n), s(mn), lv(n * mn), rvt(mn * m);
  lapack_int info;
  if constexpr (std::is_same_v<T, float>) {
    info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', n, m, a.data(), n, s.data(), lv.data(), n,
                          rvt.data(), mn);
  } else {
    info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', n, m, a.data(), n, s.data(), lv.data(), n,
                          rvt.data(), mn);
  }
  if (info != 0) {
    return absl::InternalError(absl::StrCat("LAPACKE_", sizeof(T) == 4 ? "s" : "d",
                                            "gesdd failed on a ", m, "x", n, " matrix: info ",
                                            info));
  }
  out->spectrum.assign(s.begin(), s.end());
  out->s.assign(s.begin(), s.begin() + k);
  out->u.resize(m * k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) out->u[i * k + j] = static_cast<float>(rvt[j + i * mn]);
  out->v.resize(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) out->v[i * k + j] = static_cast<float>(lv[i + j * n]);
  return absl::OkStatus();
}

// Randomized SVD (HMT Algorithms 4.4 + 5.1) with sketch width l >= k and q
// power iterations; column-major throughout on A = Wᵀ.
absl::Status RandomizedSvd(const float* w, const SvdPlan& plan, TruncatedSvd* out) {
  const int64_t m = plan.m, n = plan.n, k = plan.k, l = plan.l;
  const int q = plan.q;
  // Ω [n, l] (the first n·l values of the seed's stream), Y = W Ω [m, l].
  std::vector<float> omega(n * l), y(m * l);
  if (plan.sketch != nullptr && static_cast<int64_t>(plan.sketch->size()) >= n * l) {
    std::copy(plan.sketch->begin(), plan.sketch->begin() + n * l, omega.begin());
  } else {
    GaussianFill(plan.seed, omega.data(), n * l);
  }
  // W row-major = column-major Wᵀ with lda n: W·X is (Wᵀ)ᵀ·X.
  cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, l, n, 1.0f, w, n, omega.data(), n, 0.0f,
              y.data(), m);
  LASERD_RETURN_IF_ERROR(OrthonormalizeColumns(&y, m, l));
  std::vector<float>& z = omega;  // reused as the [n, l] half step
  for (int it = 0; it < q; ++it) {
    if (plan.interrupt) LASERD_RETURN_IF_ERROR(plan.interrupt());
    // Z = Wᵀ Q [n, l].
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, l, m, 1.0f, w, n, y.data(), m, 0.0f,
                z.data(), n);
    LASERD_RETURN_IF_ERROR(OrthonormalizeColumns(&z, n, l));
    // Y = W Z [m, l].
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, l, n, 1.0f, w, n, z.data(), n, 0.0f,
                y.data(), m);
    LASERD_RETURN_IF_ERROR(OrthonormalizeColumns(&y, m, l));
  }
  // B = Qᵀ W [l, n] (column-major, ld l).
  std::vector<float> b(l * n);
  cblas_sgemm(CblasColMajor, CblasTrans, CblasTrans, l, n, m, 1.0f, y.data(), m, w, n, 0.0f,
              b.data(), l);
  std::vector<float> s(l), ub(l * l), vbt(l * n);
  lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', l, n, b.data(), l, s.data(), ub.data(), l,
                                   vbt.data(), l);
  if (info != 0) {
    return absl::InternalError(
        absl::StrCat("LAPACKE_sgesdd failed on the ", l, "x", n, " projected matrix: info ", info));
  }
  // U = Q Ũ_k [m, k] column-major, then row-major.
  std::vector<float> uc(m * k);
  cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, k, l, 1.0f, y.data(), m, ub.data(), l,
              0.0f, uc.data(), m);
  out->u.resize(m * k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) out->u[i * k + j] = uc[i + j * m];
  out->v.resize(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) out->v[i * k + j] = vbt[j + i * l];
  out->s.assign(s.begin(), s.begin() + k);
  out->spectrum.clear();
  return absl::OkStatus();
}

// RunSvdPlan without its first interrupt check.
absl::StatusOr<TruncatedSvd> RunPlan(const float* w, const SvdPlan& plan);

}  // namespace

absl::StatusOr<TruncatedSvd> ComputeTruncatedSvd(const float* w, int64_t m, int64_t n,
                                                 int64_t k_max, const SvdOptions& opts) {
  LASERD_ASSIGN_OR_RETURN(SvdPlan plan, PlanSvd(m, n, k_max, opts));
  if (plan.randomized()) plan.sketch = GaussianSketch(plan.seed, plan.SketchValues());
  return RunSvdPlan(w, plan);
}

absl::StatusOr<TruncatedSvd> RunSvdPlan(const float* w, const SvdPlan& plan) {
  if (plan.interrupt) LASERD_RETURN_IF_ERROR(plan.interrupt());
  return RunPlan(w, plan);
}

namespace {

absl::StatusOr<TruncatedSvd> RunPlan(const float* w, const SvdPlan& plan) {
  const int64_t m = plan.m, n = plan.n, k = plan.k;
  if (plan.sketch_rows) {
    // The paper method on torch's side: the same algorithm on Wᵀ [n, m]
    // (whose sketch Ω [m, l] is the first m·l values of the stream), then
    // Wᵀ ≈ U' Σ V'ᵀ gives W ≈ V' Σ U'ᵀ.
    std::vector<float> wt(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) wt[j * m + i] = w[i * n + j];
    SvdPlan tp = plan;
    tp.m = n;
    tp.n = m;
    tp.sketch_rows = false;
    LASERD_ASSIGN_OR_RETURN(TruncatedSvd t, RunPlan(wt.data(), tp));
    TruncatedSvd out;
    out.m = m;
    out.n = n;
    out.k = k;
    out.method = plan.method;
    out.frobenius_sq = SumSquares(w, m * n);
    out.u = std::move(t.v);
    out.v = std::move(t.u);
    out.s = std::move(t.s);
    return out;
  }
  TruncatedSvd out;
  out.m = m;
  out.n = n;
  out.k = k;
  out.method = plan.method;
  out.frobenius_sq = SumSquares(w, m * n);
  if (plan.randomized()) {
    LASERD_RETURN_IF_ERROR(RandomizedSvd(w, plan, &out));
  } else if (plan.exact_in_double) {
    LASERD_RETURN_IF_ERROR(ExactSvd<double>(w, m, n, k, &out));
  } else {
    LASERD_RETURN_IF_ERROR(ExactSvd<float>(w, m, n, k, &out));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<double>> TruncationErrors(const float* w, const TruncatedSvd& svd,
                                                     const std::vector<int64_t>& ks) {
  for (int64_t k : ks) {
    if (k < 0 || k > svd.k) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank ", k, " is outside the decomposition's [0, ", svd.k, "]"));
    }
  }
  std::vector<double> errs(ks.size(), 0.0);
  const double norm = std::sqrt(svd.frobenius_sq);
  if (norm == 0.0) return errs;
  const int64_t m = svd.m, n = svd.n, K = svd.k;
  if (!svd.spectrum.empty()) {
    // Dropped energy, summed smallest first.
    std::vector<double> tail(svd.spectrum.size() + 1, 0.0);
    for (int64_t i = static_cast<int64_t>(svd.spectrum.size()) - 1; i >= 0; --i)
      tail[i] = tail[i + 1] + static_cast<double>(svd.spectrum[i]) * svd.spectrum[i];
    for (size_t j = 0; j < ks.size(); ++j) errs[j] = std::sqrt(tail[ks[j]]) / norm;
    return errs;
  }
  // Direct residual, prefixes in ascending order.
  std::vector<size_t> order(ks.size());
  for (size_t j = 0; j < order.size(); ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ks[a] < ks[b]; });
  std::vector<float> us(m * K);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < K; ++j) us[i * K + j] = svd.u[i * K + j] * svd.s[j];
  std::vector<float> r(w, w + m * n);
  int64_t done = 0;
  double res_sq = svd.frobenius_sq;
  for (size_t j : order) {
    const int64_t k = ks[j];
    if (k > done) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k - done, -1.0f, us.data() + done,
                  K, svd.v.data() + done, K, 1.0f, r.data(), n);
      done = k;
      res_sq = SumSquares(r.data(), m * n);
    }
    errs[j] = std::sqrt(res_sq) / norm;
  }
  return errs;
}

std::vector<float> LowRankProduct(const TruncatedSvd& svd, int64_t k) {
  const int64_t m = svd.m, n = svd.n, K = svd.k;
  std::vector<float> us(m * k), out(m * n, 0.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) us[i * k + j] = svd.u[i * K + j] * svd.s[j];
  if (k > 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, us.data(), k, svd.v.data(),
                K, 0.0f, out.data(), n);
  }
  return out;
}

}  // namespace laserd::kernels
