// kernels::MakeBackend: resolves --device auto|cpu|cuda[:N][/dtype] to a
// Backend. Without CUDA in the build this file references no CUDA symbol.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/ops.h"
#ifdef LASERD_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace laserd::kernels {

absl::StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "fp32" || name == "f32" || name == "float32") return DType::kF32;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "fp16" || name == "f16" || name == "float16") return DType::kF16;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype must be one of fp32, bf16, fp16; got \"", name, "\""));
}

absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& device) {
  DeviceSpec spec;
  std::string rest = device;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    auto dt = ParseDType(rest.substr(slash + 1));
    if (!dt.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", device, "\": ", dt.status().message()));
    }
    spec.dtype = *dt;
    spec.dtype_given = true;
    rest = rest.substr(0, slash);
  }
  if (const size_t colon = rest.find(':'); colon != std::string::npos) {
    const std::string idx = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (!absl::SimpleAtoi(idx, &spec.index) || spec.index < 0 || idx.empty() ||
        idx.find_first_not_of("0123456789") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", device, "\": the device index must be a non-negative integer"));
    }
    if (rest == "cpu") {
      return absl::InvalidArgumentError(
          absl::StrCat("device \"", device, "\": the cpu device takes no index"));
    }
  }
  if (rest != "auto" && rest != "cpu" && rest != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat(
        "device must be one of auto, cpu, cuda (optionally cuda:N and /fp32|/bf16|/fp16); got \"",
        device, "\""));
  }
  if (rest == "cpu" && spec.dtype != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat("device \"", device,
                                                   "\": the CPU backend stores fp32 only (dtype ",
                                                   DTypeName(spec.dtype), " needs cuda)"));
  }
  spec.kind = rest;
  return spec;
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device) {
  LASERD_ASSIGN_OR_RETURN(const DeviceSpec spec, ParseDeviceSpec(device));
  if (spec.kind == "cpu") return MakeCpuBackend();
  if (spec.kind == "cuda") {
#ifdef LASERD_HAVE_CUDA
    std::string why;
    if (CudaDeviceCount(&why) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"cuda\" requested but no CUDA device is available (", why, ")"));
    }
    return MakeCudaBackend(spec.index, spec.dtype);
#else
    return absl::FailedPreconditionError(
        "device \"cuda\" requested but this laserd was built without CUDA support");
#endif
  }
  // auto
#ifdef LASERD_HAVE_CUDA
  std::string why;
  if (CudaDeviceCount(&why) > 0) {
    absl::StatusOr<std::unique_ptr<Backend>> cuda = MakeCudaBackend(spec.index, spec.dtype);
    if (cuda.ok()) return cuda;
    why = cuda.status().ToString();
  }
  spdlog::info("device auto: falling back to the CPU backend ({}){}", why,
               spec.dtype != DType::kF32 ? " with fp32 weights" : "");
#else
  spdlog::info("device auto: falling back to the CPU backend (built without CUDA){}",
               spec.dtype != DType::kF32 ? " with fp32 weights" : "");
#endif
  return MakeCpuBackend();
}

}  // namespace laserd::kernels
