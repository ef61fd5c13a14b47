// CudaBackend::Decompose: truncated SVDs of resident matrices (CudaDecompose,
// cuda_svd.cc) with the plan's sketch kept on the device.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/cuda_svd.h"
#include "kernels/svd.h"

namespace laserd::kernels::detail {

absl::Status CudaBackend::Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                                    const std::vector<int64_t>& error_ranks,
                                    std::vector<BackendSvd>* out) {
  OpScope op(this);
  for (const Tensor* w : ws) {
    if (w == nullptr || w->empty() || w->device() != DeviceKind::kCuda) {
      return absl::InvalidArgumentError("gpu svd: a matrix is not a CUDA tensor");
    }
  }
  const float* omega = nullptr;
  if (plan.randomized() && !ws.empty()) {
    LASERD_ASSIGN_OR_RETURN(omega, DeviceSketch(plan));
  }
  return CudaDecompose(ctx_, ws, plan, omega, error_ranks, out);
}

absl::StatusOr<const float*> CudaBackend::DeviceSketch(const SvdPlan& plan) {
  const int64_t need = plan.n * plan.l;
  if (omega_ != nullptr && omega_seed_ == plan.seed && omega_count_ >= need) return omega_;
  if (plan.sketch == nullptr || static_cast<int64_t>(plan.sketch->size()) < need) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu svd: the plan carries no sketch of ", need, " values"));
  }
  const int64_t count = static_cast<int64_t>(plan.sketch->size());
  if (omega_ != nullptr) {
    // cudaFree waits for the device, so no queued GEMM still reads it.
    CheckCuda(cudaFree(omega_), "cudaFree(sketch)");
    omega_ = nullptr;
    omega_count_ = 0;
  }
  void* p = nullptr;
  if (cudaError_t e = cudaMalloc(&p, count * sizeof(float)); e != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat("gpu svd: cudaMalloc of the ", count,
                                                     "-value sketch: ", cudaGetErrorString(e)));
  }
  omega_ = static_cast<float*>(p);
  CheckCuda(cudaMemcpyAsync(omega_, plan.sketch->data(), count * sizeof(float),
                            cudaMemcpyHostToDevice, stream_),
            "cudaMemcpyAsync(sketch)");
  omega_seed_ = plan.seed;
  omega_count_ = count;
  return omega_;
}

}  // namespace laserd::kernels::detail
