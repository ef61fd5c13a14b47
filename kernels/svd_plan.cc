#include "kernels/svd_plan.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace laserd::kernels {

absl::StatusOr<GpuSolver> ParseGpuSolver(const std::string& name) {
  if (name == "gesvd") return GpuSolver::kGesvd;
  if (name == "gesvdp") return GpuSolver::kGesvdp;
  if (name == "gram") return GpuSolver::kGram;
  return absl::InvalidArgumentError(
      absl::StrCat("gpu solver '", name, "' is not one of: gesvd, gesvdp, gram"));
}

const char* GpuSolverName(GpuSolver s) {
  switch (s) {
    case GpuSolver::kGesvd:
      return "gesvd";
    case GpuSolver::kGesvdp:
      return "gesvdp";
    case GpuSolver::kGram:
      return "gram";
  }
  return "?";
}

absl::StatusOr<SvdMethod> ParseSvdMethod(const std::string& name) {
  if (name == "exact") return SvdMethod::kExact;
  if (name == "randomized") return SvdMethod::kRandomized;
  if (name == "paper") return SvdMethod::kPaper;
  if (name == "auto") return SvdMethod::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("svd.method '", name, "' is not one of: exact, randomized, paper, auto"));
}

const char* SvdMethodName(SvdMethod m) {
  switch (m) {
    case SvdMethod::kExact:
      return "exact";
    case SvdMethod::kRandomized:
      return "randomized";
    case SvdMethod::kPaper:
      return "paper";
    case SvdMethod::kAuto:
      return "auto";
  }
  return "?";
}

int64_t DefaultOversampling(int64_t k_max) { return std::max<int64_t>(10, k_max / 2); }

double ExactSvdFlops(int64_t m, int64_t n) {
  const double mx = std::max(m, n), mn = std::min(m, n);
  return 6.0 * mx * mn * mn + 20.0 * mn * mn * mn;
}

double RandomizedSvdFlops(int64_t m, int64_t n, int64_t k, int64_t l, int q) {
  const double M = m, N = n, L = l, K = k;
  const double gemms = (2.0 * q + 2.0) * 2.0 * M * N * L;    // sketch, power steps, B
  const double qrs = 4.0 * L * L * ((q + 1.0) * M + q * N);  // geqrf + orgqr
  const double small = 4.0 * L * L * N + 8.0 * L * L * L;    // gesdd of B [l, n]
  return gemms + qrs + small + 2.0 * M * L * K;              // + U = Q Ũ_k
}

bool AutoPicksRandomized(int64_t m, int64_t n, int64_t k_max) {
  const int64_t l = std::min(std::min(m, n), k_max + DefaultOversampling(k_max));
  return RandomizedSvdFlops(m, n, k_max, l, kDefaultPowerIters) < ExactSvdFlops(m, n);
}

int64_t SvdPlan::ResultBytes() const {
  const int64_t mn = std::min(m, n);
  return 4 * ((m + n + 1) * k + (randomized() ? 0 : mn));
}

int64_t SvdPlan::WorkingBytes() const {
  const int64_t mn = std::min(m, n);
  const int64_t width = randomized() ? l : mn;
  // sketch_rows: plus the transposed copy of W.
  return 4 * ((sketch_rows ? 2 : 1) * m * n + 2 * (m + n) * width + (m + n) * k);
}

absl::StatusOr<SvdPlan> PlanSvd(int64_t m, int64_t n, int64_t k_max, const SvdOptions& opts) {
  if (m < 1 || n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot decompose an empty ", m, "x", n, " matrix"));
  }
  const int64_t mn = std::min(m, n);
  if (k_max < 1 || k_max > mn) {
    return absl::InvalidArgumentError(
        absl::StrCat("k_max ", k_max, " is outside [1, ", mn, "] for a ", m, "x", n, " matrix"));
  }
  if (opts.oversampling < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("svd.oversampling must be >= 0, got ", opts.oversampling));
  }
  if (opts.power_iters < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("svd.power_iters must be >= 0, got ", opts.power_iters));
  }
  SvdPlan plan;
  plan.m = m;
  plan.n = n;
  plan.k = k_max;
  plan.seed = opts.seed;
  plan.exact_in_double = opts.exact_in_double;
  plan.gpu_solver = opts.gpu_solver;
  plan.gpu_tf32_sketch = opts.gpu_tf32_sketch;
  plan.interrupt = opts.interrupt;
  plan.method = opts.method;
  if (plan.method == SvdMethod::kAuto) {
    plan.method = AutoPicksRandomized(m, n, k_max) ? SvdMethod::kRandomized : SvdMethod::kExact;
  }
  switch (plan.method) {
    case SvdMethod::kRandomized: {
      const int64_t p = opts.oversampling >= 0 ? opts.oversampling : DefaultOversampling(k_max);
      plan.l = std::min(mn, k_max + p);
      plan.q = opts.power_iters >= 0 ? opts.power_iters : kDefaultPowerIters;
      break;
    }
    case SvdMethod::kPaper:
      if (opts.oversampling > 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "svd.method 'paper' uses no oversampling; got svd.oversampling ", opts.oversampling));
      }
      plan.l = k_max;
      // torch.svd_lowrank's choice: get_approximate_basis of Aᵀ "if m < n or n > q".
      plan.sketch_rows = m < n || n > k_max;
      plan.q = opts.power_iters >= 0
                   ? opts.power_iters
                   : (opts.encoder_model ? kPaperEncoderPowerIters : kPaperPowerIters);
      break;
    case SvdMethod::kExact:
    case SvdMethod::kAuto:
      break;
  }
  return plan;
}

}  // namespace laserd::kernels
