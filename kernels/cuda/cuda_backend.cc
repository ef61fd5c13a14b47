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
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_svd.h"
#include "kernels/svd.h"

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

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaContext& ctx)
      : ctx_(ctx),
        device_(ctx.device),
        stream_(ctx.stream),
        blas_(ctx.blas),
        storage_(ctx.dtype),
        state_(std::make_shared<StreamState>()) {
    state_->device = device_;
    state_->stream = stream_;
  }
  ~CudaBackend() override {
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

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return "cuda"; }
  void BindThread() override { CheckCuda(cudaSetDevice(device_), "cudaSetDevice(BindThread)"); }
  const CudaContext& context() const { return ctx_; }

  Tensor Empty(int64_t rows, int64_t cols) override {
    OpScope op(this);
    return EmptyOf(rows, cols, DType::kF32);
  }

  Tensor FromHost(const float* data, int64_t rows, int64_t cols) override {
    OpScope op(this);
    // Resident matrices take the storage type; vectors ([1, n]: norms,
    // biases) stay fp32.
    const DType dt = rows > 1 ? storage_ : DType::kF32;
    Tensor t = EmptyOf(rows, cols, dt);
    if (t.size() == 0) return t;
    // An asynchronous copy from pageable memory returns once the source is
    // staged by the driver, so `data` may be released on return; no host wait.
    if (dt == DType::kF32) {
      CheckCuda(cudaMemcpyAsync(t.data(), data, t.size() * sizeof(float), cudaMemcpyHostToDevice,
                                stream_),
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
                                    static_cast<char*>(t.raw()) + off * DTypeBytes(dt), Elem(dt),
                                    len, stream_),
                "FromHost conversion");
      CheckCuda(cudaFreeAsync(stage, stream_), "cudaFreeAsync(FromHost staging)");
    }
    return t;
  }

  void ToHost(const Tensor& t, float* out) override {
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
      CheckCuda(
          cudaMemcpyAsync(out, src, t.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync(ToHost)");
    }
    CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize(ToHost)");
  }

  void Copy(const Tensor& src, Tensor* dst) override {
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

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
              bool accumulate) override {
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

  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) override {
    OpScope op(this);
    if (x.rows() == 0) return;
    RequireRowOp(x, w, *y, "RmsNorm");
    CheckCuda(cuda::LaunchRmsNorm(x.data(), w.data(), eps, x.rows(), x.cols(), y->data(), stream_),
              "RmsNorm");
  }

  void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor* y) override {
    OpScope op(this);
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
    OpScope op(this);
    RequireDevice(*x, "Rope", "x");
    RequireF32(*x, "Rope", "x");
    Require(rotary_dim >= 0 && rotary_dim <= head_dim && inv_freq.size() >= size_t(rotary_dim / 2),
            "Rope",
            absl::StrCat("rotary_dim ", rotary_dim, " head_dim ", head_dim, " inv_freq size ",
                         inv_freq.size()));
    Require(int64_t{heads} * head_dim <= x->cols(), "Rope",
            absl::StrCat(heads, " heads of ", head_dim, " exceed x ", Shape(*x)));
    const int64_t count = UploadLayout(layout, x->rows(), "Rope");
    const float* freq = UploadFrequencies(inv_freq, rotary_dim / 2);
    CheckCuda(cuda::LaunchRope(x->data(), x->cols(), RowIds(), Positions(count), count, heads,
                               head_dim, rotary_dim, freq, style == RopeStyle::kNeox, stream_),
              "Rope");
  }

  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                 int heads, int kv_heads, int head_dim, float scale, Tensor* out) override {
    OpScope op(this);
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
    OpScope op(this);
    if (x->size() == 0) return;
    RequireDevice(*x, "Activate", "x");
    RequireF32(*x, "Activate", "x");
    CheckCuda(cuda::LaunchActivate(x->data(), x->size(), ToActKind(act), stream_), "Activate");
  }

  void GatedActivate(Tensor* gate, const Tensor& up, Activation act) override {
    OpScope op(this);
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
    OpScope op(this);
    if (y->size() == 0) return;
    RequireDevice(x, "Add", "x");
    RequireDevice(*y, "Add", "y");
    RequireF32(x, "Add", "x");
    RequireF32(*y, "Add", "y");
    Require(x.size() >= y->size(), "Add", absl::StrCat("x ", Shape(x), " for y ", Shape(*y)));
    CheckCuda(cuda::LaunchAdd(x.data(), y->size(), y->data(), stream_), "Add");
  }

  void GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) override {
    OpScope op(this);
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
    OpScope op(this);
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

  absl::Status Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                         const std::vector<int64_t>& error_ranks,
                         std::vector<BackendSvd>* out) override {
    OpScope op(this);
    for (const Tensor* w : ws) {
      if (w == nullptr || w->empty() || w->device() != DeviceKind::kCuda) {
        return absl::InvalidArgumentError("gpu svd: a matrix is not a CUDA tensor");
      }
    }
    const float* omega = nullptr;
    if (plan.randomized() && !ws.empty()) {
      LASERD_ASSIGN_OR_RETURN(omega, DeviceSketch(plan));
    }
    return CudaDecompose(ctx_, ws, plan, omega, error_ranks, out);
  }

 private:
  // Holds the backend's mutex and its device for one op.
  class OpScope {
   public:
    explicit OpScope(CudaBackend* be) : lock_(be->mu_), device_(be->device_) {}

   private:
    std::lock_guard<std::mutex> lock_;
    DeviceScope device_;
  };

  // The sketch Ω of plan (column-major [n, l]: the first n·l values of the
  // stream of plan.seed) on the device. The stream of one seed is kept there
  // and uploaded again only for another seed or a longer prefix, so the
  // decompositions of a sweep upload it once.
  absl::StatusOr<const float*> DeviceSketch(const SvdPlan& plan) {
    const int64_t need = plan.n * plan.l;
    if (omega_ != nullptr && omega_seed_ == plan.seed && omega_count_ >= need) return omega_;
    if (plan.sketch == nullptr || static_cast<int64_t>(plan.sketch->size()) < need) {
      return absl::InvalidArgumentError(
          absl::StrCat("gpu svd: the plan carries no sketch of ", need, " values"));
    }
    const int64_t count = static_cast<int64_t>(plan.sketch->size());
    if (omega_ != nullptr) {
      // cudaFree waits for the device, so no queued GEMM still reads it.
      CheckCuda(cudaFree(omega_), "cudaFree(sketch)");
      omega_ = nullptr;
      omega_count_ = 0;
    }
    void* p = nullptr;
    if (cudaError_t e = cudaMalloc(&p, count * sizeof(float)); e != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(absl::StrCat("gpu svd: cudaMalloc of the ", count,
                                                       "-value sketch: ", cudaGetErrorString(e)));
    }
    omega_ = static_cast<float*>(p);
    CheckCuda(cudaMemcpyAsync(omega_, plan.sketch->data(), count * sizeof(float),
                              cudaMemcpyHostToDevice, stream_),
              "cudaMemcpyAsync(sketch)");
    omega_seed_ = plan.seed;
    omega_count_ = count;
    return omega_;
  }

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
  // its position within the sequence; returns the count. The upload is kept:
  // the Rope and Attention of every layer of a forward pass the same layout,
  // which is then uploaded once. A prefix-tree layout is refused (this
  // backend's SupportsPrefixTree() is false).
  int64_t UploadLayout(const SeqLayout& layout, int64_t rows, const char* op) {
    Require(!layout.is_tree(), op,
            "a prefix-tree SeqLayout was given to the CUDA backend, which supports packed "
            "sequences only (SupportsPrefixTree() is false)");
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
    if (layout_dev_ != nullptr && layout.offsets == layout_offsets_ &&
        layout.lengths == layout_lengths_) {
      return count;
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
    layout_offsets_ = layout.offsets;
    layout_lengths_ = layout.lengths;
    return count;
  }
  // inv_freq[:half] on the device, uploaded when it differs from the last.
  const float* UploadFrequencies(const std::vector<float>& inv_freq, int half) {
    if (freq_dev_ == nullptr || freq_host_.size() != size_t(half) ||
        !std::equal(freq_host_.begin(), freq_host_.end(), inv_freq.begin())) {
      freq_host_.assign(inv_freq.begin(), inv_freq.begin() + half);
      freq_dev_ = static_cast<const float*>(
          freq_scratch_.Upload(freq_host_.data(), half * sizeof(float), stream_));
    }
    return freq_dev_;
  }
  const int32_t* RowIds() const { return layout_dev_; }
  const int32_t* Positions(int64_t count) const { return layout_dev_ + count; }

  Tensor EmptyOf(int64_t rows, int64_t cols, DType dt) {
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

  CudaContext ctx_;
  int device_;
  cudaStream_t stream_;
  cublasHandle_t blas_;
  DType storage_;
  std::shared_ptr<StreamState> state_;
  std::mutex mu_;  // held by every op (OpScope)
  Scratch layout_scratch_, freq_scratch_, aux_scratch_, result_scratch_;
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
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(ctx));
}

}  // namespace laserd::kernels
