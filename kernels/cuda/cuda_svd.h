// Truncated SVDs on a CUDA backend (cuBLAS + cuSOLVER), the CUDA backend's
// Backend::Decompose. The plan (kernels/svd_plan.h) is resolved and checked by
// kernels::DecomposeOnBackend before it gets here; this library uses no symbol
// of laserd_kernels (it links after it), only its headers' types.
#ifndef LASERD_KERNELS_CUDA_CUDA_SVD_H_
#define LASERD_KERNELS_CUDA_CUDA_SVD_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {

// Decomposes the same-shaped resident matrices `ws` (any dtype) by `plan`,
// enqueued on ctx.stream (the caller holds the backend's lock and has set the
// device). `omega` is the sketch on the device, column-major [n, l]
// (randomized/paper; ignored by exact). Fills out as Backend::Decompose
// specifies: svd.{m, n, k, method, u, s, v, frobenius_sq}, spectrum for
// exact, the errors of error_ranks for randomized.
absl::Status CudaDecompose(const CudaContext& ctx, const std::vector<const Tensor*>& ws,
                           const SvdPlan& plan, const float* omega,
                           const std::vector<int64_t>& error_ranks, std::vector<BackendSvd>* out);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_CUDA_CUDA_SVD_H_
