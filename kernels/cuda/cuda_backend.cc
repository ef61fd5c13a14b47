// CudaBackend: construction and destruction, tensor allocation (stream-ordered
// from the device's memory pool) and host/device transfers.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels::detail {

CudaBackend::CudaBackend(const CudaContext& ctx)
    : ctx_(ctx),
      device_(ctx.device),
      stream_(ctx.stream),
      blas_(ctx.blas),
      storage_(ctx.dtype),
      state_(std::make_shared<StreamState>()) {
  state_->device = device_;
  state_->stream = stream_;
}

CudaBackend::~CudaBackend() {
  // Errors are ignored: at process exit the runtime may already be gone.
  int prev = device_;
  cudaGetDevice(&prev);
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  if (omega_ != nullptr) cudaFree(omega_);
  cusolverDnDestroy(ctx_.solver);
  cublasDestroy(blas_);
  cudaSetDevice(prev);
  // The stream goes with the last tensor (StreamState).
}

Tensor CudaBackend::Empty(int64_t rows, int64_t cols) {
  OpScope op(this);
  return EmptyOf(rows, cols, DType::kF32);
}

Tensor CudaBackend::FromHost(const float* data, int64_t rows, int64_t cols) {
  OpScope op(this);
  // Resident matrices take the storage type; vectors ([1, n]: norms,
  // biases) stay fp32.
  const DType dt = rows > 1 ? storage_ : DType::kF32;
  Tensor t = EmptyOf(rows, cols, dt);
  if (t.size() == 0) return t;
  // An asynchronous copy from pageable memory returns once the source is
  // staged by the driver, so `data` may be released on return; no host wait.
  if (dt == DType::kF32) {
    CheckCuda(
        cudaMemcpyAsync(t.data(), data, t.size() * sizeof(float), cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync(FromHost)");
    return t;
  }
  // Upload in slices into stream-ordered fp32 buffers (freed after their
  // conversion in stream order), converting each.
  constexpr int64_t kSlice = int64_t{1} << 24;  // 64 MiB of fp32
  for (int64_t off = 0; off < t.size(); off += kSlice) {
    const int64_t len = std::min(kSlice, t.size() - off);
    void* stage = nullptr;
    CheckCuda(cudaMallocAsync(&stage, len * sizeof(float), stream_),
              "cudaMallocAsync(FromHost staging)");
    CheckCuda(
        cudaMemcpyAsync(stage, data + off, len * sizeof(float), cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync(FromHost)");
    CheckCuda(cuda::LaunchConvert(stage, cuda::ElemType::kF32,
                                  static_cast<char*>(t.raw()) + off * DTypeBytes(dt), Elem(dt), len,
                                  stream_),
              "FromHost conversion");
    CheckCuda(cudaFreeAsync(stage, stream_), "cudaFreeAsync(FromHost staging)");
  }
  return t;
}

void CudaBackend::ToHost(const Tensor& t, float* out) {
  OpScope op(this);
  RequireDevice(t, "ToHost", "t");
  if (t.size() > 0) {
    const float* src = t.data();
    if (t.dtype() != DType::kF32) {
      float* tmp = static_cast<float*>(convert_scratch_.Reserve(t.size() * sizeof(float)));
      CheckCuda(cuda::LaunchConvert(t.raw(), Elem(t.dtype()), tmp, cuda::ElemType::kF32, t.size(),
                                    stream_),
                "ToHost conversion");
      src = tmp;
    }
    CheckCuda(cudaMemcpyAsync(out, src, t.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_),
              "cudaMemcpyAsync(ToHost)");
  }
  CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(ToHost)");
}

void CudaBackend::Copy(const Tensor& src, Tensor* dst) {
  OpScope op(this);
  RequireDevice(src, "Copy", "src");
  RequireDevice(*dst, "Copy", "dst");
  Require(dst->size() >= src.size(), "Copy",
          absl::StrCat("dst ", Shape(*dst), " smaller than src ", Shape(src)));
  if (src.size() > 0) {
    CheckCuda(cuda::LaunchConvert(src.raw(), Elem(src.dtype()), dst->raw(), Elem(dst->dtype()),
                                  src.size(), stream_),
              "Copy");
  }
}

Tensor CudaBackend::EmptyOf(int64_t rows, int64_t cols, DType dt) {
  Require(rows >= 0 && cols >= 0, "Empty", absl::StrCat("negative shape ", rows, "x", cols));
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(rows * cols, 1)) * DTypeBytes(dt);
  void* p = nullptr;
  CheckCuda(cudaMallocAsync(&p, bytes, stream_),
            absl::StrCat("cudaMallocAsync of ", bytes, " bytes").c_str());
  // Freed in stream order, after every use already enqueued; a release
  // error is ignored (at process exit the runtime may already be gone).
  return Tensor(
      std::shared_ptr<float>(static_cast<float*>(p),
                             [state = state_](float* q) { cudaFreeAsync(q, state->stream); }),
      rows, cols, DeviceKind::kCuda, dt);
}

}  // namespace laserd::kernels::detail
