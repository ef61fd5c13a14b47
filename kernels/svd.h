// Truncated singular value decompositions of a dense fp32 matrix on the host
// (CPU: OpenBLAS + LAPACKE). DESIGN.md §1 and §3.2: one decomposition per
// matrix to the largest kept rank k_max a sweep needs; every smaller rank is a
// prefix of the same factors.
//
// Methods:
//   exact       LAPACKE_sgesdd of the whole matrix (all singular values, the
//               first k_max singular vectors kept).
//   randomized  Halko–Martinsson–Tropp (2011) Algorithm 4.4 / 5.1: Gaussian
//               sketch Ω [n, l], l = min(k_max + p, min(m, n)), Y = WΩ, then q
//               power iterations Q ← qr(Wᵀ Q), Q ← qr(W Q) (re-orthonormalised
//               by Householder QR every half step), B = QᵀW, B = ŨΣVᵀ, U = QŨ.
//               Defaults: p = max(10, k_max/2), q = 4 (see DefaultOversampling).
//   paper       the LASER paper code's recipe, torch.svd_lowrank(W, q=k, niter):
//               the same algorithm with no oversampling (l = k_max) and
//               niter = 2 power iterations (20 for encoder models).
//   auto        exact or randomized by a cost model (AutoPicksRandomized).
//
// Randomness: the sketch is drawn from std::mt19937_64(seed) through a
// Box–Muller transform written here (std::normal_distribution's algorithm is
// implementation-defined), filling Ω column by column (so a wider sketch
// extends a narrower one); the same seed gives bitwise identical factors on
// the same machine and BLAS thread count.
#ifndef LASERD_KERNELS_SVD_H_
#define LASERD_KERNELS_SVD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace laserd::kernels {

enum class SvdMethod { kExact, kRandomized, kPaper, kAuto };

// The dense SVD used on a CUDA backend, for `exact` (of the whole matrix) and
// for the small SVD of the projected matrix of `randomized`/`paper`. The CPU
// backend ignores it (LAPACK gesdd).
//   gesvd   cusolverDnXgesvd (QR iteration; LAPACK-level accuracy)
//   gesvdp  cusolverDnXgesvdp (polar decomposition)
//   gram    Xsyevd of the Gram matrix XᵀX of the tall side; σ = sqrt(λ), left
//           vectors X·R·Σ⁻¹. Fast, but singular values below ~sqrt(ε)·σ₁
//           lose their relative accuracy.
enum class GpuSolver { kGesvd, kGesvdp, kGram };
// "gesvd" | "gesvdp" | "gram"; INVALID_ARGUMENT otherwise.
absl::StatusOr<GpuSolver> ParseGpuSolver(const std::string& name);
const char* GpuSolverName(GpuSolver s);

// "exact" | "randomized" | "paper" | "auto"; INVALID_ARGUMENT otherwise.
absl::StatusOr<SvdMethod> ParseSvdMethod(const std::string& name);
const char* SvdMethodName(SvdMethod m);

struct SvdOptions {
  SvdMethod method = SvdMethod::kAuto;
  // Randomized: oversampling p and power iterations q; -1 = the default
  // (DefaultOversampling / kDefaultPowerIters). Ignored by exact.
  // Paper: oversampling must be -1 or 0; power_iters -1 = 2 (20 when
  // encoder_model is set), as the paper's code does.
  int64_t oversampling = -1;
  int power_iters = -1;
  bool encoder_model = false;
  uint64_t seed = 0;
  // Exact: run dgesdd on a double copy instead of sgesdd (slower; sgesdd's
  // truncation errors agree to ~1e-6, see docs/laser.md).
  bool exact_in_double = false;
  // CUDA backend only (ignored on the CPU):
  GpuSolver gpu_solver = GpuSolver::kGesvd;
  // Run the sketch and power-iteration GEMMs of randomized/paper in TF32 on
  // tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32); the projection B = QᵀW and
  // everything after it stay fp32. Off by default (fp32 throughout).
  bool gpu_tf32_sketch = false;
};

inline constexpr int kDefaultPowerIters = 4;
inline constexpr int kPaperPowerIters = 2;
inline constexpr int kPaperEncoderPowerIters = 20;
// p = max(10, k_max / 2).
int64_t DefaultOversampling(int64_t k_max);
// The auto rule: randomized (default p and q) when its flop count is below
// exact's. Flops: exact (LAPACK gesdd, thin U and V) ≈ 6·max·min² + 20·min³
// (Golub & Van Loan's R-SVD count); randomized ≈ (2q+2)·2mnl GEMM flops +
// 4l²((q+1)m + qn) for the QRs + 4l²n + 8l³ for the SVD of B + 2mlk. Both ran
// at about the same rate on this machine (≈20 GFLOP/s: 4096×4096 exact 85 s,
// randomized k=204 6.5 s; docs/laser.md), so the flop counts are compared
// directly. The switch: randomized up to k = 161 (ρ ≈ 0.28) on 576×1536,
// up to k = 1545 (ρ ≈ 0.38) on 4096×4096.
double ExactSvdFlops(int64_t m, int64_t n);
double RandomizedSvdFlops(int64_t m, int64_t n, int64_t k, int64_t l, int q);
bool AutoPicksRandomized(int64_t m, int64_t n, int64_t k_max);

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
// and TruncationErrors(w, svd, error_ranks) of each. On the CPU backend this is
// exactly ToHost + ComputeTruncatedSvd + TruncationErrors. On a CUDA backend
// it runs on the device with the same definitions (same methods, defaults,
// sketch Ω from GaussianFill(seed), auto rule; the small and exact SVDs by
// opts.gpu_solver); matrices of the same shape are decomposed together, the
// GEMMs of the randomized methods strided-batched over them. Every matrix
// must be a 2-D tensor of that backend; errors as ComputeTruncatedSvd's.
absl::StatusOr<std::vector<BackendSvd>> DecomposeOnBackend(Backend* backend,
                                                           const std::vector<const Tensor*>& ws,
                                                           int64_t k_max, const SvdOptions& opts,
                                                           const std::vector<int64_t>& error_ranks);

// Standard normal variates from mt19937_64 by Box–Muller (both outputs of
// each pair used); out[i] for i in [0, count).
void GaussianFill(uint64_t seed, float* out, int64_t count);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_SVD_H_
