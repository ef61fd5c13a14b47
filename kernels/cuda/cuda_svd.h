// Truncated SVDs on a CUDA backend (cuBLAS + cuSOLVER); reached through
// kernels::DecomposeOnBackend (kernels/svd.h), which validates the arguments,
// resolves the method and its parameters and draws Ω, so that this library
// uses no symbol of laserd_kernels (it links after it).
#ifndef LASERD_KERNELS_CUDA_CUDA_SVD_H_
#define LASERD_KERNELS_CUDA_CUDA_SVD_H_

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {

// One group of same-shaped resident matrices [m, n] (any dtype), validated.
struct CudaSvdJob {
  std::vector<const Tensor*> ws;
  int64_t k = 0;                 // kept rank, 1 <= k <= min(m, n)
  bool randomized = false;       // else exact
  int64_t l = 0;                 // sketch width (randomized)
  int q = 0;                     // power iterations (randomized)
  const float* omega = nullptr;  // host Ω, column-major [n, l] (randomized)
  GpuSolver solver = GpuSolver::kGesvd;
  bool tf32_sketch = false;
  // Ranks whose truncation errors the randomized path forms as the device
  // residual ‖W − U_kΣ_kV_kᵀ‖_F / ‖W‖_F (exact: the caller uses the spectrum).
  std::vector<int64_t> error_ranks;
};

// Fills svd (u, s, v, spectrum for exact, frobenius_sq, m, n, k; not method)
// and, for randomized, errors.
absl::StatusOr<std::vector<BackendSvd>> CudaDecompose(const CudaContext& ctx,
                                                      const CudaSvdJob& job);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_CUDA_CUDA_SVD_H_
