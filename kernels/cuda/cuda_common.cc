#include "kernels/cuda/cuda_common.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/ops.h"

namespace laserd::kernels::detail {

[[noreturn]] void Fatal(const std::string& msg) {
  spdlog::critical("cuda backend: {}", msg);
  std::abort();
}

void CheckCuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    Fatal(absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
  }
}

void CheckCublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) {
    Fatal(absl::StrCat(what, ": ", cublasGetStatusName(st), " (", cublasGetStatusString(st), ")"));
  }
}

void Require(bool ok, const char* op, const std::string& what) {
  if (!ok) Fatal(absl::StrCat(op, ": ", what));
}

std::string Shape(const Tensor& t) { return absl::StrCat("[", t.rows(), ", ", t.cols(), "]"); }

void RequireDevice(const Tensor& t, const char* op, const char* name) {
  Require(!t.empty() && t.device() == DeviceKind::kCuda, op,
          absl::StrCat(name, " is not a CUDA tensor"));
}

cuda::ActKind ToActKind(Activation act) {
  switch (act) {
    case Activation::kSilu:
      return cuda::ActKind::kSilu;
    case Activation::kGeluTanh:
      return cuda::ActKind::kGeluTanh;
    case Activation::kGeluErf:
      return cuda::ActKind::kGeluErf;
    case Activation::kRelu:
      return cuda::ActKind::kRelu;
  }
  Fatal("unknown activation");
}

int CheckedInt(int64_t v, const char* op) {
  Require(v >= 0 && v <= INT_MAX, op, absl::StrCat("dimension ", v, " exceeds the int range"));
  return static_cast<int>(v);
}

cuda::ElemType Elem(DType t) {
  switch (t) {
    case DType::kBF16:
      return cuda::ElemType::kBF16;
    case DType::kF16:
      return cuda::ElemType::kF16;
    case DType::kF32:
      break;
  }
  return cuda::ElemType::kF32;
}

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kF32:
      break;
  }
  return CUDA_R_32F;
}

void RequireF32(const Tensor& t, const char* op, const char* name) {
  Require(t.dtype() == DType::kF32, op,
          absl::StrCat(name, " is ", DTypeName(t.dtype()), "; this op takes fp32 only"));
}

}  // namespace laserd::kernels::detail
