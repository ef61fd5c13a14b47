// CUDA implementation of the op interface. Tensors are device buffers
// (cudaMalloc, freed by the shared_ptr's deleter): fp32, except resident
// matrices (FromHost with more than one row), which are stored in the
// backend's dtype (fp32, bf16 or fp16). All work is enqueued on one stream
// owned by the backend and only ToHost/ScoreRows wait for it. GEMMs go through
// cublasGemmEx with CUBLAS_COMPUTE_32F (fp32 accumulation; bf16/fp16 operands
// run on tensor cores, an fp32 activation operand is converted to the weight's
// type first); the elementwise and row-wise ops are the kernels of
// cuda_kernels.cu and take fp32. Semantics mirror cpu_backend.cc.
//
// The interface returns no status, so a failing CUDA/cuBLAS call or a shape
// that does not fit (a programming error) logs a precise message and aborts
// rather than continuing on corrupt device state.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels {
namespace {

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

// One GEMM operand in row-major layout: `data` of element type `type` with
// leading dimension `ld`.
struct GemmOperand {
  const void* data;
  DType type;
  int64_t ld;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const CudaContext& ctx)
      : ctx_(ctx), device_(ctx.device), stream_(ctx.stream), blas_(ctx.blas), storage_(ctx.dtype) {}
  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cusolverDnDestroy(ctx_.solver);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return "cuda"; }
  void BindThread() override { CheckCuda(cudaSetDevice(device_), "cudaSetDevice(BindThread)"); }
  const CudaContext& context() const { return ctx_; }

  Tensor Empty(int64_t rows, int64_t cols) override { return EmptyOf(rows, cols, DType::kF32); }

  Tensor FromHost(const float* data, int64_t rows, int64_t cols) override {
    // Resident matrices take the storage type; vectors ([1, n]: norms,
    // biases) stay fp32.
    const DType dt = rows > 1 ? storage_ : DType::kF32;
    Tensor t = EmptyOf(rows, cols, dt);
    if (t.size() == 0) return t;
    if (dt == DType::kF32) {
      CheckCuda(cudaMemcpyAsync(t.data(), data, t.size() * sizeof(float), cudaMemcpyHostToDevice,
                                stream_),
                "cudaMemcpyAsync(FromHost)");
      return t;
    }
    // Upload in slices through an fp32 staging buffer, converting each.
    constexpr int64_t kSlice = int64_t{1} << 24;  // 64 MiB of fp32
    for (int64_t off = 0; off < t.size(); off += kSlice) {
      const int64_t len = std::min(kSlice, t.size() - off);
      void* stage = staging_.Upload(data + off, len * sizeof(float), stream_);
      CheckCuda(cuda::LaunchConvert(stage, cuda::ElemType::kF32,
                                    static_cast<char*>(t.raw()) + off * DTypeBytes(dt), Elem(dt),
                                    len, stream_),
                "FromHost conversion");
    }
    // The staging buffer is reused by the next upload: wait for this one.
    CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(FromHost)");
    return t;
  }

  void ToHost(const Tensor& t, float* out) override {
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
      CheckCuda(
          cudaMemcpyAsync(out, src, t.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync(ToHost)");
    }
    CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(ToHost)");
  }

  void Copy(const Tensor& src, Tensor* dst) override {
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

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
              bool accumulate) override {
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
      Require(bias->size() >= m, "Linear",
              absl::StrCat("bias ", Shape(*bias), " for w ", Shape(w)));
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
      CheckCuda(cuda::LaunchConvert(out, cuda::ElemType::kF32, y->raw(), Elem(y->dtype()), n * m,
                                    stream_),
                "Linear output conversion");
    }
  }

  void MatMul(const Tensor& x, const Tensor& a, Tensor* y) override {
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

  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) override {
    if (x.rows() == 0) return;
    RequireRowOp(x, w, *y, "RmsNorm");
    CheckCuda(cuda::LaunchRmsNorm(x.data(), w.data(), eps, x.rows(), x.cols(), y->data(), stream_),
              "RmsNorm");
  }

  void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor* y) override {
    if (x.rows() == 0) return;
    RequireRowOp(x, w, *y, "LayerNorm");
    if (b != nullptr) {
      RequireDevice(*b, "LayerNorm", "b");
      RequireF32(*b, "LayerNorm", "b");
      Require(b->size() >= x.cols(), "LayerNorm",
              absl::StrCat("b ", Shape(*b), " for x ", Shape(x)));
    }
    CheckCuda(cuda::LaunchLayerNorm(x.data(), w.data(), b ? b->data() : nullptr, eps, x.rows(),
                                    x.cols(), y->data(), stream_),
              "LayerNorm");
  }

  void Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
            const std::vector<float>& inv_freq, RopeStyle style) override {
    RequireDevice(*x, "Rope", "x");
    RequireF32(*x, "Rope", "x");
    Require(rotary_dim >= 0 && rotary_dim <= head_dim && inv_freq.size() >= size_t(rotary_dim / 2),
            "Rope",
            absl::StrCat("rotary_dim ", rotary_dim, " head_dim ", head_dim, " inv_freq size ",
                         inv_freq.size()));
    Require(int64_t{heads} * head_dim <= x->cols(), "Rope",
            absl::StrCat(heads, " heads of ", head_dim, " exceed x ", Shape(*x)));
    const int64_t count = UploadLayout(layout, x->rows(), "Rope");
    const float* freq = static_cast<const float*>(
        freq_scratch_.Upload(inv_freq.data(), (rotary_dim / 2) * sizeof(float), stream_));
    CheckCuda(cuda::LaunchRope(x->data(), x->cols(), RowIds(), Positions(count), count, heads,
                               head_dim, rotary_dim, freq, style == RopeStyle::kNeox, stream_),
              "Rope");
  }

  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                 int heads, int kv_heads, int head_dim, float scale, Tensor* out) override {
    RequireDevice(q, "Attention", "q");
    RequireDevice(k, "Attention", "k");
    RequireDevice(v, "Attention", "v");
    RequireDevice(*out, "Attention", "out");
    for (const Tensor* t : {&q, &k, &v, static_cast<const Tensor*>(out)}) {
      RequireF32(*t, "Attention", "an operand");
    }
    Require(heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && head_dim > 0, "Attention",
            absl::StrCat("heads ", heads, " kv_heads ", kv_heads, " head_dim ", head_dim));
    Require(int64_t{heads} * head_dim <= q.cols() && int64_t{heads} * head_dim <= out->cols() &&
                int64_t{kv_heads} * head_dim <= k.cols() &&
                int64_t{kv_heads} * head_dim <= v.cols(),
            "Attention",
            absl::StrCat("q ", Shape(q), " k ", Shape(k), " v ", Shape(v), " out ", Shape(*out),
                         " for ", heads, "/", kv_heads, " heads of ", head_dim));
    const int64_t rows = std::min({q.rows(), k.rows(), v.rows(), out->rows()});
    const int64_t count = UploadLayout(layout, rows, "Attention");
    CheckCuda(cuda::LaunchAttention(q.data(), q.cols(), k.data(), k.cols(), v.data(), v.cols(),
                                    RowIds(), Positions(count), count, heads, kv_heads, head_dim,
                                    scale, out->data(), out->cols(), stream_),
              "Attention");
  }

  void Activate(Tensor* x, Activation act) override {
    if (x->size() == 0) return;
    RequireDevice(*x, "Activate", "x");
    RequireF32(*x, "Activate", "x");
    CheckCuda(cuda::LaunchActivate(x->data(), x->size(), ToActKind(act), stream_), "Activate");
  }

  void GatedActivate(Tensor* gate, const Tensor& up, Activation act) override {
    if (gate->size() == 0) return;
    RequireDevice(*gate, "GatedActivate", "gate");
    RequireDevice(up, "GatedActivate", "up");
    RequireF32(*gate, "GatedActivate", "gate");
    RequireF32(up, "GatedActivate", "up");
    Require(up.size() >= gate->size(), "GatedActivate",
            absl::StrCat("up ", Shape(up), " for gate ", Shape(*gate)));
    CheckCuda(
        cuda::LaunchGatedActivate(gate->data(), up.data(), gate->size(), ToActKind(act), stream_),
        "GatedActivate");
  }

  void Add(const Tensor& x, Tensor* y) override {
    if (y->size() == 0) return;
    RequireDevice(x, "Add", "x");
    RequireDevice(*y, "Add", "y");
    RequireF32(x, "Add", "x");
    RequireF32(*y, "Add", "y");
    Require(x.size() >= y->size(), "Add", absl::StrCat("x ", Shape(x), " for y ", Shape(*y)));
    CheckCuda(cuda::LaunchAdd(x.data(), y->size(), y->data(), stream_), "Add");
  }

  void GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) override {
    if (ids.empty()) return;
    RequireDevice(table, "GatherRows", "table");
    RequireDevice(*out, "GatherRows", "out");
    RequireF32(*out, "GatherRows", "out");
    Require(
        out->cols() == table.cols() && out->rows() >= static_cast<int64_t>(ids.size()),
        "GatherRows",
        absl::StrCat("out ", Shape(*out), " for ", ids.size(), " rows of table ", Shape(table)));
    for (size_t i = 0; i < ids.size(); ++i) {
      Require(ids[i] >= 0 && ids[i] < table.rows(), "GatherRows",
              absl::StrCat("id ", ids[i], " at ", i, " outside table ", Shape(table)));
    }
    const auto* d_ids = static_cast<const int64_t*>(
        aux_scratch_.Upload(ids.data(), ids.size() * sizeof(int64_t), stream_));
    if (table.dtype() == DType::kF32) {
      CheckCuda(cuda::LaunchGatherRows(table.data(), table.cols(), d_ids,
                                       static_cast<int64_t>(ids.size()), out->data(), stream_),
                "GatherRows");
    } else {
      CheckCuda(cuda::LaunchGatherRowsTyped(table.raw(), Elem(table.dtype()), table.cols(), d_ids,
                                            static_cast<int64_t>(ids.size()), out->data(), stream_),
                "GatherRows");
    }
  }

  std::vector<RowScore> ScoreRows(const Tensor& logits, const std::vector<int32_t>& gold) override {
    const int64_t n = logits.rows(), vocab = logits.cols();
    std::vector<RowScore> res(n);
    if (n == 0) return res;
    RequireDevice(logits, "ScoreRows", "logits");
    RequireF32(logits, "ScoreRows", "logits");
    Require(static_cast<int64_t>(gold.size()) >= n && vocab > 0, "ScoreRows",
            absl::StrCat(gold.size(), " gold ids for logits ", Shape(logits)));
    for (int64_t i = 0; i < n; ++i) {
      Require(gold[i] >= 0 && gold[i] < vocab, "ScoreRows",
              absl::StrCat("gold id ", gold[i], " at row ", i, " outside vocab ", vocab));
    }
    const auto* d_gold =
        static_cast<const int32_t*>(aux_scratch_.Upload(gold.data(), n * sizeof(int32_t), stream_));
    auto* d_out = static_cast<cuda::DeviceRowScore*>(
        result_scratch_.Reserve(n * sizeof(cuda::DeviceRowScore)));
    CheckCuda(cuda::LaunchScoreRows(logits.data(), n, vocab, d_gold, d_out, stream_), "ScoreRows");
    std::vector<cuda::DeviceRowScore> host(n);
    CheckCuda(cudaMemcpyAsync(host.data(), d_out, n * sizeof(cuda::DeviceRowScore),
                              cudaMemcpyDeviceToHost, stream_),
              "cudaMemcpyAsync(ScoreRows)");
    CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(ScoreRows)");
    for (int64_t i = 0; i < n; ++i) {
      res[i].logprob = host[i].logprob;
      res[i].argmax = host[i].argmax;
      res[i].greater = host[i].greater;
    }
    return res;
  }

 private:
  // Row-major C[n, m] = A[n, k] · op(B) + beta · C with fp32 C and fp32
  // accumulation, where B is [m, k] (b_transposed) or [k, m]. cuBLAS is
  // column-major, so this computes Cᵀ = op(B)ᵀ · Aᵀ by passing the operands
  // swapped. Both operands must have one type for cublasGemmEx: the GEMM runs
  // in B's (the weight's) type when either is reduced, and an operand of the
  // other type is converted into a scratch buffer first (the activation,
  // [n, k], normally).
  void GemmRowMajor(int64_t n, int64_t m, int64_t k, GemmOperand a, GemmOperand b,
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
    CheckCublas(
        cublasGemmEx(blas_, b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, im, in, ik,
                     &alpha, b.data, CudaType(b.type), ldb, a.data, CudaType(a.type), lda, &beta, c,
                     CUDA_R_32F, ldcc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  }

  void RequireRowOp(const Tensor& x, const Tensor& w, const Tensor& y, const char* op) {
    RequireDevice(x, op, "x");
    RequireDevice(w, op, "w");
    RequireDevice(y, op, "y");
    RequireF32(x, op, "x");
    RequireF32(w, op, "w");
    RequireF32(y, op, "y");
    Require(w.size() >= x.cols() && y.rows() >= x.rows() && y.cols() == x.cols(), op,
            absl::StrCat("x ", Shape(x), " w ", Shape(w), " y ", Shape(y)));
  }

  // Uploads, for every row of every sequence of `layout`, its row index and
  // its position within the sequence (one copy per call); returns the count.
  int64_t UploadLayout(const SeqLayout& layout, int64_t rows, const char* op) {
    Require(layout.offsets.size() == layout.lengths.size(), op,
            absl::StrCat("layout has ", layout.offsets.size(), " offsets and ",
                         layout.lengths.size(), " lengths"));
    int64_t count = 0;
    for (size_t s = 0; s < layout.lengths.size(); ++s) {
      Require(layout.offsets[s] >= 0 && layout.lengths[s] >= 0 &&
                  layout.offsets[s] + layout.lengths[s] <= rows && rows <= INT_MAX,
              op,
              absl::StrCat("sequence ", s, " (offset ", layout.offsets[s], ", length ",
                           layout.lengths[s], ") outside ", rows, " rows"));
      count += layout.lengths[s];
    }
    host_layout_.resize(2 * count);
    int64_t e = 0;
    for (size_t s = 0; s < layout.lengths.size(); ++s) {
      for (int64_t p = 0; p < layout.lengths[s]; ++p, ++e) {
        host_layout_[e] = static_cast<int32_t>(layout.offsets[s] + p);
        host_layout_[count + e] = static_cast<int32_t>(p);
      }
    }
    layout_dev_ = static_cast<const int32_t*>(layout_scratch_.Upload(
        host_layout_.data(), host_layout_.size() * sizeof(int32_t), stream_));
    return count;
  }
  const int32_t* RowIds() const { return layout_dev_; }
  const int32_t* Positions(int64_t count) const { return layout_dev_ + count; }

  Tensor EmptyOf(int64_t rows, int64_t cols, DType dt) {
    Require(rows >= 0 && cols >= 0, "Empty", absl::StrCat("negative shape ", rows, "x", cols));
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(rows * cols, 1)) * DTypeBytes(dt);
    void* p = nullptr;
    CheckCuda(cudaMalloc(&p, bytes), absl::StrCat("cudaMalloc of ", bytes, " bytes").c_str());
    // cudaFree synchronizes the device, so no kernel still uses the buffer.
    // Errors are ignored: at process exit the runtime may already be gone.
    return Tensor(std::shared_ptr<float>(static_cast<float*>(p), [](float* q) { cudaFree(q); }),
                  rows, cols, DeviceKind::kCuda, dt);
  }

  CudaContext ctx_;
  int device_;
  cudaStream_t stream_;
  cublasHandle_t blas_;
  DType storage_;
  Scratch layout_scratch_, freq_scratch_, aux_scratch_, result_scratch_;
  Scratch staging_, convert_scratch_, yconv_scratch_, aconv_scratch_, bconv_scratch_;
  std::vector<int32_t> host_layout_;
  const int32_t* layout_dev_ = nullptr;
};

}  // namespace

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
  const auto* cuda = dynamic_cast<const CudaBackend*>(backend);
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
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("cudaSetDevice(", device, "): ", cudaGetErrorString(err)));
  }
  cudaStream_t stream = nullptr;
  err = cudaStreamCreate(&stream);
  if (err != cudaSuccess) {
    return absl::InternalError(absl::StrCat("cudaStreamCreate: ", cudaGetErrorString(err)));
  }
  cublasHandle_t blas = nullptr;
  const cublasStatus_t st = cublasCreate(&blas);
  if (st != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(stream);
    return absl::InternalError(absl::StrCat("cublasCreate: ", cublasGetStatusString(st)));
  }
  cublasSetStream(blas, stream);
  cusolverDnHandle_t solver = nullptr;
  const cusolverStatus_t sst = cusolverDnCreate(&solver);
  if (sst != CUSOLVER_STATUS_SUCCESS) {
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
    return absl::InternalError(absl::StrCat("cusolverDnCreate failed: status ", int(sst)));
  }
  cusolverDnSetStream(solver, stream);
  // The default math mode keeps CUBLAS_COMPUTE_32F GEMMs in plain fp32 (no
  // TF32), so results match the CPU backend to fp32 rounding.
  cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    spdlog::info("cuda backend on device {} ({}, {:.1f} GiB), resident matrices in {}", device,
                 prop.name, prop.totalGlobalMem / double(1 << 30), DTypeName(dtype));
  }
  CudaContext ctx;
  ctx.device = device;
  ctx.stream = stream;
  ctx.blas = blas;
  ctx.solver = solver;
  ctx.dtype = dtype;
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(ctx));
}

}  // namespace laserd::kernels
