// The CudaBackend class: the CUDA implementation of kernels::Backend, internal
// to kernels/cuda (callers use MakeCudaBackend, kernels/cuda/cuda_backend.h).
// Its members are defined by concept in cuda_backend.cc (construction, memory
// and transfers), cuda_backend_gemm.cc (Linear, MatMul), cuda_backend_ops.cc
// (norms, RoPE, attention, elementwise, gather, scoring) and
// cuda_backend_decompose.cc (Decompose); cuda_backend_factory.cc constructs it.
//
// CUDA implementation of the op interface. Tensors are device buffers
// allocated in stream order from the device's memory pool (cudaMallocAsync;
// the pool keeps freed memory for reuse up to a release threshold, so a
// forward's activations cost no cudaMalloc/cudaFree) and freed in stream
// order by the shared_ptr's deleter: fp32, except resident matrices (FromHost
// with more than one row), which are stored in the backend's dtype (fp32, bf16
// or fp16). All work is enqueued on one stream owned by the backend and only
// ToHost, ScoreRows and Decompose wait for it. Every op holds the backend's
// mutex and sets the backend's device for its duration (restoring the
// caller's), so any thread may call any op (kernels/ops.h, "Threads"). GEMMs go through
// cublasGemmEx with CUBLAS_COMPUTE_32F (fp32 accumulation; bf16/fp16 operands
// run on tensor cores, an fp32 activation operand is converted to the weight's
// type first); the elementwise and row-wise ops are the kernels of
// cuda_kernels.cu and take fp32. Semantics mirror cpu_backend.cc.
//
// The interface returns no status, so a failing CUDA/cuBLAS call or a shape
// that does not fit (a programming error) logs a precise message and aborts
// rather than continuing on corrupt device state.
#ifndef LASERD_KERNELS_CUDA_CUDA_BACKEND_IMPL_H_
#define LASERD_KERNELS_CUDA_CUDA_BACKEND_IMPL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels::detail {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaContext& ctx);
  ~CudaBackend() override;

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return "cuda"; }
  void BindThread() override { CheckCuda(cudaSetDevice(device_), "cudaSetDevice(BindThread)"); }
  const CudaContext& context() const { return ctx_; }

  // Memory and transfers (cuda_backend.cc).
  Tensor Empty(int64_t rows, int64_t cols) override;
  Tensor FromHost(const float* data, int64_t rows, int64_t cols) override;
  void ToHost(const Tensor& t, float* out) override;
  void Copy(const Tensor& src, Tensor* dst) override;

  // GEMMs (cuda_backend_gemm.cc).
  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
              bool accumulate) override;
  void MatMul(const Tensor& x, const Tensor& a, Tensor* y) override;

  // Row-wise, attention and elementwise ops (cuda_backend_ops.cc).
  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) override;
  void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor* y) override;
  void Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
            const std::vector<float>& inv_freq, RopeStyle style, float attention_factor) override;
  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                 int heads, int kv_heads, int head_dim, const AttentionParams& p,
                 Tensor* out) override;
  void AttentionRows(const Tensor& q, const Tensor& k, const Tensor& v,
                     const std::vector<int64_t>& key_offsets, const std::vector<int64_t>& keys,
                     int heads, int kv_heads, int head_dim, const AttentionParams& p,
                     Tensor* out) override;
  void Activate(Tensor* x, Activation act) override;
  void GatedActivate(Tensor* gate, const Tensor& up, Activation act) override;
  void Add(const Tensor& x, Tensor* y) override;
  void Scale(Tensor* x, float s) override;
  void SoftCap(Tensor* x, float cap) override;
  void GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) override;
  std::vector<RowScore> ScoreRows(const Tensor& logits, const std::vector<int32_t>& gold) override;

  // Truncated SVDs (cuda_backend_decompose.cc).
  absl::Status Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                         const std::vector<int64_t>& error_ranks,
                         std::vector<BackendSvd>* out) override;

 private:
  // Holds the backend's mutex and its device for one op.
  class OpScope {
   public:
    explicit OpScope(CudaBackend* be) : lock_(be->mu_), device_(be->device_) {}

   private:
    std::lock_guard<std::mutex> lock_;
    DeviceScope device_;
  };

  // Helper of Decompose (cuda_backend_decompose.cc).
  // The sketch Ω of plan (column-major [n, l]: the first n·l values of the
  // stream of plan.seed) on the device. The stream of one seed is kept there
  // and uploaded again only for another seed or a longer prefix, so the
  // decompositions of a sweep upload it once.
  absl::StatusOr<const float*> DeviceSketch(const SvdPlan& plan);

  // Helper of Linear and MatMul (cuda_backend_gemm.cc).
  // Row-major C[n, m] = A[n, k] · op(B) + beta · C with fp32 C and fp32
  // accumulation, where B is [m, k] (b_transposed) or [k, m]. cuBLAS is
  // column-major, so this computes Cᵀ = op(B)ᵀ · Aᵀ by passing the operands
  // swapped. Both operands must have one type for cublasGemmEx: the GEMM runs
  // in B's (the weight's) type when either is reduced, and an operand of the
  // other type is converted into a scratch buffer first (the activation,
  // [n, k], normally).
  void GemmRowMajor(int64_t n, int64_t m, int64_t k, GemmOperand a, GemmOperand b,
                    bool b_transposed, float beta, float* c, int64_t ldc);

  // Helpers of the row-wise and attention ops (cuda_backend_ops.cc).
  void RequireRowOp(const Tensor& x, const Tensor& w, const Tensor& y, const char* op);
  // Uploads, for every row of every sequence of `layout`, its row index and
  // its position within the sequence; returns the count. The upload is kept:
  // the Rope and Attention of every layer of a forward pass the same layout,
  // which is then uploaded once. A prefix-tree layout is refused (this
  // backend's SupportsPrefixTree() is false) unless `allow_tree` (Rope, which
  // reads only each row's position: row r at layout.position[r]).
  int64_t UploadLayout(const SeqLayout& layout, int64_t rows, const char* op,
                       bool allow_tree = false);
  // inv_freq[:half] on the device, uploaded when it differs from the last.
  const float* UploadFrequencies(const std::vector<float>& inv_freq, int half);
  const int32_t* RowIds() const { return layout_dev_; }
  const int32_t* Positions(int64_t count) const { return layout_dev_ + count; }

  // An uninitialized tensor of type `dt` (cuda_backend.cc).
  Tensor EmptyOf(int64_t rows, int64_t cols, DType dt);

  CudaContext ctx_;
  int device_;
  cudaStream_t stream_;
  cublasHandle_t blas_;
  DType storage_;
  std::shared_ptr<StreamState> state_;
  std::mutex mu_;  // held by every op (OpScope)
  Scratch layout_scratch_, freq_scratch_, aux_scratch_, result_scratch_;
  Scratch keys_scratch_;  // AttentionRows: key_offsets then keys
  Scratch convert_scratch_, yconv_scratch_, aconv_scratch_, bconv_scratch_;
  // The layout and frequencies last uploaded.
  std::vector<int32_t> host_layout_;
  std::vector<int64_t> layout_offsets_, layout_lengths_;
  const int32_t* layout_dev_ = nullptr;
  std::vector<float> freq_host_;
  const float* freq_dev_ = nullptr;
  // The sketch stream of omega_seed_ on the device (DeviceSketch).
  float* omega_ = nullptr;
  uint64_t omega_seed_ = 0;
  int64_t omega_count_ = 0;
};

}  // namespace laserd::kernels::detail

#endif  // LASERD_KERNELS_CUDA_CUDA_BACKEND_IMPL_H_
