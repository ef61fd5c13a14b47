// The one op interface every architecture is written over. A Backend owns its
// memory (host for CPU, device for CUDA); Tensors are dense fp32 2-D row-major
// views handed out by a Backend. Kernels know nothing of models.
//
// Threads. A Backend may be called from several threads at once: an RPC
// thread reading a resident matrix (ToHost) while a worker thread runs a
// forward on the same backend is allowed. The CUDA backend serializes its
// ops (one mutex around each op's enqueue and host wait; the device is set at
// each op's entry and the caller's current device restored on return, so no
// BindThread is needed), so a ToHost is ordered after the work other threads
// enqueued before it; the CPU backend's ops keep no shared mutable state.
// Tensors may be released on any thread. What a concurrent reader sees is the
// caller's concern: reading a matrix while another thread edits it gives
// either version.
#ifndef LASERD_KERNELS_OPS_H_
#define LASERD_KERNELS_OPS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace laserd::kernels {

struct SvdPlan;     // kernels/svd_plan.h
struct BackendSvd;  // kernels/svd.h

enum class DeviceKind { kCpu, kCuda };

// Element type of a tensor's storage. Activations (Backend::Empty) are always
// fp32. A backend may keep resident matrices (Backend::FromHost with more than
// one row: weights, embeddings, intervention factors) in a reduced type; the
// CPU backend stores fp32 only, the CUDA backend bf16 or fp16 when asked
// (`--device cuda/bf16`, see ParseDeviceSpec). Reduced-type tensors are GEMM
// operands (fp32 accumulation), GatherRows tables, and Copy/ToHost sources
// and destinations (converted); every other op takes fp32 only.
enum class DType { kF32, kBF16, kF16 };
// "fp32" | "bf16" | "fp16".
inline const char* DTypeName(DType t) {
  return t == DType::kBF16 ? "bf16" : t == DType::kF16 ? "fp16" : "fp32";
}
// "fp32"/"f32"/"float32", "bf16"/"bfloat16", "fp16"/"f16"/"float16";
// INVALID_ARGUMENT otherwise.
absl::StatusOr<DType> ParseDType(const std::string& name);
inline int64_t DTypeBytes(DType t) { return t == DType::kF32 ? 4 : 2; }

// A dense row-major matrix living on one backend's device.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<float> storage, int64_t rows, int64_t cols, DeviceKind device,
         DType dtype = DType::kF32)
      : storage_(std::move(storage)), rows_(rows), cols_(cols), device_(device), dtype_(dtype) {}
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t size() const { return rows_ * cols_; }
  bool empty() const { return storage_ == nullptr; }
  DeviceKind device() const { return device_; }
  DType dtype() const { return dtype_; }
  // A view of the same storage as [rows, cols] (rows · cols == size()): the
  // heads of a [n, heads · head_dim] activation as [n · heads, head_dim] rows.
  Tensor Reshaped(int64_t rows, int64_t cols) const {
    return Tensor(storage_, rows, cols, device_, dtype_);
  }
  // A view of rows [begin, begin + count) (0 <= begin, begin + count <=
  // rows()), sharing the storage: ops writing it write those rows (a KV
  // cache's slots).
  Tensor RowRange(int64_t begin, int64_t count) const {
    char* base = static_cast<char*>(static_cast<void*>(storage_.get()));
    float* at = static_cast<float*>(static_cast<void*>(base + begin * cols_ * DTypeBytes(dtype_)));
    return Tensor(std::shared_ptr<float>(storage_, at), count, cols_, device_, dtype_);
  }
  // The fp32 elements; meaningful only when dtype() is kF32.
  float* data() { return storage_.get(); }
  const float* data() const { return storage_.get(); }
  // The storage of any dtype.
  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }

 private:
  std::shared_ptr<float> storage_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
  DType dtype_ = DType::kF32;
};

// A packed batch of independent sequences: sequence i occupies rows
// [offsets[i], offsets[i] + lengths[i]) of an activation matrix. Packing means
// no padding rows are ever computed; attention is causal within a sequence and
// never crosses sequences (the padding mask of a padded batch, made exact).
//
// A prefix tree instead (only on backends whose SupportsPrefixTree() is true):
// sequences that begin with the same tokens share the rows of that common
// prefix, which are then computed once. `parent` has one entry per row: the
// row of the previous token of the same sequence, or -1 at position 0, with
// parent[r] < r; `position` is each row's depth. Row r attends to its
// ancestors and itself, in position order — exactly what it would attend to
// in its own packed sequence. offsets/lengths are empty in this form.
struct SeqLayout {
  std::vector<int64_t> offsets;
  std::vector<int64_t> lengths;
  std::vector<int64_t> parent;
  std::vector<int64_t> position;
  bool is_tree() const { return !parent.empty(); }
  int64_t total_rows() const {
    if (is_tree()) return static_cast<int64_t>(parent.size());
    return offsets.empty() ? 0 : offsets.back() + lengths.back();
  }
  static SeqLayout FromLengths(const std::vector<int64_t>& lengths);
  // Tree form; `parent` must satisfy -1 <= parent[r] < r.
  static SeqLayout FromParents(std::vector<int64_t> parent);
};

enum class Activation { kSilu, kGeluTanh, kGeluErf, kRelu };
// kNeox: rotate_half over the first rotary_dim dims (Llama, GPT-NeoX).
// kGptj: rotate_every_two (interleaved pairs) over the first rotary_dim dims.
enum class RopeStyle { kNeox, kGptj };

// How Backend::Attention scores keys. `scale` multiplies q·k; with softcap > 0
// the scaled score s becomes softcap · tanh(s / softcap) (Gemma 2's attention
// logit soft-capping); with window > 0 a query at position p attends only to
// the keys at positions p − window < j <= p (a sliding window of `window`
// keys, itself included, as transformers' sliding-window causal mask).
struct AttentionParams {
  float scale = 1.0f;
  int64_t window = 0;
  float softcap = 0.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;
  // Whether Rope and Attention accept the prefix-tree form of SeqLayout.
  virtual bool SupportsPrefixTree() const { return false; }
  // Makes the calling thread's current device this backend's (CUDA), for code
  // that calls the CUDA runtime directly. Ops need no binding: each sets its
  // device itself. Cheap; idempotent.
  virtual void BindThread() {}

  // Memory.
  virtual Tensor Empty(int64_t rows, int64_t cols) = 0;
  virtual Tensor FromHost(const float* data, int64_t rows, int64_t cols) = 0;
  virtual void ToHost(const Tensor& t, float* out) = 0;
  virtual void Copy(const Tensor& src, Tensor* dst) = 0;

  // y[n, m] = x[n, k] · w[m, k]ᵀ (+ bias[1, m]); `bias` may be null. y may be
  // `accumulate`d into (y += ...) instead of overwritten.
  virtual void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
                      bool accumulate = false) = 0;
  // y = x · a[k, r] (no transpose) — used by factored (low-rank) apply.
  virtual void MatMul(const Tensor& x, const Tensor& a, Tensor* y) = 0;

  // Row-wise norms. w, b are [1, cols]; b may be null; y may be x (in place).
  virtual void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) = 0;
  virtual void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps,
                         Tensor* y) = 0;

  // In-place rotary embedding of x [rows, heads * head_dim]; position of a row is
  // its index within its sequence (in the prefix-tree form, which every
  // backend accepts here, `layout.position`). inv_freq has rotary_dim / 2 entries; the
  // first rotary_dim dims of each head rotate (partial rotary: the rest pass
  // through). cos and sin are multiplied by attention_factor (yarn and
  // longrope scaling; 1 otherwise). Only the rows of the layout's sequences
  // are touched, so a layout naming some of x's sequences rotates those alone.
  virtual void Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
                    const std::vector<float>& inv_freq, RopeStyle style,
                    float attention_factor) = 0;

  // Causal multi-head attention within each sequence of `layout`, grouped-query
  // when kv_heads < heads. q [rows, heads*hd], k/v [rows, kv_heads*hd] -> out;
  // scale, sliding window and soft-cap as `p` says.
  virtual void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                         int heads, int kv_heads, int head_dim, const AttentionParams& p,
                         Tensor* out) = 0;

  // Attention over explicit key lists (decoding with a KV cache): query row i
  // of q attends to the rows keys[key_offsets[i] .. key_offsets[i + 1]) of k
  // and v, listed in position order, the last one being the query's own
  // position (so its position is the list's length − 1; a window keeps the
  // last `window` entries). key_offsets has q.rows() + 1 entries, starting at
  // 0; every list is non-empty and its rows are < k.rows(). Grouped-query,
  // scale and soft-cap as Attention; the same value as Attention gives the
  // last row of a packed sequence made of the listed rows.
  virtual void AttentionRows(const Tensor& q, const Tensor& k, const Tensor& v,
                             const std::vector<int64_t>& key_offsets,
                             const std::vector<int64_t>& keys, int heads, int kv_heads,
                             int head_dim, const AttentionParams& p, Tensor* out) = 0;

  virtual void Activate(Tensor* x, Activation act) = 0;
  // gate = act(gate) * up (gated MLPs such as SwiGLU).
  virtual void GatedActivate(Tensor* gate, const Tensor& up, Activation act) = 0;
  // y += x.
  virtual void Add(const Tensor& x, Tensor* y) = 0;
  // x *= s elementwise (Gemma's embedding scale).
  virtual void Scale(Tensor* x, float s) = 0;
  // x = cap · tanh(x / cap) elementwise, cap > 0 (Gemma 2's final-logit soft-capping).
  virtual void SoftCap(Tensor* x, float cap) = 0;
  // out[i] = table[ids[i]] (embedding lookup); ids must be in range.
  virtual void GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) = 0;

  // Scoring of selected logits rows: logits [n, vocab], gold[n]. For each row:
  // log-softmax(logits)[gold], the first argmax, and the number of entries
  // strictly greater than the gold logit (gold is in the top-k iff that is < k).
  struct RowScore {
    float logprob;
    int32_t argmax;
    int64_t greater;
  };
  virtual std::vector<RowScore> ScoreRows(const Tensor& logits,
                                          const std::vector<int32_t>& gold) = 0;

  // Decomposition (callers go through kernels::DecomposeOnBackend, which
  // checks the arguments and plans). Truncated SVDs by `plan` of the
  // same-shaped resident matrices `ws` (each [plan.m, plan.n], of this
  // backend; any dtype) into out (resized to ws.size()): svd.{m, n, k, method,
  // u, s, v, frobenius_sq}, for exact also svd.spectrum (the errors follow from
  // it and are left empty), for randomized/paper the truncation errors of
  // `error_ranks` (each in [0, plan.k]) from the residual of W.
  virtual absl::Status Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                                 const std::vector<int64_t>& error_ranks,
                                 std::vector<BackendSvd>* out) = 0;
  // Whether Decompose is the host computation (kernels::RunSvdPlan and
  // TruncationErrors) on each matrix alone, so that its results equal the
  // host functions' on the same values bit for bit.
  virtual bool DecomposesOnHost() const { return false; }
};

std::unique_ptr<Backend> MakeCpuBackend();

// A parsed --device value: `kind[:index][/dtype]`, kind auto|cpu|cuda, e.g.
// "cuda", "cuda:1", "cuda/bf16", "auto/fp16". The index selects the GPU
// (cuda and auto only; default 0); the dtype is the resident-matrix storage
// type of a CUDA backend (default fp32; the CPU backend always stores fp32 and
// accepts only fp32, except under auto, where a CPU fallback ignores it).
struct DeviceSpec {
  std::string kind = "auto";
  int index = 0;
  DType dtype = DType::kF32;
  bool dtype_given = false;
};
absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& device);

// --device auto|cpu|cuda[:N][/dtype]. auto picks CUDA when built with it and a
// GPU is present, and otherwise logs that it falls back to the CPU.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_OPS_H_
