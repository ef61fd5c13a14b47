// CPU implementation of the op interface: OpenBLAS SGEMM for every matrix
// product (linear layers, attention scores and mixing), plain loops for the
// elementwise parts.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status_macros.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {
namespace {

// Freed buffers are kept for reuse by exact size, so that the activations of
// one forward pass reuse the pages of the previous one instead of faulting
// fresh zeroed pages in (large blocks come from mmap, and freeing them
// unmaps them). At most kCachedBytes of free buffers are kept; the pool lives
// as long as the last tensor allocated from it.
class BufferPool {
 public:
  static constexpr size_t kCachedBytes = size_t{1} << 30;
  ~BufferPool() {
    for (auto& [bytes, list] : free_)
      for (void* p : list) std::free(p);
  }
  float* Get(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return static_cast<float*>(p);
      }
    }
    // 64-byte aligned for SIMD loads in BLAS.
    return static_cast<float*>(std::aligned_alloc(64, bytes));
  }
  void Put(float* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= kCachedBytes) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string name() const override { return "cpu"; }

  Tensor Empty(int64_t rows, int64_t cols) override {
    const int64_t n = std::max<int64_t>(rows * cols, 1);
    const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    float* p = pool_->Get(bytes);
    return Tensor(
        std::shared_ptr<float>(p, [pool = pool_, bytes](float* q) { pool->Put(q, bytes); }), rows,
        cols, DeviceKind::kCpu);
  }
  Tensor FromHost(const float* data, int64_t rows, int64_t cols) override {
    Tensor t = Empty(rows, cols);
    std::memcpy(t.data(), data, rows * cols * sizeof(float));
    return t;
  }
  void ToHost(const Tensor& t, float* out) override {
    std::memcpy(out, t.data(), t.size() * sizeof(float));
  }
  void Copy(const Tensor& src, Tensor* dst) override {
    std::memcpy(dst->data(), src.data(), src.size() * sizeof(float));
  }

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
              bool accumulate) override {
    const int64_t n = x.rows(), k = x.cols(), m = w.rows();
    if (n == 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias != nullptr && !accumulate) {
      float* yd = y->data();
      const float* b = bias->data();
      for (int64_t i = 0; i < n; ++i) std::memcpy(yd + i * m, b, m * sizeof(float));
      beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0f, x.data(), k, w.data(), k,
                beta, y->data(), m);
    if (bias != nullptr && accumulate) {
      float* yd = y->data();
      const float* b = bias->data();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) yd[i * m + j] += b[j];
    }
  }

  void MatMul(const Tensor& x, const Tensor& a, Tensor* y) override {
    const int64_t n = x.rows(), k = x.cols(), r = a.cols();
    if (n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, k, 1.0f, x.data(), k, a.data(), r,
                0.0f, y->data(), r);
  }

  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor* y) override {
    const int64_t n = x.rows(), d = x.cols();
    const float* wd = w.data();
    for (int64_t i = 0; i < n; ++i) {
      const float* xr = x.data() + i * d;
      float* yr = y->data() + i * d;
      float ss = 0.0f;
      for (int64_t j = 0; j < d; ++j) ss += xr[j] * xr[j];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
      for (int64_t j = 0; j < d; ++j) yr[j] = wd[j] * (xr[j] * inv);
    }
  }

  void LayerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor* y) override {
    const int64_t n = x.rows(), d = x.cols();
    const float* wd = w.data();
    const float* bd = b ? b->data() : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const float* xr = x.data() + i * d;
      float* yr = y->data() + i * d;
      float mean = 0.0f;
      for (int64_t j = 0; j < d; ++j) mean += xr[j];
      mean /= static_cast<float>(d);
      float var = 0.0f;
      for (int64_t j = 0; j < d; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      var /= static_cast<float>(d);
      const float inv = 1.0f / std::sqrt(var + eps);
      for (int64_t j = 0; j < d; ++j) {
        yr[j] = (xr[j] - mean) * inv * wd[j] + (bd ? bd[j] : 0.0f);
      }
    }
  }

  bool SupportsPrefixTree() const override { return true; }

  void Rope(Tensor* x, const SeqLayout& layout, int heads, int head_dim, int rotary_dim,
            const std::vector<float>& inv_freq, RopeStyle style, float attention_factor) override {
    int64_t max_len = 0;
    for (int64_t l : layout.lengths) max_len = std::max(max_len, l);
    for (int64_t p : layout.position) max_len = std::max(max_len, p + 1);
    const int half = rotary_dim / 2;
    // cos/sin per (position, frequency), computed in fp32 as the reference does.
    std::vector<float> cs(max_len * half), sn(max_len * half);
    for (int64_t p = 0; p < max_len; ++p) {
      for (int f = 0; f < half; ++f) {
        const float ang = static_cast<float>(p) * inv_freq[f];
        cs[p * half + f] = std::cos(ang) * attention_factor;
        sn[p * half + f] = std::sin(ang) * attention_factor;
      }
    }
    const int64_t stride = x->cols();
    auto rotate = [&](int64_t r, int64_t p) {
      float* row = x->data() + r * stride;
      const float* c = cs.data() + p * half;
      const float* si = sn.data() + p * half;
      for (int h = 0; h < heads; ++h) {
        float* v = row + h * head_dim;
        if (style == RopeStyle::kNeox) {
          for (int f = 0; f < half; ++f) {
            const float a = v[f], b = v[f + half];
            v[f] = a * c[f] - b * si[f];
            v[f + half] = b * c[f] + a * si[f];
          }
        } else {
          for (int f = 0; f < half; ++f) {
            const float a = v[2 * f], b = v[2 * f + 1];
            v[2 * f] = a * c[f] - b * si[f];
            v[2 * f + 1] = b * c[f] + a * si[f];
          }
        }
      }
    };
    if (layout.is_tree()) {
      for (int64_t r = 0; r < layout.total_rows(); ++r) rotate(r, layout.position[r]);
      return;
    }
    for (size_t s = 0; s < layout.offsets.size(); ++s) {
      for (int64_t p = 0; p < layout.lengths[s]; ++p) rotate(layout.offsets[s] + p, p);
    }
  }

  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, const SeqLayout& layout,
                 int heads, int kv_heads, int head_dim, const AttentionParams& ap,
                 Tensor* out) override {
    if (layout.is_tree()) {
      TreeAttention(q, k, v, layout, heads, kv_heads, head_dim, ap, out);
      return;
    }
    const int group = heads / kv_heads;
    const float scale = ap.scale, cap = ap.softcap;
    const int64_t qs = q.cols(), ks = k.cols(), vs = v.cols(), os = out->cols();
    std::vector<float> scores;
    for (size_t s = 0; s < layout.offsets.size(); ++s) {
      const int64_t off = layout.offsets[s], T = layout.lengths[s];
      if (T == 0) continue;
      scores.resize(T * T);
      for (int h = 0; h < heads; ++h) {
        const int kh = h / group;
        const float* qh = q.data() + off * qs + h * head_dim;
        const float* kh_ = k.data() + off * ks + kh * head_dim;
        const float* vh = v.data() + off * vs + kh * head_dim;
        float* oh = out->data() + off * os + h * head_dim;
        if (T == 1) {
          std::memcpy(oh, vh, head_dim * sizeof(float));
          continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, scale, qh, qs, kh_, ks,
                    0.0f, scores.data(), T);
        for (int64_t i = 0; i < T; ++i) {
          float* r = scores.data() + i * T;
          // Keys first..i: the causal range, cut to the window.
          const int64_t first = ap.window > 0 ? std::max<int64_t>(0, i - ap.window + 1) : 0;
          if (cap > 0.0f) {
            for (int64_t j = first; j <= i; ++j) r[j] = cap * std::tanh(r[j] / cap);
          }
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = first; j <= i; ++j) mx = std::max(mx, r[j]);
          float sum = 0.0f;
          for (int64_t j = first; j <= i; ++j) {
            r[j] = std::exp(r[j] - mx);
            sum += r[j];
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j < first; ++j) r[j] = 0.0f;
          for (int64_t j = first; j <= i; ++j) r[j] *= inv;
          for (int64_t j = i + 1; j < T; ++j) r[j] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.0f, scores.data(),
                    T, vh, vs, 0.0f, oh, os);
      }
    }
  }

  // Prefix-tree attention: row r attends to the chain root .. parent[r], r
  // (its last `window` entries under a window). The chains are short (shared
  // prompt prefixes), so plain loops over the chain (AttendChain).
  static void TreeAttention(const Tensor& q, const Tensor& k, const Tensor& v,
                            const SeqLayout& layout, int heads, int kv_heads, int head_dim,
                            const AttentionParams& ap, Tensor* out) {
    std::vector<int64_t> chain;
    std::vector<float> w;
    for (int64_t r = 0; r < layout.total_rows(); ++r) {
      const int64_t T = layout.position[r] + 1;
      chain.resize(T);
      for (int64_t j = T - 1, a = r; j >= 0; --j, a = layout.parent[a]) chain[j] = a;
      AttendChain(q.data() + r * q.cols(), k, v, chain.data(), T, heads, kv_heads, head_dim, ap,
                  out->data() + r * out->cols(), &w);
    }
  }

  void AttentionRows(const Tensor& q, const Tensor& k, const Tensor& v,
                     const std::vector<int64_t>& key_offsets, const std::vector<int64_t>& keys,
                     int heads, int kv_heads, int head_dim, const AttentionParams& ap,
                     Tensor* out) override {
    std::vector<float> w;
    for (int64_t i = 0; i < q.rows(); ++i) {
      const int64_t T = key_offsets[i + 1] - key_offsets[i];
      AttendChain(q.data() + i * q.cols(), k, v, keys.data() + key_offsets[i], T, heads, kv_heads,
                  head_dim, ap, out->data() + i * out->cols(), &w);
    }
  }

  // One query row (every head) over the key rows chain[0..T) in position
  // order, the last being the query's own; the dot products keep 8 partial
  // sums so that they vectorise.
  static void AttendChain(const float* qrow, const Tensor& k, const Tensor& v, const int64_t* chain,
                          int64_t T, int heads, int kv_heads, int head_dim,
                          const AttentionParams& ap, float* orow, std::vector<float>* wbuf) {
    const int group = heads / kv_heads;
    const float scale = ap.scale, cap = ap.softcap;
    const int64_t ks = k.cols(), vs = v.cols();
    const int64_t first = ap.window > 0 ? std::max<int64_t>(0, T - ap.window) : 0;
    wbuf->resize(T);
    float* w = wbuf->data();
    for (int h = 0; h < heads; ++h) {
      const int kh = h / group;
      const float* qh = qrow + h * head_dim;
      float* oh = orow + h * head_dim;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = first; j < T; ++j) {
        const float* kr = k.data() + chain[j] * ks + kh * head_dim;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int d = 0;
        for (; d + 8 <= head_dim; d += 8) {
          for (int l = 0; l < 8; ++l) acc[l] += qh[d + l] * kr[d + l];
        }
        float dot =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; d < head_dim; ++d) dot += qh[d] * kr[d];
        w[j] = scale * dot;
        if (cap > 0.0f) w[j] = cap * std::tanh(w[j] / cap);
        mx = std::max(mx, w[j]);
      }
      float sum = 0.0f;
      for (int64_t j = first; j < T; ++j) {
        w[j] = std::exp(w[j] - mx);
        sum += w[j];
      }
      const float inv = 1.0f / sum;
      std::fill(oh, oh + head_dim, 0.0f);
      for (int64_t j = first; j < T; ++j) {
        const float p = w[j] * inv;
        const float* vr = v.data() + chain[j] * vs + kh * head_dim;
        for (int d = 0; d < head_dim; ++d) oh[d] += p * vr[d];
      }
    }
  }

  static float Act(float x, Activation act) {
    switch (act) {
      case Activation::kSilu:
        return x / (1.0f + std::exp(-x));
      case Activation::kGeluTanh: {
        const float c = 0.7978845608028654f;  // sqrt(2/pi)
        return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
      }
      case Activation::kGeluErf:
        return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
      case Activation::kRelu:
        return x > 0.0f ? x : 0.0f;
    }
    return x;
  }

  void Activate(Tensor* x, Activation act) override {
    float* d = x->data();
    const int64_t n = x->size();
    if (act == Activation::kSilu) {
      for (int64_t i = 0; i < n; ++i) d[i] = Silu(d[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i) d[i] = Act(d[i], act);
  }

  void GatedActivate(Tensor* gate, const Tensor& up, Activation act) override {
    float* g = gate->data();
    const float* u = up.data();
    const int64_t n = gate->size();
    if (act == Activation::kSilu) {
      for (int64_t i = 0; i < n; ++i) g[i] = Silu(g[i]) * u[i];
      return;
    }
    for (int64_t i = 0; i < n; ++i) g[i] = Act(g[i], act) * u[i];
  }

  void Scale(Tensor* x, float s) override {
    float* d = x->data();
    for (int64_t i = 0; i < x->size(); ++i) d[i] *= s;
  }

  void SoftCap(Tensor* x, float cap) override {
    float* d = x->data();
    for (int64_t i = 0; i < x->size(); ++i) d[i] = cap * std::tanh(d[i] / cap);
  }

  void Add(const Tensor& x, Tensor* y) override {
    float* yd = y->data();
    const float* xd = x.data();
    const int64_t n = y->size();
    for (int64_t i = 0; i < n; ++i) yd[i] += xd[i];
  }

  void GatherRows(const Tensor& table, const std::vector<int64_t>& ids, Tensor* out) override {
    const int64_t d = table.cols();
    for (size_t i = 0; i < ids.size(); ++i) {
      std::memcpy(out->data() + i * d, table.data() + ids[i] * d, d * sizeof(float));
    }
  }

  // The host computation on each matrix (kernels/cpu/svd.cc).
  absl::Status Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                         const std::vector<int64_t>& error_ranks,
                         std::vector<BackendSvd>* out) override;
  bool DecomposesOnHost() const override { return true; }

  std::vector<RowScore> ScoreRows(const Tensor& logits, const std::vector<int32_t>& gold) override {
    const int64_t n = logits.rows(), V = logits.cols();
    std::vector<RowScore> res(n);
    auto score = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) res[i] = ScoreRow(logits.data() + i * V, V, gold[i]);
    };
    // The rows are independent: split them over as many threads as the BLAS
    // may use (OPENBLAS_NUM_THREADS; the compute budget the user set), at
    // least 8 rows each.
    const int64_t threads = std::min<int64_t>(
        {std::max(1, openblas_get_num_threads()),
         std::max<int64_t>(1, std::thread::hardware_concurrency()), std::max<int64_t>(1, n / 8)});
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t) {
      pool.emplace_back(score, n * t / threads, n * (t + 1) / threads);
    }
    score(0, n / threads);
    for (std::thread& t : pool) t.join();
    return res;
  }

 private:
  // exp(x) for x <= 0 in fp32: Cody–Waite range reduction and a degree-6
  // polynomial, relative error below 2e-7; written without calls or branches
  // so the compiler vectorises the loop that uses it.
  static inline float ExpNonPositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    // Round to nearest by the 1.5·2^23 trick (no libm call, so it vectorises).
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
  }

  // x · sigmoid(x) = x / (1 + exp(−x)), with exp of −|x| only (ExpNonPositive)
  // so that the loops using it vectorise.
  static inline float Silu(float x) {
    const float e = ExpNonPositive(-std::fabs(x));
    // Below −87 the true value is under 1e-35 (ExpNonPositive clamps there): 0.
    const float s = x >= 0.0f ? 1.0f / (1.0f + e) : x < -87.0f ? 0.0f : e / (1.0f + e);
    return x * s;
  }

  static RowScore ScoreRow(const float* r, int64_t V, int32_t gold) {
    // Independent lanes so that the compiler vectorises without reassociating.
    constexpr int kLanes = 16;
    const int64_t body = V / kLanes * kLanes;
    float lane_max[kLanes];
    for (int l = 0; l < kLanes; ++l) lane_max[l] = r[0];
    for (int64_t j = 0; j < body; j += kLanes)
      for (int l = 0; l < kLanes; ++l)
        lane_max[l] = r[j + l] > lane_max[l] ? r[j + l] : lane_max[l];
    float mx = lane_max[0];
    for (int l = 1; l < kLanes; ++l) mx = lane_max[l] > mx ? lane_max[l] : mx;
    for (int64_t j = body; j < V; ++j) mx = r[j] > mx ? r[j] : mx;
    int32_t am = 0;  // the first index holding the maximum, as torch.argmax
    while (r[am] != mx) ++am;
    const float g = r[gold];
    float acc[kLanes] = {};
    int32_t cnt[kLanes] = {};
    double sum = 0.0;
    int64_t greater = 0;
    // fp32 lane sums, folded into double every block to bound rounding.
    constexpr int64_t kBlock = 64 * kLanes;
    for (int64_t b = 0; b < body; b += kBlock) {
      const int64_t e = std::min(body, b + kBlock);
      for (int64_t j = b; j < e; j += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          acc[l] += ExpNonPositive(r[j + l] - mx);
          cnt[l] += r[j + l] > g;
        }
      for (int l = 0; l < kLanes; ++l) {
        sum += acc[l];
        acc[l] = 0.0f;
      }
    }
    for (int l = 0; l < kLanes; ++l) greater += cnt[l];
    for (int64_t j = body; j < V; ++j) {
      sum += ExpNonPositive(r[j] - mx);
      greater += r[j] > g;
    }
    RowScore s;
    s.logprob = static_cast<float>(static_cast<double>(g - mx) - std::log(sum));
    s.argmax = am;
    s.greater = greater;
    return s;
  }

  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();
};

absl::Status CpuBackend::Decompose(const std::vector<const Tensor*>& ws, const SvdPlan& plan,
                                   const std::vector<int64_t>& error_ranks,
                                   std::vector<BackendSvd>* out) {
  out->assign(ws.size(), BackendSvd{});
  for (size_t i = 0; i < ws.size(); ++i) {
    // The tensor's storage is the row-major fp32 matrix itself.
    const float* w = ws[i]->data();
    BackendSvd& r = (*out)[i];
    LASERD_ASSIGN_OR_RETURN(r.svd, RunSvdPlan(w, plan));
    if (plan.randomized()) {
      LASERD_ASSIGN_OR_RETURN(r.errors, TruncationErrors(w, r.svd, error_ranks));
    }
  }
  return absl::OkStatus();
}

}  // namespace

SeqLayout SeqLayout::FromLengths(const std::vector<int64_t>& lengths) {
  SeqLayout l;
  l.lengths = lengths;
  l.offsets.resize(lengths.size());
  int64_t off = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    l.offsets[i] = off;
    off += lengths[i];
  }
  return l;
}

SeqLayout SeqLayout::FromParents(std::vector<int64_t> parent) {
  SeqLayout l;
  l.position.resize(parent.size());
  for (size_t r = 0; r < parent.size(); ++r) {
    l.position[r] = parent[r] < 0 ? 0 : l.position[parent[r]] + 1;
  }
  l.parent = std::move(parent);
  return l;
}

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace laserd::kernels
