// The one op interface every architecture is written over. A Backend owns its
// memory (host for CPU, device for CUDA); Tensors are dense fp32 2-D row-major
// views handed out by a Backend. Kernels know nothing of models.
#ifndef LASERD_KERNELS_OPS_H_
#define LASERD_KERNELS_OPS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::kernels {

enum class DeviceKind { kCpu, kCuda };

// A dense row-major fp32 matrix living on one backend's device.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<float> storage, int64_t rows, int64_t cols, DeviceKind device)
      : storage_(std::move(storage)), rows_(rows), cols_(cols), device_(device) {}
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t size() const { return rows_ * cols_; }
  bool empty() const { return storage_ == nullptr; }
  DeviceKind device() const { return device_; }
  float* data() { return storage_.get(); }
  const float* data() const { return storage_.get(); }

 private:
  std::shared_ptr<float> storage_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
};

// A packed batch of independent sequences: sequence i occupies rows
// [offsets[i], offsets[i] + lengths[i]) of an activation matrix. Packing means
// no padding rows are ever computed; attention is causal within a sequence and
// never crosses sequences (the padding mask of a padded batch, made exact).
struct SeqLayout {
  std::vector<int64_t> offsets;
  std::vector<int64_t> lengths;
  int64_t total_rows() const { return offsets.empty() ? 0 : offsets.back() + lengths.back(); }
  static SeqLayout FromLengths(const std::vector<int64_t>& lengths);
};

enum class Activation { kSilu, kGeluTanh, kGeluErf, kRelu };
// kNeox: rotate_half over the first rotary_dim dims (Llama, GPT-NeoX).
// kGptj: rotate_every_two (interleaved pairs) over the first rotary_dim dims.
enum class RopeStyle { kNeox, kGptj };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;

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

  // Row-wise norms. w, b are [1, cols]; b may be null.
  virtual void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) = 0;
  virtual void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps,
                         Tensor* y) = 0;

  // In-place rotary embedding of x [rows, heads * head_dim]; position of a row is
  // its index within its sequence. inv_freq has rotary_dim / 2 entries.
  virtual void Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
                    const std::vector<float>& inv_freq, RopeStyle style) = 0;

  // Causal multi-head attention within each sequence of `layout`, grouped-query
  // when kv_heads < heads. q [rows, heads*hd], k/v [rows, kv_heads*hd] -> out.
  virtual void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                         int heads, int kv_heads, int head_dim, float scale, Tensor* out) = 0;

  virtual void Activate(Tensor* x, Activation act) = 0;
  // gate = act(gate) * up (gated MLPs such as SwiGLU).
  virtual void GatedActivate(Tensor* gate, const Tensor& up, Activation act) = 0;
  // y += x.
  virtual void Add(const Tensor& x, Tensor* y) = 0;
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
};

std::unique_ptr<Backend> MakeCpuBackend();
// --device auto|cpu|cuda. auto picks CUDA when built with it and a GPU is present.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_OPS_H_
