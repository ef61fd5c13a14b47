// Truncated SVDs on the GPU with the definitions of kernels/cpu/svd.cc.
//
// Layout, as on the CPU: a row-major W [m, n] is the column-major A = Wᵀ
// [n, m] (leading dimension n); everything runs column-major on that view.
// The outputs are row-major U [m, k] and V [n, k], i.e. column-major Uᵀ [k, m]
// and Vᵀ [k, n], which are what the last GEMM / transpose produce directly.
//
// Randomized (HMT 4.4 + 5.1) over a group of B same-shaped matrices, with one
// shared Ω (the CPU draws the same Ω for every matrix of a sweep, since the
// seed is the sweep's; the backend keeps it on the device): Y = WΩ, Z = WᵀQ, Y = WZ and Bᵀ = WᵀQ
// are strided- batched GEMMs over the group (stride 0 for Ω); each QR is cuSOLVER geqrf + orgqr;
// the small SVD is of Bᵀ [n, l] (tall, so every solver takes it): Bᵀ = P Σ Rᵀ, hence B = R Σ Pᵀ, U
// = Q R, V = P. Exact: the dense SVD of the tall one of A / W. Dense SVDs by opts.gpu_solver
// (svd.h).
//
// Stopping (SvdPlan::interrupt), as on the CPU: asked before the batch, before
// every power iteration (each covers the whole batch) and before each later
// matrix's own steps (its dense SVD, factors and truncation errors); a non-OK
// answer returns it at once, with the stream drained. A single cuSOLVER call
// is not stopped part-way.
#include "kernels/cuda/cuda_svd.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels {
namespace {

absl::Status CudaErr(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("gpu svd: ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
}
absl::Status BlasErr(cublasStatus_t e, const char* what) {
  if (e == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("gpu svd: ", what, ": ", cublasGetStatusName(e)));
}
absl::Status SolverErr(cusolverStatus_t e, const char* what) {
  if (e == CUSOLVER_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("gpu svd: ", what, ": cusolver status ", int(e)));
}

// gesvdp's reported error (its h_err_sigma) above which it is logged.
constexpr double kGesvdpErrorToLog = 1e-4;

// A stream-ordered device allocation (the backend's memory pool), freed in
// stream order on scope exit: every use is enqueued on the same stream.
class Buf {
 public:
  explicit Buf(cudaStream_t stream) : stream_(stream) {}
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() {
    if (p_ != nullptr) cudaFreeAsync(p_, stream_);
  }
  absl::Status Alloc(size_t bytes, const char* what) {
    if (p_ != nullptr) cudaFreeAsync(p_, stream_);
    p_ = nullptr;
    return CudaErr(cudaMallocAsync(&p_, std::max<size_t>(bytes, 1), stream_),
                   absl::StrCat("cudaMallocAsync ", bytes, " bytes for ", what).c_str());
  }
  float* f() const { return static_cast<float*>(p_); }
  void* get() const { return p_; }

 private:
  cudaStream_t stream_;
  void* p_ = nullptr;
};

class Solver {
 public:
  explicit Solver(const CudaContext& ctx)
      : ctx_(ctx), info_(ctx.stream), tau_(ctx.stream), work_(ctx.stream) {}
  ~Solver() {
    if (params_ != nullptr) cusolverDnDestroyParams(params_);
  }
  absl::Status Init() {
    LASERD_RETURN_IF_ERROR(SolverErr(cusolverDnCreateParams(&params_), "cusolverDnCreateParams"));
    return info_.Alloc(sizeof(int), "info");
  }

  // C (column-major, ldc) = alpha·op(A)·op(B) + beta·C, batched with strides
  // (stride 0 reuses an operand), fp32 storage, fp32 or TF32 compute.
  absl::Status Gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const float* a, int64_t lda, int64_t sa, const float* b,
                    int64_t ldb, int64_t sb, float beta, float* c, int64_t ldc, int64_t sc,
                    int batch, bool tf32) {
    return BlasErr(
        cublasGemmStridedBatchedEx(
            ctx_.blas, ta, tb, int(m), int(n), int(k), &alpha, a, CUDA_R_32F, int(lda), sa, b,
            CUDA_R_32F, int(ldb), sb, &beta, c, CUDA_R_32F, int(ldc), sc, batch,
            tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
  }

  // C [m, n] = op(A) (a transpose when ta is T), column-major.
  absl::Status Transpose(int64_t m, int64_t n, const float* a, int64_t lda, float* c, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    return BlasErr(cublasSgeam(ctx_.blas, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), &one, a,
                               int(lda), &zero, c, int(ldc), c, int(ldc)),
                   "cublasSgeam");
  }

  // a [rows, cols] column-major (rows >= cols) ← its orthonormal factor Q.
  absl::Status Orthonormalize(float* a, int64_t rows, int64_t cols) {
    const int r = int(rows), c = int(cols);
    int lwork_qr = 0, lwork_q = 0;
    LASERD_RETURN_IF_ERROR(SolverErr(
        cusolverDnSgeqrf_bufferSize(ctx_.solver, r, c, a, r, &lwork_qr), "geqrf_bufferSize"));
    if (tau_bytes_ < size_t(c) * 4) {
      LASERD_RETURN_IF_ERROR(tau_.Alloc(size_t(c) * 4, "tau"));
      tau_bytes_ = size_t(c) * 4;
    }
    LASERD_RETURN_IF_ERROR(
        SolverErr(cusolverDnSorgqr_bufferSize(ctx_.solver, r, c, c, a, r, tau_.f(), &lwork_q),
                  "orgqr_bufferSize"));
    const size_t need = size_t(std::max(lwork_qr, lwork_q)) * 4;
    LASERD_RETURN_IF_ERROR(Work(need));
    LASERD_RETURN_IF_ERROR(
        SolverErr(cusolverDnSgeqrf(ctx_.solver, r, c, a, r, tau_.f(), work_.f(), int(need / 4),
                                   static_cast<int*>(info_.get())),
                  "cusolverDnSgeqrf"));
    LASERD_RETURN_IF_ERROR(CheckInfo("geqrf"));
    LASERD_RETURN_IF_ERROR(
        SolverErr(cusolverDnSorgqr(ctx_.solver, r, c, c, a, r, tau_.f(), work_.f(), int(need / 4),
                                   static_cast<int*>(info_.get())),
                  "cusolverDnSorgqr"));
    return CheckInfo("orgqr");
  }

  // Dense SVD of the tall column-major x [r, c] (r >= c, ld r; destroyed):
  // x = P Σ Rᵀ, s [c] descending, p [r, c] (ld r), rr [c, c] (ld c).
  absl::Status TallSvd(GpuSolver solver, float* x, int64_t r, int64_t c, float* s, float* p,
                       float* rr) {
    size_t dev_bytes = 0, host_bytes = 0;
    switch (solver) {
      case GpuSolver::kGesvd: {
        Buf vt(ctx_.stream);
        LASERD_RETURN_IF_ERROR(vt.Alloc(size_t(c) * c * 4, "VT"));
        LASERD_RETURN_IF_ERROR(
            SolverErr(cusolverDnXgesvd_bufferSize(ctx_.solver, params_, 'S', 'S', r, c, CUDA_R_32F,
                                                  x, r, CUDA_R_32F, s, CUDA_R_32F, p, r, CUDA_R_32F,
                                                  vt.f(), c, CUDA_R_32F, &dev_bytes, &host_bytes),
                      "Xgesvd_bufferSize"));
        LASERD_RETURN_IF_ERROR(Work(dev_bytes));
        host_work_.resize(std::max<size_t>(host_bytes, 1));
        LASERD_RETURN_IF_ERROR(
            SolverErr(cusolverDnXgesvd(ctx_.solver, params_, 'S', 'S', r, c, CUDA_R_32F, x, r,
                                       CUDA_R_32F, s, CUDA_R_32F, p, r, CUDA_R_32F, vt.f(), c,
                                       CUDA_R_32F, work_.get(), dev_bytes, host_work_.data(),
                                       host_bytes, static_cast<int*>(info_.get())),
                      "cusolverDnXgesvd"));
        LASERD_RETURN_IF_ERROR(CheckInfo("Xgesvd"));
        return Transpose(c, c, vt.f(), c, rr, c);
      }
      case GpuSolver::kGesvdp: {
        LASERD_RETURN_IF_ERROR(SolverErr(
            cusolverDnXgesvdp_bufferSize(ctx_.solver, params_, CUSOLVER_EIG_MODE_VECTOR, 1, r, c,
                                         CUDA_R_32F, x, r, CUDA_R_32F, s, CUDA_R_32F, p, r,
                                         CUDA_R_32F, rr, c, CUDA_R_32F, &dev_bytes, &host_bytes),
            "Xgesvdp_bufferSize"));
        LASERD_RETURN_IF_ERROR(Work(dev_bytes));
        host_work_.resize(std::max<size_t>(host_bytes, 1));
        double err_sigma = 0.0;
        LASERD_RETURN_IF_ERROR(SolverErr(
            cusolverDnXgesvdp(ctx_.solver, params_, CUSOLVER_EIG_MODE_VECTOR, 1, r, c, CUDA_R_32F,
                              x, r, CUDA_R_32F, s, CUDA_R_32F, p, r, CUDA_R_32F, rr, c, CUDA_R_32F,
                              work_.get(), dev_bytes, host_work_.data(), host_bytes,
                              static_cast<int*>(info_.get()), &err_sigma),
            "cusolverDnXgesvdp"));
        LASERD_RETURN_IF_ERROR(CheckInfo("Xgesvdp"));
        if (!(err_sigma <= kGesvdpErrorToLog)) {
          spdlog::warn("gpu svd: gesvdp reports error {:.3g} on a {}x{} matrix", err_sigma, r, c);
        }
        return absl::OkStatus();
      }
      case GpuSolver::kGram: {
        Buf g(ctx_.stream), w(ctx_.stream);
        LASERD_RETURN_IF_ERROR(g.Alloc(size_t(c) * c * 4, "Gram"));
        LASERD_RETURN_IF_ERROR(w.Alloc(size_t(c) * 4, "eigenvalues"));
        const float one = 1.0f, zero = 0.0f;
        // G = XᵀX (lower triangle).
        LASERD_RETURN_IF_ERROR(
            BlasErr(cublasSsyrk(ctx_.blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, int(c), int(r),
                                &one, x, int(r), &zero, g.f(), int(c)),
                    "cublasSsyrk"));
        LASERD_RETURN_IF_ERROR(SolverErr(
            cusolverDnXsyevd_bufferSize(ctx_.solver, params_, CUSOLVER_EIG_MODE_VECTOR,
                                        CUBLAS_FILL_MODE_LOWER, c, CUDA_R_32F, g.f(), c, CUDA_R_32F,
                                        w.f(), CUDA_R_32F, &dev_bytes, &host_bytes),
            "Xsyevd_bufferSize"));
        LASERD_RETURN_IF_ERROR(Work(dev_bytes));
        host_work_.resize(std::max<size_t>(host_bytes, 1));
        LASERD_RETURN_IF_ERROR(
            SolverErr(cusolverDnXsyevd(ctx_.solver, params_, CUSOLVER_EIG_MODE_VECTOR,
                                       CUBLAS_FILL_MODE_LOWER, c, CUDA_R_32F, g.f(), c, CUDA_R_32F,
                                       w.f(), CUDA_R_32F, work_.get(), dev_bytes, host_work_.data(),
                                       host_bytes, static_cast<int*>(info_.get())),
                      "cusolverDnXsyevd"));
        LASERD_RETURN_IF_ERROR(CheckInfo("Xsyevd"));
        // Descending σ and R; P = X R Σ⁻¹.
        LASERD_RETURN_IF_ERROR(CudaErr(
            cuda::LaunchGramSpectrum(w.f(), g.f(), c, s, rr, ctx_.stream), "Gram spectrum"));
        LASERD_RETURN_IF_ERROR(Gemm(CUBLAS_OP_N, CUBLAS_OP_N, r, c, c, 1.0f, x, r, 0, rr, c, 0,
                                    0.0f, p, r, 0, 1, false));
        return CudaErr(cuda::LaunchDivideColumns(p, r, c, s, ctx_.stream), "Gram left vectors");
      }
    }
    return absl::InvalidArgumentError("unknown gpu solver");
  }

 private:
  absl::Status Work(size_t bytes) {
    if (bytes <= work_bytes_) return absl::OkStatus();
    LASERD_RETURN_IF_ERROR(work_.Alloc(bytes, "solver workspace"));
    work_bytes_ = bytes;
    return absl::OkStatus();
  }
  // Waits for the stream; a non-zero LAPACK-style info is an error.
  absl::Status CheckInfo(const char* what) {
    int info = 0;
    LASERD_RETURN_IF_ERROR(CudaErr(
        cudaMemcpyAsync(&info, info_.get(), sizeof(int), cudaMemcpyDeviceToHost, ctx_.stream),
        "info copy"));
    LASERD_RETURN_IF_ERROR(CudaErr(cudaStreamSynchronize(ctx_.stream), "cudaStreamSynchronize"));
    if (info != 0) {
      return absl::InternalError(absl::StrCat("gpu svd: ", what, " failed: info ", info));
    }
    return absl::OkStatus();
  }

  const CudaContext& ctx_;
  cusolverDnParams_t params_ = nullptr;
  Buf info_, tau_, work_;
  size_t tau_bytes_ = 0, work_bytes_ = 0;
  std::vector<char> host_work_;
};

cuda::ElemType Elem(DType t) {
  return t == DType::kBF16  ? cuda::ElemType::kBF16
         : t == DType::kF16 ? cuda::ElemType::kF16
                            : cuda::ElemType::kF32;
}

absl::Status Download(const float* d, int64_t count, std::vector<float>* out, cudaStream_t st) {
  out->resize(count);
  if (count == 0) return absl::OkStatus();
  return CudaErr(cudaMemcpyAsync(out->data(), d, count * sizeof(float), cudaMemcpyDeviceToHost, st),
                 "download");
}

}  // namespace

absl::Status CudaDecompose(const CudaContext& ctx, const std::vector<const Tensor*>& ws,
                           const SvdPlan& plan, const float* omega,
                           const std::vector<int64_t>& error_ranks,
                           std::vector<BackendSvd>* result) {
  const int B = static_cast<int>(ws.size());
  std::vector<BackendSvd>& out = *result;
  out.assign(B, BackendSvd{});
  if (B == 0) return absl::OkStatus();
  const int64_t m = plan.m, n = plan.n, k = plan.k;
  const int64_t mn = std::min(m, n);
  for (const Tensor* w : ws) {
    if (w->rows() != m || w->cols() != n) {
      return absl::InvalidArgumentError(absl::StrCat("gpu svd: a ", w->rows(), "x", w->cols(),
                                                     " matrix in a group planned for ", m, "x", n));
    }
  }
  if (n * m > (int64_t{1} << 31) - 1 || k < 1 || k > mn ||
      (plan.randomized() && (plan.l < k || plan.l > mn || omega == nullptr))) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu svd: unsupported sizes m ", m, " n ", n, " k ", k, " l ", plan.l));
  }
  // SvdPlan::interrupt: OK when there is none.
  auto interrupted = [&plan]() -> absl::Status {
    return plan.interrupt ? plan.interrupt() : absl::OkStatus();
  };
  LASERD_RETURN_IF_ERROR(interrupted());
  const cudaStream_t st = ctx.stream;
  // On every return (errors included) the stream is drained after the
  // buffers' frees are enqueued, so no copy into `out` is still in flight.
  struct Drain {
    cudaStream_t stream;
    ~Drain() { cudaStreamSynchronize(stream); }
  } drain{st};
  Solver sv(ctx);
  LASERD_RETURN_IF_ERROR(sv.Init());

  // fp32 working copies A_b = W_bᵀ (column-major [n, m]) and ‖W_b‖².
  const int64_t mnz = m * n;
  Buf a(st), sums(st);
  LASERD_RETURN_IF_ERROR(a.Alloc(size_t(B) * mnz * 4, "working copies"));
  LASERD_RETURN_IF_ERROR(sums.Alloc(size_t(B) * sizeof(double), "norms"));
  for (int b = 0; b < B; ++b) {
    const Tensor* w = ws[b];
    LASERD_RETURN_IF_ERROR(CudaErr(cuda::LaunchConvert(w->raw(), Elem(w->dtype()), a.f() + b * mnz,
                                                       cuda::ElemType::kF32, mnz, st),
                                   "working copy"));
    LASERD_RETURN_IF_ERROR(CudaErr(
        cuda::LaunchSumSquares(a.f() + b * mnz, mnz, static_cast<double*>(sums.get()) + b, st),
        "sum of squares"));
  }
  std::vector<double> frob(B);
  LASERD_RETURN_IF_ERROR(CudaErr(
      cudaMemcpyAsync(frob.data(), sums.get(), B * sizeof(double), cudaMemcpyDeviceToHost, st),
      "norm copy"));
  LASERD_RETURN_IF_ERROR(CudaErr(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
  for (int b = 0; b < B; ++b) {
    TruncatedSvd& t = out[b].svd;
    t.m = m;
    t.n = n;
    t.k = k;
    t.frobenius_sq = frob[b];
    t.method = plan.method;
  }
  Buf ut(st), vt(st);  // column-major Uᵀ [k, m], Vᵀ [k, n] of the current matrix
  LASERD_RETURN_IF_ERROR(ut.Alloc(size_t(k) * m * 4, "U"));
  LASERD_RETURN_IF_ERROR(vt.Alloc(size_t(k) * n * 4, "V"));

  if (!plan.randomized()) {
    // The tall one of A = Wᵀ [n, m] and W [m, n].
    const bool a_tall = n >= m;
    const int64_t r = a_tall ? n : m, c = mn;
    Buf x(st), s(st), p(st), rr(st);
    LASERD_RETURN_IF_ERROR(s.Alloc(size_t(c) * 4, "S"));
    LASERD_RETURN_IF_ERROR(p.Alloc(size_t(r) * c * 4, "P"));
    LASERD_RETURN_IF_ERROR(rr.Alloc(size_t(c) * c * 4, "R"));
    if (!a_tall) LASERD_RETURN_IF_ERROR(x.Alloc(size_t(m) * n * 4, "transpose"));
    for (int b = 0; b < B; ++b) {
      if (b > 0) LASERD_RETURN_IF_ERROR(interrupted());
      float* ab = a.f() + b * mnz;
      float* xb = ab;
      if (!a_tall) {
        LASERD_RETURN_IF_ERROR(sv.Transpose(m, n, ab, n, x.f(), m));  // W column-major [m, n]
        xb = x.f();
      }
      LASERD_RETURN_IF_ERROR(sv.TallSvd(plan.gpu_solver, xb, r, c, s.f(), p.f(), rr.f()));
      // A = P Σ Rᵀ ⇒ W = R Σ Pᵀ (U = R, V = P); W = P Σ Rᵀ (U = P, V = R).
      const float* u_src = a_tall ? rr.f() : p.f();
      const int64_t u_ld = a_tall ? c : r;
      const float* v_src = a_tall ? p.f() : rr.f();
      const int64_t v_ld = a_tall ? r : c;
      LASERD_RETURN_IF_ERROR(sv.Transpose(k, m, u_src, u_ld, ut.f(), k));
      LASERD_RETURN_IF_ERROR(sv.Transpose(k, n, v_src, v_ld, vt.f(), k));
      TruncatedSvd& t = out[b].svd;
      LASERD_RETURN_IF_ERROR(Download(s.f(), c, &t.spectrum, st));
      LASERD_RETURN_IF_ERROR(Download(ut.f(), k * m, &t.u, st));
      LASERD_RETURN_IF_ERROR(Download(vt.f(), k * n, &t.v, st));
      LASERD_RETURN_IF_ERROR(CudaErr(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
      t.s.assign(t.spectrum.begin(), t.spectrum.begin() + k);
    }
    return absl::OkStatus();
  }

  // Randomized.
  const int64_t l = plan.l;
  Buf y(st), z(st);
  LASERD_RETURN_IF_ERROR(y.Alloc(size_t(B) * m * l * 4, "Y"));
  LASERD_RETURN_IF_ERROR(z.Alloc(size_t(B) * n * l * 4, "Z"));
  const bool tf = plan.gpu_tf32_sketch;
  // Y = W Ω: (Aᵀ)[m, n] · Ω[n, l].
  LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_T, CUBLAS_OP_N, m, l, n, 1.0f, a.f(), n, mnz, omega, n,
                                 0, 0.0f, y.f(), m, m * l, B, tf));
  for (int b = 0; b < B; ++b) LASERD_RETURN_IF_ERROR(sv.Orthonormalize(y.f() + b * m * l, m, l));
  for (int it = 0; it < plan.q; ++it) {
    LASERD_RETURN_IF_ERROR(interrupted());
    // Z = Wᵀ Q = A[n, m] · Q[m, l].
    LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_N, CUBLAS_OP_N, n, l, m, 1.0f, a.f(), n, mnz, y.f(), m,
                                   m * l, 0.0f, z.f(), n, n * l, B, tf));
    for (int b = 0; b < B; ++b) LASERD_RETURN_IF_ERROR(sv.Orthonormalize(z.f() + b * n * l, n, l));
    // Y = W Z.
    LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_T, CUBLAS_OP_N, m, l, n, 1.0f, a.f(), n, mnz, z.f(), n,
                                   n * l, 0.0f, y.f(), m, m * l, B, tf));
    for (int b = 0; b < B; ++b) LASERD_RETURN_IF_ERROR(sv.Orthonormalize(y.f() + b * m * l, m, l));
  }
  // Bᵀ = Wᵀ Q [n, l], fp32 always.
  LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_N, CUBLAS_OP_N, n, l, m, 1.0f, a.f(), n, mnz, y.f(), m,
                                 m * l, 0.0f, z.f(), n, n * l, B, false));
  Buf s(st), p(st), rr(st), rs(st), us(st), res(st);
  LASERD_RETURN_IF_ERROR(s.Alloc(size_t(l) * 4, "S"));
  LASERD_RETURN_IF_ERROR(p.Alloc(size_t(n) * l * 4, "P"));
  LASERD_RETURN_IF_ERROR(rr.Alloc(size_t(l) * l * 4, "R"));
  LASERD_RETURN_IF_ERROR(rs.Alloc(size_t(l) * k * 4, "R scaled"));
  LASERD_RETURN_IF_ERROR(us.Alloc(size_t(k) * m * 4, "U Sigma"));
  LASERD_RETURN_IF_ERROR(res.Alloc(sizeof(double), "residual"));
  // Error ranks in ascending order.
  std::vector<size_t> order(error_ranks.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t w) { return error_ranks[x] < error_ranks[w]; });
  for (int b = 0; b < B; ++b) {
    if (b > 0) LASERD_RETURN_IF_ERROR(interrupted());
    float* qb = y.f() + b * m * l;
    LASERD_RETURN_IF_ERROR(
        sv.TallSvd(plan.gpu_solver, z.f() + b * n * l, n, l, s.f(), p.f(), rr.f()));
    // Uᵀ [k, m] = R[:, :k]ᵀ Qᵀ; Vᵀ [k, n] = P[:, :k]ᵀ.
    LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_T, CUBLAS_OP_T, k, m, l, 1.0f, rr.f(), l, 0, qb, m, 0,
                                   0.0f, ut.f(), k, 0, 1, false));
    LASERD_RETURN_IF_ERROR(sv.Transpose(k, n, p.f(), n, vt.f(), k));
    TruncatedSvd& t = out[b].svd;
    LASERD_RETURN_IF_ERROR(Download(s.f(), k, &t.s, st));
    LASERD_RETURN_IF_ERROR(Download(ut.f(), k * m, &t.u, st));
    LASERD_RETURN_IF_ERROR(Download(vt.f(), k * n, &t.v, st));
    // Truncation errors: the residual A ← A − V_k Σ_k U_kᵀ, prefixes in
    // ascending order, ‖A‖² in double after each (as TruncationErrors).
    std::vector<double>& errs = out[b].errors;
    errs.assign(error_ranks.size(), 0.0);
    const double norm = std::sqrt(frob[b]);
    if (!order.empty() && norm > 0.0) {
      // (UΣ)ᵀ [k, m] = (R[:, :k] diag(s))ᵀ Qᵀ.
      LASERD_RETURN_IF_ERROR(
          CudaErr(cudaMemcpyAsync(rs.f(), rr.f(), size_t(l) * k * 4, cudaMemcpyDeviceToDevice, st),
                  "R copy"));
      LASERD_RETURN_IF_ERROR(
          CudaErr(cuda::LaunchScaleColumns(rs.f(), l, k, l, s.f(), st), "scale"));
      LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_T, CUBLAS_OP_T, k, m, l, 1.0f, rs.f(), l, 0, qb, m,
                                     0, 0.0f, us.f(), k, 0, 1, false));
      float* ab = a.f() + b * mnz;
      int64_t done = 0;
      double res_sq = frob[b];
      for (size_t j : order) {
        const int64_t kk = error_ranks[j];
        if (kk > done) {
          // A[n, m] −= (Vᵀ[done:kk, :])ᵀ · (UΣ)ᵀ[done:kk, :].
          LASERD_RETURN_IF_ERROR(sv.Gemm(CUBLAS_OP_T, CUBLAS_OP_N, n, m, kk - done, -1.0f,
                                         vt.f() + done, k, 0, us.f() + done, k, 0, 1.0f, ab, n, 0,
                                         1, false));
          LASERD_RETURN_IF_ERROR(CudaErr(
              cuda::LaunchSumSquares(ab, mnz, static_cast<double*>(res.get()), st), "residual"));
          LASERD_RETURN_IF_ERROR(CudaErr(
              cudaMemcpyAsync(&res_sq, res.get(), sizeof(double), cudaMemcpyDeviceToHost, st),
              "residual copy"));
          LASERD_RETURN_IF_ERROR(CudaErr(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
          done = kk;
        }
        errs[j] = std::sqrt(res_sq) / norm;
      }
    }
    LASERD_RETURN_IF_ERROR(CudaErr(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
  }
  return absl::OkStatus();
}

}  // namespace laserd::kernels
