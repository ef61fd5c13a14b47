// The CUDA backend's entry points (kernels/cuda/cuda_backend.h): device
// discovery, construction of a CudaBackend with its stream and cuBLAS/cuSOLVER
// handles, and access to its CudaContext.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/ops.h"

namespace laserd::kernels {

int CudaDeviceCount(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why != nullptr) *why = absl::StrCat(cudaGetErrorName(err), ": ", cudaGetErrorString(err));
    cudaGetLastError();  // reset the runtime's last-error state
    return 0;
  }
  if (count == 0 && why != nullptr) *why = "the CUDA runtime reports 0 devices";
  return count;
}

const CudaContext* CudaContextOf(const Backend* backend) {
  const auto* cuda = dynamic_cast<const detail::CudaBackend*>(backend);
  return cuda == nullptr ? nullptr : &cuda->context();
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device, DType dtype) {
  std::string why;
  const int count = CudaDeviceCount(&why);
  if (count == 0) {
    return absl::FailedPreconditionError(absl::StrCat("no CUDA device: ", why));
  }
  if (device < 0 || device >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA device ", device, " does not exist (", count, " present)"));
  }
  // The caller's current device is restored on return (DeviceScope).
  int prev = 0;
  if (cudaError_t err = cudaGetDevice(&prev); err != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaGetDevice: ", cudaGetErrorString(err)));
  }
  struct Restore {
    int device;
    ~Restore() { cudaSetDevice(device); }
  } restore{prev};
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("cudaSetDevice(", device, "): ", cudaGetErrorString(err)));
  }
  int pools = 0;
  cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
  if (pools == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA device ", device, " does not support stream-ordered memory pools"));
  }
  cudaDeviceProp prop{};
  if (cudaError_t err = cudaGetDeviceProperties(&prop, device); err != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaGetDeviceProperties: ", cudaGetErrorString(err)));
  }
  // The device's default pool keeps up to 1/16 of the device's memory of
  // freed blocks for reuse instead of returning them at every synchronization.
  cudaMemPool_t pool = nullptr;
  if (cudaError_t err = cudaDeviceGetDefaultMemPool(&pool, device); err != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("cudaDeviceGetDefaultMemPool: ", cudaGetErrorString(err)));
  }
  uint64_t threshold = prop.totalGlobalMem / 16;
  if (cudaError_t err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
      err != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("cudaMemPoolSetAttribute(release threshold): ", cudaGetErrorString(err)));
  }
  cudaStream_t stream = nullptr;
  if (cudaError_t err = cudaStreamCreate(&stream); err != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaStreamCreate: ", cudaGetErrorString(err)));
  }
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  auto fail = [&](const std::string& what) {
    if (solver != nullptr) cusolverDnDestroy(solver);
    if (blas != nullptr) cublasDestroy(blas);
    cudaStreamDestroy(stream);
    return absl::InternalError(what);
  };
  if (cublasStatus_t st = cublasCreate(&blas); st != CUBLAS_STATUS_SUCCESS) {
    blas = nullptr;
    return fail(absl::StrCat("cublasCreate: ", cublasGetStatusString(st)));
  }
  if (cublasStatus_t st = cublasSetStream(blas, stream); st != CUBLAS_STATUS_SUCCESS) {
    return fail(absl::StrCat("cublasSetStream: ", cublasGetStatusString(st)));
  }
  // The default math mode keeps CUBLAS_COMPUTE_32F GEMMs in plain fp32 (no
  // TF32), so results match the CPU backend to fp32 rounding.
  if (cublasStatus_t st = cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
      st != CUBLAS_STATUS_SUCCESS) {
    return fail(absl::StrCat("cublasSetMathMode: ", cublasGetStatusString(st)));
  }
  if (cusolverStatus_t st = cusolverDnCreate(&solver); st != CUSOLVER_STATUS_SUCCESS) {
    solver = nullptr;
    return fail(absl::StrCat("cusolverDnCreate failed: status ", int(st)));
  }
  if (cusolverStatus_t st = cusolverDnSetStream(solver, stream); st != CUSOLVER_STATUS_SUCCESS) {
    return fail(absl::StrCat("cusolverDnSetStream failed: status ", int(st)));
  }
  spdlog::info("cuda backend on device {} ({}, {:.1f} GiB), resident matrices in {}", device,
               prop.name, prop.totalGlobalMem / double(1 << 30), DTypeName(dtype));
  CudaContext ctx;
  ctx.device = device;
  ctx.stream = stream;
  ctx.blas = blas;
  ctx.solver = solver;
  ctx.dtype = dtype;
  return std::unique_ptr<Backend>(std::make_unique<detail::CudaBackend>(ctx));
}

}  // namespace laserd::kernels
