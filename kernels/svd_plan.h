// How a truncated SVD is computed, decided once for every backend: the
// method (auto resolved by a cost model), the sketch width and the number of
// power iterations of the randomized methods, with the argument checks.
//
// Methods:
//   exact       the dense SVD of the whole matrix (all singular values, the
//               first k_max singular vectors kept).
//   randomized  Halko–Martinsson–Tropp (2011) Algorithm 4.4 / 5.1: Gaussian
//               sketch Ω [n, l], l = min(k_max + p, min(m, n)), Y = WΩ, then q
//               power iterations Q ← qr(Wᵀ Q), Q ← qr(W Q) (re-orthonormalised
//               by Householder QR every half step), B = QᵀW, B = ŨΣVᵀ, U = QŨ.
//               Defaults: p = max(10, k_max/2), q = 4 (see DefaultOversampling).
//   paper       the LASER paper code's recipe, torch.svd_lowrank(W, q=k, niter):
//               the same algorithm with no oversampling (l = k_max) and
//               niter = 2 power iterations (20 for encoder models), on the
//               side torch sketches: when m < n or n > k_max (every rank below
//               full) the range finder runs on Wᵀ (Ω [m, l], Y = WᵀΩ, a basis
//               of W's row space; SvdPlan::sketch_rows), else on W.
//   auto        exact or randomized by a cost model (AutoPicksRandomized).
#ifndef LASERD_KERNELS_SVD_PLAN_H_
#define LASERD_KERNELS_SVD_PLAN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

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
  // truncation errors agree to ~1e-6, see docs/laser.md). CPU only.
  bool exact_in_double = false;
  // CUDA backend only (ignored on the CPU):
  GpuSolver gpu_solver = GpuSolver::kGesvd;
  // Run the sketch and power-iteration GEMMs of randomized/paper in TF32 on
  // tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32); the projection B = QᵀW and
  // everything after it stay fp32. Off by default (fp32 throughout).
  bool gpu_tf32_sketch = false;
  // Asked whether to stop: a non-OK status from it ends the decomposition in
  // progress with that status. The CPU backend asks before each matrix and
  // between power iterations; the CUDA backend, which decomposes a batch of
  // same-shaped matrices together, before the batch, between its power
  // iterations and before each later matrix's own dense SVD. Neither stops
  // inside one LAPACK or cuSOLVER call (an exact SVD of a whole matrix).
  // Empty: never stops. It does not change what is computed.
  std::function<absl::Status()> interrupt;
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

// One decomposition, resolved: what every backend runs for an [m, n] matrix.
struct SvdPlan {
  int64_t m = 0, n = 0;
  int64_t k = 0;                         // kept rank, 1 <= k <= min(m, n)
  SvdMethod method = SvdMethod::kExact;  // never kAuto
  // Randomized and paper: sketch width k <= l <= min(m, n), power iterations
  // and the seed of Ω (GaussianSketch(seed), column-major [n, l]).
  int64_t l = 0;
  int q = 0;
  uint64_t seed = 0;
  // Paper only: sketch the row space, as torch.svd_lowrank does when m < n or
  // n > l: the randomized algorithm runs on Wᵀ [n, m] (Ω [m, l]) and its U and
  // V are swapped back. Set by PlanSvd.
  bool sketch_rows = false;
  // Exact on the CPU: dgesdd on a double copy.
  bool exact_in_double = false;
  GpuSolver gpu_solver = GpuSolver::kGesvd;
  bool gpu_tf32_sketch = false;
  // Randomized and paper, optional: the first n·l values of the sketch stream
  // of `seed` (shared, so that decompositions of one seed draw it once); when
  // null, a backend draws them itself.
  std::shared_ptr<const std::vector<float>> sketch;
  // SvdOptions::interrupt.
  std::function<absl::Status()> interrupt;

  bool randomized() const { return method != SvdMethod::kExact; }
  // Values of the sketch stream Ω uses: (sketch_rows ? m : n) · l.
  int64_t SketchValues() const { return (sketch_rows ? m : n) * l; }
  // Host bytes of the result (U, V, singular values, spectrum) and device
  // bytes of the working set of one matrix (an fp32 copy of W, the sketch and
  // its power-iteration blocks, the factors): what batching budgets.
  int64_t ResultBytes() const;
  int64_t WorkingBytes() const;
};

// Checks the arguments (a non-empty matrix, 1 <= k_max <= min(m, n),
// oversampling and power_iters >= -1, no oversampling for paper) and resolves
// the method and its parameters. INVALID_ARGUMENT naming the offending field.
absl::StatusOr<SvdPlan> PlanSvd(int64_t m, int64_t n, int64_t k_max, const SvdOptions& opts);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_SVD_PLAN_H_
