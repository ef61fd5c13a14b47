// The CUDA implementation of kernels::Backend (device memory, cuBLAS GEMMs,
// the kernels of cuda_kernels.cu). Only compiled when the build has CUDA
// (LASERD_HAVE_CUDA); callers normally go through kernels::MakeBackend.
#ifndef LASERD_KERNELS_CUDA_CUDA_BACKEND_H_
#define LASERD_KERNELS_CUDA_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace laserd::kernels {

// Number of CUDA devices usable by this process; 0 when there is no device or
// no (sufficient) driver. `why` (optional) receives the runtime's reason when 0.
int CudaDeviceCount(std::string* why = nullptr);

// A backend on CUDA device `device`. FAILED_PRECONDITION when the device does
// not exist, INTERNAL when the CUDA runtime or cuBLAS cannot be initialized.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device = 0);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_CUDA_CUDA_BACKEND_H_
