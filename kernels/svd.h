// Truncated singular value decompositions of a dense fp32 matrix: on the
// host (OpenBLAS + LAPACKE), and of resident matrices on any backend
// (DecomposeOnBackend, which batches same-shaped matrices). One decomposition
// per matrix to the largest kept rank k_max a sweep needs; every smaller rank
// is a prefix of the same factors (except for the paper method, which the
// sweep decomposes once per rank: engine/laser/paper_svd.h). The methods and how they are chosen:
// kernels/svd_plan.h.
//
// Randomness: the sketch Ω is the stream of kernels/gaussian_sketch.h, filled
// column by column (so a wider sketch extends a narrower one); the same seed
// gives bitwise identical factors on the same machine and BLAS thread count.
#ifndef LASERD_KERNELS_SVD_H_
#define LASERD_KERNELS_SVD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/gaussian_sketch.h"
#include "kernels/ops.h"
#include "kernels/svd_plan.h"

namespace laserd::kernels {

// W ≈ U diag(s) Vᵀ truncated to k columns. U is [m, k] and V is [n, k], both
// row-major; s is descending. For `exact`, `spectrum` holds all min(m, n)
// singular values (so truncation errors of every prefix are exact); for the
// randomized methods it is empty.
struct TruncatedSvd {
  int64_t m = 0, n = 0, k = 0;
  SvdMethod method = SvdMethod::kExact;  // the method that ran (never kAuto)
  std::vector<float> u, s, v;
  std::vector<float> spectrum;
  double frobenius_sq = 0.0;  // ‖W‖_F², accumulated in double
};

// Truncated SVD of the row-major [m, n] matrix w to rank k_max,
// 1 <= k_max <= min(m, n).
absl::StatusOr<TruncatedSvd> ComputeTruncatedSvd(const float* w, int64_t m, int64_t n,
                                                 int64_t k_max, const SvdOptions& opts);

// The host computation of a plan (PlanSvd) on the row-major [plan.m, plan.n]
// matrix w: ComputeTruncatedSvd is PlanSvd followed by this.
absl::StatusOr<TruncatedSvd> RunSvdPlan(const float* w, const SvdPlan& plan);

// ‖W − U_k Σ_k V_kᵀ‖_F / ‖W‖_F for each k in ks (each 0 <= k <= svd.k, any
// order; INVALID_ARGUMENT otherwise). With a full spectrum (exact): sqrt(Σ_{i>=k} σ_i²) / ‖W‖_F,
// the dropped energy summed directly in double, so there is no cancellation. Otherwise the residual
// is formed directly: R ← W, then for ascending k the next columns' rank-one terms are subtracted
// (one sgemm of m·n·k_max in all) and ‖R‖_F is accumulated in double, which stays accurate when the
// error is small, where ‖W‖² − Σσ² would cancel.
absl::StatusOr<std::vector<double>> TruncationErrors(const float* w, const TruncatedSvd& svd,
                                                     const std::vector<int64_t>& ks);

// The dense rank-k product U_k Σ_k V_kᵀ, row-major [m, n] (sgemm).
std::vector<float> LowRankProduct(const TruncatedSvd& svd, int64_t k);

// A truncated SVD of a resident matrix with the truncation errors of the
// requested ranks (the sweep's unit of work).
struct BackendSvd {
  TruncatedSvd svd;
  std::vector<double> errors;  // one per error_ranks entry, as TruncationErrors
};

// Truncated SVDs (to rank k_max) of the matrices `ws`, resident on `backend`,
// and TruncationErrors(w, svd, error_ranks) of each. The matrices are grouped
// by shape; each group is planned once (PlanSvd: the same checks, methods,
// defaults and auto rule on every backend; Ω from GaussianSketch(seed)) and
// decomposed by one Backend::Decompose call. On the CPU backend every result
// is exactly ComputeTruncatedSvd + TruncationErrors of that matrix alone; on a
// CUDA backend the GEMMs of the randomized methods are strided-batched over
// the group (the small and exact SVDs by opts.gpu_solver). Every matrix must be
// a 2-D tensor of that backend; errors as ComputeTruncatedSvd's and
// TruncationErrors'.
absl::StatusOr<std::vector<BackendSvd>> DecomposeOnBackend(Backend* backend,
                                                           const std::vector<const Tensor*>& ws,
                                                           int64_t k_max, const SvdOptions& opts,
                                                           const std::vector<int64_t>& error_ranks);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_SVD_H_
