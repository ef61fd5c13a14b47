// The CUDA implementation of kernels::Backend (device memory, cuBLAS GEMMs,
// the kernels of cuda_kernels.cu). Only compiled when the build has CUDA
// (LASERD_HAVE_CUDA); callers normally go through kernels::MakeBackend.
#ifndef LASERD_KERNELS_CUDA_CUDA_BACKEND_H_
#define LASERD_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace laserd::kernels {

// Number of CUDA devices usable by this process; 0 when there is no device or
// no (sufficient) driver. `why` (optional) receives the runtime's reason when 0.
int CudaDeviceCount(std::string* why = nullptr);

// A backend on CUDA device `device` whose resident matrices (FromHost with
// more than one row) are stored as `dtype`. FAILED_PRECONDITION when the
// device does not exist, INTERNAL when the CUDA runtime, cuBLAS or cuSOLVER
// cannot be initialized.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device = 0, DType dtype = DType::kF32);

// The handles of a CUDA backend, for device algorithms outside the op
// interface (kernels/cuda/cuda_svd.cc). Everything is enqueued on `stream`;
// `blas` and `solver` are bound to it. Valid while the backend lives.
struct CudaContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  DType dtype = DType::kF32;
};
// Null when `backend` is not a CUDA backend.
const CudaContext* CudaContextOf(const Backend* backend);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_CUDA_CUDA_BACKEND_H_
