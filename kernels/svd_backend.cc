// kernels::DecomposeOnBackend: the sweep's decomposition entry point. CPU: the
// host path of kernels/cpu/svd.cc, unchanged. CUDA: kernels/cuda/cuda_svd.cc,
// one call per group of same-shaped matrices.
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/ops.h"
#include "kernels/svd.h"
#ifdef LASERD_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_svd.h"
#endif

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

absl::StatusOr<std::vector<BackendSvd>> DecomposeOnBackend(
    Backend* backend, const std::vector<const Tensor*>& ws, int64_t k_max, const SvdOptions& opts,
    const std::vector<int64_t>& error_ranks) {
  std::vector<BackendSvd> out(ws.size());
  for (size_t i = 0; i < ws.size(); ++i) {
    if (ws[i] == nullptr || ws[i]->empty() || ws[i]->device() != backend->kind()) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix ", i, " is not a tensor of the ", backend->name(), " backend"));
    }
  }
#ifdef LASERD_HAVE_CUDA
  if (const CudaContext* ctx = CudaContextOf(backend); ctx != nullptr) {
    std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> groups;
    for (size_t i = 0; i < ws.size(); ++i) groups[{ws[i]->rows(), ws[i]->cols()}].push_back(i);
    for (const auto& [shape, idx] : groups) {
      const auto [m, n] = shape;
      // The same argument checks and method resolution as ComputeTruncatedSvd.
      if (m < 1 || n < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot decompose an empty ", m, "x", n, " matrix"));
      }
      const int64_t mn = std::min(m, n);
      if (k_max < 1 || k_max > mn) {
        return absl::InvalidArgumentError(absl::StrCat("k_max ", k_max, " is outside [1, ", mn,
                                                       "] for a ", m, "x", n, " matrix"));
      }
      if (opts.oversampling < -1) {
        return absl::InvalidArgumentError(
            absl::StrCat("svd.oversampling must be >= 0, got ", opts.oversampling));
      }
      if (opts.power_iters < -1) {
        return absl::InvalidArgumentError(
            absl::StrCat("svd.power_iters must be >= 0, got ", opts.power_iters));
      }
      for (int64_t k : error_ranks) {
        if (k < 0 || k > k_max) {
          return absl::InvalidArgumentError(
              absl::StrCat("rank ", k, " is outside the decomposition's [0, ", k_max, "]"));
        }
      }
      SvdMethod method = opts.method;
      if (method == SvdMethod::kAuto) {
        method = AutoPicksRandomized(m, n, k_max) ? SvdMethod::kRandomized : SvdMethod::kExact;
      }
      CudaSvdJob job;
      for (size_t i : idx) job.ws.push_back(ws[i]);
      job.k = k_max;
      job.solver = opts.gpu_solver;
      job.tf32_sketch = opts.gpu_tf32_sketch;
      job.error_ranks = error_ranks;
      std::vector<float> omega;
      if (method == SvdMethod::kRandomized) {
        const int64_t p = opts.oversampling >= 0 ? opts.oversampling : DefaultOversampling(k_max);
        job.randomized = true;
        job.l = std::min(mn, k_max + p);
        job.q = opts.power_iters >= 0 ? opts.power_iters : kDefaultPowerIters;
      } else if (method == SvdMethod::kPaper) {
        if (opts.oversampling > 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "svd.method 'paper' uses no oversampling; got svd.oversampling ", opts.oversampling));
        }
        job.randomized = true;
        job.l = k_max;
        job.q = opts.power_iters >= 0
                    ? opts.power_iters
                    : (opts.encoder_model ? kPaperEncoderPowerIters : kPaperPowerIters);
      }
      if (job.randomized) {
        omega.resize(n * job.l);
        GaussianFill(opts.seed, omega.data(), n * job.l);
        job.omega = omega.data();
      }
      auto r = CudaDecompose(*ctx, job);
      if (!r.ok()) return r.status();
      for (size_t j = 0; j < idx.size(); ++j) {
        BackendSvd& b = (*r)[j];
        b.svd.method = method;
        if (!job.randomized) {
          // Exact: every prefix's error from the full spectrum, as on the CPU.
          auto errors = TruncationErrors(nullptr, b.svd, error_ranks);
          if (!errors.ok()) return errors.status();
          b.errors = *std::move(errors);
        }
        out[idx[j]] = std::move(b);
      }
    }
    return out;
  }
#endif
  for (size_t i = 0; i < ws.size(); ++i) {
    std::vector<float> host(ws[i]->size());
    backend->ToHost(*ws[i], host.data());
    auto svd = ComputeTruncatedSvd(host.data(), ws[i]->rows(), ws[i]->cols(), k_max, opts);
    if (!svd.ok()) return svd.status();
    auto errors = TruncationErrors(host.data(), *svd, error_ranks);
    if (!errors.ok()) return errors.status();
    out[i].svd = *std::move(svd);
    out[i].errors = *std::move(errors);
  }
  return out;
}

}  // namespace laserd::kernels
