// Internal helpers of the CUDA backend (kernels/cuda/cuda_backend_*.cc): the
// checks that log a precise message and abort on a failing CUDA/cuBLAS call or
// a shape that does not fit, the dtype mappings, and the small RAII utilities
// (Scratch, DeviceScope, StreamState). Not part of the backend's interface.
#ifndef LASERD_KERNELS_CUDA_CUDA_COMMON_H_
#define LASERD_KERNELS_CUDA_CUDA_COMMON_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/ops.h"

namespace laserd::kernels::detail {

// Logs `msg` as critical and aborts.
[[noreturn]] void Fatal(const std::string& msg);

// Fatal unless `err` is cudaSuccess / `st` is CUBLAS_STATUS_SUCCESS.
void CheckCuda(cudaError_t err, const char* what);
void CheckCublas(cublasStatus_t st, const char* what);

// Fatal with "op: what" unless `ok`.
void Require(bool ok, const char* op, const std::string& what);

// "[rows, cols]".
std::string Shape(const Tensor& t);

// Fatal unless `t` is a non-empty CUDA tensor.
void RequireDevice(const Tensor& t, const char* op, const char* name);

cuda::ActKind ToActKind(Activation act);

// `v` as an int; fatal when it is negative or exceeds INT_MAX.
int CheckedInt(int64_t v, const char* op);

// A device buffer that only grows; reused across calls on the same stream, so
// stream order keeps earlier kernels' reads ahead of later uploads.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* Reserve(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_ != nullptr) CheckCuda(cudaFree(ptr_), "cudaFree(scratch)");
      ptr_ = nullptr;
      bytes_ = 0;
      CheckCuda(cudaMalloc(&ptr_, bytes), "cudaMalloc(scratch)");
      bytes_ = bytes;
    }
    return ptr_;
  }
  // Copies `bytes` from host memory; pageable sources may be freed on return.
  void* Upload(const void* src, size_t bytes, cudaStream_t stream) {
    void* dst = Reserve(std::max<size_t>(bytes, 1));
    if (bytes > 0) {
      CheckCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream),
                "cudaMemcpyAsync(upload)");
    }
    return dst;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The kernels' and cuBLAS's element types of `t`.
cuda::ElemType Elem(DType t);
cudaDataType_t CudaType(DType t);

// Fatal unless `t` is fp32.
void RequireF32(const Tensor& t, const char* op, const char* name);

// One GEMM operand in row-major layout: `data` of element type `type` with
// leading dimension `ld`.
struct GemmOperand {
  const void* data;
  DType type;
  int64_t ld;
};

// Sets `device` as the calling thread's current device for a scope and
// restores the previous one (cudaGetDevice/cudaSetDevice are cheap host calls).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    CheckCuda(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) CheckCuda(cudaSetDevice(device), "cudaSetDevice");
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
  ~DeviceScope() {
    int cur = prev_;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = 0;
};

// The stream the tensors are allocated and freed on. Shared by the backend
// and the deleter of every tensor, so that a tensor released after its
// backend still frees into a live stream; destroyed with the last of them.
struct StreamState {
  int device = 0;
  cudaStream_t stream = nullptr;
  ~StreamState() {
    int prev = device;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    cudaSetDevice(prev);
  }
};

}  // namespace laserd::kernels::detail

#endif  // LASERD_KERNELS_CUDA_CUDA_COMMON_H_
