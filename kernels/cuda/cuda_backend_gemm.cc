// CudaBackend's GEMMs: Linear and MatMul through cublasGemmEx (GemmRowMajor).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels::detail {

void CudaBackend::Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
                         bool accumulate) {
  OpScope op(this);
  const int64_t n = x.rows(), k = x.cols(), m = w.rows();
  if (n == 0) return;
  RequireDevice(x, "Linear", "x");
  RequireDevice(w, "Linear", "w");
  RequireDevice(*y, "Linear", "y");
  Require(w.cols() == k, "Linear", absl::StrCat("x ", Shape(x), " vs w ", Shape(w)));
  Require(y->rows() >= n && y->cols() == m, "Linear",
          absl::StrCat("y ", Shape(*y), " for x ", Shape(x), " w ", Shape(w)));
  if (bias != nullptr) {
    RequireDevice(*bias, "Linear", "bias");
    Require(bias->size() >= m, "Linear", absl::StrCat("bias ", Shape(*bias), " for w ", Shape(w)));
  }
  if (bias != nullptr) RequireF32(*bias, "Linear", "bias");
  // A reduced-type output (a dense edit W ← us·vᵀ of a bf16 matrix) goes
  // through an fp32 buffer.
  float* out = y->data();
  if (y->dtype() != DType::kF32) {
    out = static_cast<float*>(yconv_scratch_.Reserve(n * m * sizeof(float)));
    if (accumulate) {
      CheckCuda(cuda::LaunchConvert(y->raw(), Elem(y->dtype()), out, cuda::ElemType::kF32, n * m,
                                    stream_),
                "Linear output conversion");
    }
  }
  float beta = accumulate ? 1.0f : 0.0f;
  if (bias != nullptr && !accumulate) {
    CheckCuda(cuda::LaunchBroadcastRows(bias->data(), n, m, out, stream_), "bias broadcast");
    beta = 1.0f;
  }
  GemmRowMajor(n, m, k, {x.raw(), x.dtype(), k}, {w.raw(), w.dtype(), k},
               /*b_transposed=*/true, beta, out, m);
  if (bias != nullptr && accumulate) {
    CheckCuda(cuda::LaunchAddBias(bias->data(), n, m, out, stream_), "bias add");
  }
  if (out != y->data()) {
    CheckCuda(
        cuda::LaunchConvert(out, cuda::ElemType::kF32, y->raw(), Elem(y->dtype()), n * m, stream_),
        "Linear output conversion");
  }
}

void CudaBackend::MatMul(const Tensor& x, const Tensor& a, Tensor* y) {
  OpScope op(this);
  const int64_t n = x.rows(), k = x.cols(), r = a.cols();
  if (n == 0) return;
  RequireDevice(x, "MatMul", "x");
  RequireDevice(a, "MatMul", "a");
  RequireDevice(*y, "MatMul", "y");
  Require(a.rows() == k, "MatMul", absl::StrCat("x ", Shape(x), " vs a ", Shape(a)));
  Require(y->rows() >= n && y->cols() == r, "MatMul",
          absl::StrCat("y ", Shape(*y), " for x ", Shape(x), " a ", Shape(a)));
  RequireF32(*y, "MatMul", "y");
  GemmRowMajor(n, r, k, {x.raw(), x.dtype(), k}, {a.raw(), a.dtype(), r},
               /*b_transposed=*/false, 0.0f, y->data(), r);
}

void CudaBackend::GemmRowMajor(int64_t n, int64_t m, int64_t k, GemmOperand a, GemmOperand b,
                               bool b_transposed, float beta, float* c, int64_t ldc) {
  const float alpha = 1.0f;
  const int in = CheckedInt(n, "GEMM"), im = CheckedInt(m, "GEMM"), ik = CheckedInt(k, "GEMM");
  if (im == 0) return;
  const DType type = b.type != DType::kF32 ? b.type : a.type;
  if (a.type != type) {
    void* conv = aconv_scratch_.Reserve(n * a.ld * DTypeBytes(type));
    CheckCuda(cuda::LaunchConvert(a.data, Elem(a.type), conv, Elem(type), n * a.ld, stream_),
              "GEMM operand conversion");
    a = {conv, type, a.ld};
  }
  if (b.type != type) {
    const int64_t count = (b_transposed ? m : k) * b.ld;
    void* conv = bconv_scratch_.Reserve(count * DTypeBytes(type));
    CheckCuda(cuda::LaunchConvert(b.data, Elem(b.type), conv, Elem(type), count, stream_),
              "GEMM operand conversion");
    b = {conv, type, b.ld};
  }
  const int lda = CheckedInt(std::max<int64_t>(a.ld, 1), "GEMM");
  const int ldb = CheckedInt(std::max<int64_t>(b.ld, 1), "GEMM");
  const int ldcc = CheckedInt(std::max<int64_t>(ldc, 1), "GEMM");
  CheckCublas(cublasGemmEx(blas_, b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, im, in, ik,
                           &alpha, b.data, CudaType(b.type), ldb, a.data, CudaType(a.type), lda,
                           &beta, c, CUDA_R_32F, ldcc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
}

}  // namespace laserd::kernels::detail
