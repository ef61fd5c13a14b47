// kernels::MakeBackend: resolves --device auto|cpu|cuda to a Backend. Without
// CUDA in the build this file references no CUDA symbol.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/ops.h"
#ifdef LASERD_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace laserd::kernels {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device) {
  if (device == "cpu") return MakeCpuBackend();
  if (device == "cuda") {
#ifdef LASERD_HAVE_CUDA
    std::string why;
    if (CudaDeviceCount(&why) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"cuda\" requested but no CUDA device is available (", why, ")"));
    }
    return MakeCudaBackend(0);
#else
    return absl::FailedPreconditionError(
        "device \"cuda\" requested but this laserd was built without CUDA support");
#endif
  }
  if (device == "auto") {
#ifdef LASERD_HAVE_CUDA
    std::string why;
    if (CudaDeviceCount(&why) > 0) {
      absl::StatusOr<std::unique_ptr<Backend>> cuda = MakeCudaBackend(0);
      if (cuda.ok()) return cuda;
      why = cuda.status().ToString();
    }
    spdlog::info("device auto: falling back to the CPU backend ({})", why);
#else
    spdlog::info("device auto: falling back to the CPU backend (built without CUDA)");
#endif
    return MakeCpuBackend();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device must be one of auto, cpu, cuda; got \"", device, "\""));
}

}  // namespace laserd::kernels
