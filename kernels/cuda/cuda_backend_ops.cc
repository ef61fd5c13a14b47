// CudaBackend's row-wise, attention and elementwise ops (the kernels of
// cuda_kernels.cu, fp32): norms, RoPE, attention, activations, Add, GatherRows
// and ScoreRows, with the uploads of sequence layouts and RoPE frequencies.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_common.h"
#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels::detail {

void CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) {
  OpScope op(this);
  if (x.rows() == 0) return;
  RequireRowOp(x, w, *y, "RmsNorm");
  CheckCuda(cuda::LaunchRmsNorm(x.data(), w.data(), eps, x.rows(), x.cols(), y->data(), stream_),
            "RmsNorm");
}

void CudaBackend::LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps,
                            Tensor* y) {
  OpScope op(this);
  if (x.rows() == 0) return;
  RequireRowOp(x, w, *y, "LayerNorm");
  if (b != nullptr) {
    RequireDevice(*b, "LayerNorm", "b");
    RequireF32(*b, "LayerNorm", "b");
    Require(b->size() >= x.cols(), "LayerNorm", absl::StrCat("b ", Shape(*b), " for x ", Shape(x)));
  }
  CheckCuda(cuda::LaunchLayerNorm(x.data(), w.data(), b ? b->data() : nullptr, eps, x.rows(),
                                  x.cols(), y->data(), stream_),
            "LayerNorm");
}

void CudaBackend::Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
                       const std::vector<float>& inv_freq, RopeStyle style,
                       float attention_factor) {
  OpScope op(this);
  RequireDevice(*x, "Rope", "x");
  RequireF32(*x, "Rope", "x");
  Require(rotary_dim >= 0 && rotary_dim <= head_dim && inv_freq.size() >= size_t(rotary_dim / 2),
          "Rope",
          absl::StrCat("rotary_dim ", rotary_dim, " head_dim ", head_dim, " inv_freq size ",
                       inv_freq.size()));
  Require(int64_t{heads} * head_dim <= x->cols(), "Rope",
          absl::StrCat(heads, " heads of ", head_dim, " exceed x ", Shape(*x)));
  const int64_t count = UploadLayout(layout, x->rows(), "Rope", /*allow_tree=*/true);
  const float* freq = UploadFrequencies(inv_freq, rotary_dim / 2);
  CheckCuda(
      cuda::LaunchRope(x->data(), x->cols(), RowIds(), Positions(count), count, heads, head_dim,
                       rotary_dim, freq, style == RopeStyle::kNeox, attention_factor, stream_),
      "Rope");
}

void CudaBackend::Attention(const Tensor& q, const Tensor& k, const Tensor& v,
                            const SeqLayout& layout, int heads, int kv_heads, int head_dim,
                            const AttentionParams& p, Tensor* out) {
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
              int64_t{kv_heads} * head_dim <= k.cols() && int64_t{kv_heads} * head_dim <= v.cols(),
          "Attention",
          absl::StrCat("q ", Shape(q), " k ", Shape(k), " v ", Shape(v), " out ", Shape(*out),
                       " for ", heads, "/", kv_heads, " heads of ", head_dim));
  const int64_t rows = std::min({q.rows(), k.rows(), v.rows(), out->rows()});
  const int64_t count = UploadLayout(layout, rows, "Attention");
  CheckCuda(cuda::LaunchAttention(q.data(), q.cols(), k.data(), k.cols(), v.data(), v.cols(),
                                  RowIds(), Positions(count), count, heads, kv_heads, head_dim,
                                  p.scale, p.window, p.softcap, out->data(), out->cols(), stream_),
            "Attention");
}

void CudaBackend::AttentionRows(const Tensor& q, const Tensor& k, const Tensor& v,
                                const std::vector<int64_t>& key_offsets,
                                const std::vector<int64_t>& keys, int heads, int kv_heads,
                                int head_dim, const AttentionParams& p, Tensor* out) {
  OpScope op(this);
  RequireDevice(q, "AttentionRows", "q");
  RequireDevice(k, "AttentionRows", "k");
  RequireDevice(v, "AttentionRows", "v");
  RequireDevice(*out, "AttentionRows", "out");
  for (const Tensor* t : {&q, &k, &v, static_cast<const Tensor*>(out)}) {
    RequireF32(*t, "AttentionRows", "an operand");
  }
  Require(heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && head_dim > 0, "AttentionRows",
          absl::StrCat("heads ", heads, " kv_heads ", kv_heads, " head_dim ", head_dim));
  const int64_t n = q.rows();
  Require(static_cast<int64_t>(key_offsets.size()) == n + 1 && out->rows() >= n &&
              key_offsets.front() == 0 && key_offsets.back() == static_cast<int64_t>(keys.size()),
          "AttentionRows",
          absl::StrCat(key_offsets.size(), " key offsets and ", keys.size(), " keys for ", n,
                       " queries"));
  const int64_t kr = std::min(k.rows(), v.rows());
  for (size_t i = 0; i + 1 < key_offsets.size(); ++i) {
    Require(key_offsets[i] < key_offsets[i + 1], "AttentionRows",
            absl::StrCat("query ", i, " has no keys"));
  }
  for (int64_t r : keys) {
    Require(r >= 0 && r < kr, "AttentionRows",
            absl::StrCat("key row ", r, " outside ", kr, " rows"));
  }
  if (n == 0) return;
  std::vector<int64_t> host(key_offsets);
  host.insert(host.end(), keys.begin(), keys.end());
  const int64_t* dev = static_cast<const int64_t*>(
      keys_scratch_.Upload(host.data(), host.size() * sizeof(int64_t), stream_));
  CheckCuda(
      cuda::LaunchAttentionRows(q.data(), q.cols(), k.data(), k.cols(), v.data(), v.cols(), dev,
                                dev + key_offsets.size(), n, heads, kv_heads, head_dim, p.scale,
                                p.window, p.softcap, out->data(), out->cols(), stream_),
      "AttentionRows");
}

void CudaBackend::Activate(Tensor* x, Activation act) {
  OpScope op(this);
  if (x->size() == 0) return;
  RequireDevice(*x, "Activate", "x");
  RequireF32(*x, "Activate", "x");
  CheckCuda(cuda::LaunchActivate(x->data(), x->size(), ToActKind(act), stream_), "Activate");
}

void CudaBackend::GatedActivate(Tensor* gate, const Tensor& up, Activation act) {
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

void CudaBackend::Add(const Tensor& x, Tensor* y) {
  OpScope op(this);
  if (y->size() == 0) return;
  RequireDevice(x, "Add", "x");
  RequireDevice(*y, "Add", "y");
  RequireF32(x, "Add", "x");
  RequireF32(*y, "Add", "y");
  Require(x.size() >= y->size(), "Add", absl::StrCat("x ", Shape(x), " for y ", Shape(*y)));
  CheckCuda(cuda::LaunchAdd(x.data(), y->size(), y->data(), stream_), "Add");
}

void CudaBackend::Scale(Tensor* x, float s) {
  OpScope op(this);
  if (x->size() == 0) return;
  RequireDevice(*x, "Scale", "x");
  RequireF32(*x, "Scale", "x");
  CheckCuda(cuda::LaunchScale(x->data(), x->size(), s, stream_), "Scale");
}

void CudaBackend::SoftCap(Tensor* x, float cap) {
  OpScope op(this);
  if (x->size() == 0) return;
  RequireDevice(*x, "SoftCap", "x");
  RequireF32(*x, "SoftCap", "x");
  Require(cap > 0.0f, "SoftCap", absl::StrCat("cap ", cap));
  CheckCuda(cuda::LaunchSoftCap(x->data(), x->size(), cap, stream_), "SoftCap");
}

void CudaBackend::GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) {
  OpScope op(this);
  if (ids.empty()) return;
  RequireDevice(table, "GatherRows", "table");
  RequireDevice(*out, "GatherRows", "out");
  RequireF32(*out, "GatherRows", "out");
  Require(out->cols() == table.cols() && out->rows() >= static_cast<int64_t>(ids.size()),
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

std::vector<CudaBackend::RowScore> CudaBackend::ScoreRows(const Tensor& logits,
                                                          const std::vector<int32_t>& gold) {
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
  auto* d_out =
      static_cast<cuda::DeviceRowScore*>(result_scratch_.Reserve(n * sizeof(cuda::DeviceRowScore)));
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

void CudaBackend::RequireRowOp(const Tensor& x, const Tensor& w, const Tensor& y, const char* op) {
  RequireDevice(x, op, "x");
  RequireDevice(w, op, "w");
  RequireDevice(y, op, "y");
  RequireF32(x, op, "x");
  RequireF32(w, op, "w");
  RequireF32(y, op, "y");
  Require(w.size() >= x.cols() && y.rows() >= x.rows() && y.cols() == x.cols(), op,
          absl::StrCat("x ", Shape(x), " w ", Shape(w), " y ", Shape(y)));
}

int64_t CudaBackend::UploadLayout(const SeqLayout& layout, int64_t rows, const char* op,
                                  bool allow_tree) {
  if (allow_tree && layout.is_tree()) {
    const int64_t count = layout.total_rows();
    Require(
        count <= rows && rows <= INT_MAX && layout.position.size() == static_cast<size_t>(count),
        op, absl::StrCat("tree layout of ", count, " rows for ", rows, " rows"));
    host_layout_.resize(2 * count);
    for (int64_t r = 0; r < count; ++r) {
      host_layout_[r] = static_cast<int32_t>(r);
      host_layout_[count + r] = static_cast<int32_t>(layout.position[r]);
    }
    layout_dev_ = static_cast<const int32_t*>(layout_scratch_.Upload(
        host_layout_.data(), host_layout_.size() * sizeof(int32_t), stream_));
    // No packed layout is held now: the next packed one is uploaded again.
    layout_offsets_ = {-1};
    layout_lengths_.clear();
    return count;
  }
  Require(!layout.is_tree(), op,
          "a prefix-tree SeqLayout was given to the CUDA backend, which supports packed "
          "sequences only (SupportsPrefixTree() is false)");
  Require(layout.offsets.size() == layout.lengths.size(), op,
          absl::StrCat("layout has ", layout.offsets.size(), " offsets and ", layout.lengths.size(),
                       " lengths"));
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
  layout_dev_ = static_cast<const int32_t*>(
      layout_scratch_.Upload(host_layout_.data(), host_layout_.size() * sizeof(int32_t), stream_));
  layout_offsets_ = layout.offsets;
  layout_lengths_ = layout.lengths;
  return count;
}

const float* CudaBackend::UploadFrequencies(const std::vector<float>& inv_freq, int half) {
  if (freq_dev_ == nullptr || freq_host_.size() != size_t(half) ||
      !std::equal(freq_host_.begin(), freq_host_.end(), inv_freq.begin())) {
    freq_host_.assign(inv_freq.begin(), inv_freq.begin() + half);
    freq_dev_ = static_cast<const float*>(
        freq_scratch_.Upload(freq_host_.data(), half * sizeof(float), stream_));
  }
  return freq_dev_;
}

}  // namespace laserd::kernels::detail
