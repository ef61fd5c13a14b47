// The CUDA backend against the CPU backend, op by op, on random inputs:
// several shapes, grouped-query attention, packed batches of several
// sequences. fp32 on both sides, so results agree to 1e-4 (relative above 1).
// Every comparison test skips when the build has no CUDA or no device is
// present; the factory tests run everywhere.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {
namespace {

constexpr float kTol = 1e-4f;

TEST(MakeBackendTest, CpuIsAlwaysAvailable) {
  auto b = MakeBackend("cpu");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->kind(), DeviceKind::kCpu);
}

TEST(MakeBackendTest, UnknownDeviceIsInvalidArgument) {
  auto b = MakeBackend("tpu");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("tpu"), std::string::npos) << b.status();
}

TEST(MakeBackendTest, CudaIsAvailableOrFailedPrecondition) {
  auto cuda = MakeBackend("cuda");
  auto automatic = MakeBackend("auto");
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->kind(), DeviceKind::kCuda);
    EXPECT_EQ((*automatic)->kind(), DeviceKind::kCuda);
  } else {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition) << cuda.status();
    EXPECT_EQ((*automatic)->kind(), DeviceKind::kCpu);
  }
}

TEST(MakeBackendTest, DeviceSpecs) {
  auto s = ParseDeviceSpec("cuda:1/bf16");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, "cuda");
  EXPECT_EQ(s->index, 1);
  EXPECT_EQ(s->dtype, DType::kBF16);
  s = ParseDeviceSpec("auto/fp16");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, "auto");
  EXPECT_EQ(s->index, 0);
  EXPECT_EQ(s->dtype, DType::kF16);
  s = ParseDeviceSpec("cpu");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->dtype, DType::kF32);
  for (const char* bad : {"cuda/bf8", "cuda:x", "cuda:", "cpu:0", "cpu/bf16", "gpu", "cuda:-1"}) {
    auto b = MakeBackend(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << bad << ": " << b.status();
  }
  EXPECT_FALSE(ParseDType("int8").ok());
  EXPECT_EQ(*ParseDType("bfloat16"), DType::kBF16);
  EXPECT_STREQ(DTypeName(DType::kF16), "fp16");
}

// Without a usable GPU, auto returns the CPU backend and says so in the log.
TEST(MakeBackendTest, AutoFallbackLogsALine) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  auto automatic = MakeBackend("auto/bf16");
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  if ((*automatic)->kind() == DeviceKind::kCuda) {
    EXPECT_EQ(log.str().find("falling back"), std::string::npos) << log.str();
    return;
  }
  EXPECT_EQ((*automatic)->kind(), DeviceKind::kCpu);
  EXPECT_NE(log.str().find("device auto: falling back to the CPU backend ("), std::string::npos)
      << log.str();
#ifndef LASERD_HAVE_CUDA
  EXPECT_NE(log.str().find("built without CUDA"), std::string::npos) << log.str();
#endif
}

std::vector<float> Random(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef LASERD_HAVE_CUDA
    GTEST_SKIP() << "built without CUDA";
#else
    auto b = MakeBackend("cuda");
    if (!b.ok() && b.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << "no CUDA device: " << b.status().message();
    }
    ASSERT_TRUE(b.ok()) << b.status();
    gpu_ = std::move(*b);
    ASSERT_EQ(gpu_->kind(), DeviceKind::kCuda);
    cpu_ = MakeCpuBackend();
#endif
  }

  // The same host data on both backends.
  struct Pair {
    Tensor cpu, gpu;
  };
  Pair Make(int64_t rows, int64_t cols, float lo = -1.0f, float hi = 1.0f) {
    return MakeFrom(Random(rows * cols, lo, hi, seed_++), rows, cols);
  }
  Pair MakeFrom(const std::vector<float>& host, int64_t rows, int64_t cols) {
    Pair p{cpu_->FromHost(host.data(), rows, cols), gpu_->FromHost(host.data(), rows, cols)};
    EXPECT_EQ(p.gpu.device(), DeviceKind::kCuda);
    return p;
  }
  std::vector<float> Host(Backend* b, const Tensor& t) {
    std::vector<float> v(t.size());
    b->ToHost(t, v.data());
    return v;
  }
  // Asserts the two sides agree to kTol (relative for magnitudes above 1).
  void ExpectClose(const Pair& p, const std::string& what, float tol = kTol) {
    ASSERT_EQ(p.cpu.rows(), p.gpu.rows());
    ASSERT_EQ(p.cpu.cols(), p.gpu.cols());
    const std::vector<float> c = Host(cpu_.get(), p.cpu), g = Host(gpu_.get(), p.gpu);
    int64_t bad = 0, worst = -1;
    float worst_err = 0.0f;
    for (size_t i = 0; i < c.size(); ++i) {
      const float err = std::abs(c[i] - g[i]) / std::max(1.0f, std::abs(c[i]));
      if (!(err <= tol)) {
        ++bad;
        if (worst < 0 || !(err <= worst_err)) {
          worst = static_cast<int64_t>(i);
          worst_err = err;
        }
      }
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << c.size() << " entries differ; worst at "
                      << worst << " (row " << (worst < 0 ? -1 : worst / p.cpu.cols()) << "): cpu "
                      << (worst < 0 ? 0.0f : c[worst]) << " cuda " << (worst < 0 ? 0.0f : g[worst]);
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  uint32_t seed_ = 1234;
};

TEST_F(CudaBackendTest, MemoryRoundTripAndCopy) {
  const std::vector<float> host = Random(37 * 11, -5.0f, 5.0f, 7);
  Tensor t = gpu_->FromHost(host.data(), 37, 11);
  EXPECT_EQ(t.rows(), 37);
  EXPECT_EQ(t.cols(), 11);
  EXPECT_EQ(Host(gpu_.get(), t), host);
  Tensor u = gpu_->Empty(37, 11);
  gpu_->Copy(t, &u);
  EXPECT_EQ(Host(gpu_.get(), u), host);
  Tensor z = gpu_->Empty(0, 5);
  EXPECT_EQ(z.size(), 0);
  EXPECT_FALSE(z.empty());
}

TEST_F(CudaBackendTest, Linear) {
  struct Case {
    int64_t n, k, m;
  };
  for (const Case c : {Case{1, 1, 1}, Case{7, 64, 33}, Case{130, 257, 96}, Case{3, 576, 1536}}) {
    for (int mode = 0; mode < 4; ++mode) {  // bit 0: bias, bit 1: accumulate
      const bool with_bias = mode & 1, accumulate = mode & 2;
      Pair x = Make(c.n, c.k), w = Make(c.m, c.k), b = Make(1, c.m), y = Make(c.n, c.m);
      cpu_->Linear(x.cpu, w.cpu, with_bias ? &b.cpu : nullptr, &y.cpu, accumulate);
      gpu_->Linear(x.gpu, w.gpu, with_bias ? &b.gpu : nullptr, &y.gpu, accumulate);
      ExpectClose(y, "Linear n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
                         " m=" + std::to_string(c.m) + " bias=" + std::to_string(with_bias) +
                         " accumulate=" + std::to_string(accumulate));
    }
  }
}

TEST_F(CudaBackendTest, MatMul) {
  struct Case {
    int64_t n, k, r;
  };
  for (const Case c : {Case{1, 1, 1}, Case{5, 48, 7}, Case{64, 300, 17}, Case{200, 576, 64}}) {
    Pair x = Make(c.n, c.k), a = Make(c.k, c.r), y = Make(c.n, c.r);
    cpu_->MatMul(x.cpu, a.cpu, &y.cpu);
    gpu_->MatMul(x.gpu, a.gpu, &y.gpu);
    ExpectClose(y, "MatMul n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
                       " r=" + std::to_string(c.r));
  }
}

TEST_F(CudaBackendTest, RmsNorm) {
  for (int64_t cols : {1, 100, 576, 2049}) {
    Pair x = Make(9, cols, -3.0f, 3.0f), w = Make(1, cols), y = Make(9, cols);
    cpu_->RmsNorm(x.cpu, w.cpu, 1e-5f, &y.cpu);
    gpu_->RmsNorm(x.gpu, w.gpu, 1e-5f, &y.gpu);
    ExpectClose(y, "RmsNorm cols=" + std::to_string(cols));
    // In place (y aliases x).
    cpu_->RmsNorm(x.cpu, w.cpu, 1e-6f, &x.cpu);
    gpu_->RmsNorm(x.gpu, w.gpu, 1e-6f, &x.gpu);
    ExpectClose(x, "RmsNorm in place cols=" + std::to_string(cols));
  }
}

TEST_F(CudaBackendTest, LayerNorm) {
  for (int64_t cols : {1, 100, 768, 2049}) {
    for (bool with_bias : {false, true}) {
      Pair x = Make(6, cols, 2.0f, 5.0f), w = Make(1, cols), b = Make(1, cols), y = Make(6, cols);
      cpu_->LayerNorm(x.cpu, w.cpu, with_bias ? &b.cpu : nullptr, 1e-5f, &y.cpu);
      gpu_->LayerNorm(x.gpu, w.gpu, with_bias ? &b.gpu : nullptr, 1e-5f, &y.gpu);
      const std::string what =
          "LayerNorm cols=" + std::to_string(cols) + " bias=" + std::to_string(with_bias);
      ExpectClose(y, what);
      cpu_->LayerNorm(x.cpu, w.cpu, with_bias ? &b.cpu : nullptr, 1e-5f, &x.cpu);
      gpu_->LayerNorm(x.gpu, w.gpu, with_bias ? &b.gpu : nullptr, 1e-5f, &x.gpu);
      ExpectClose(x, what + " in place");
    }
  }
}

std::vector<float> InvFreq(int rotary_dim, double theta) {
  std::vector<float> f(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    f[i] = static_cast<float>(1.0 / std::pow(theta, 2.0 * i / rotary_dim));
  }
  return f;
}

TEST_F(CudaBackendTest, Rope) {
  struct Case {
    int heads, head_dim, rotary_dim;
    RopeStyle style;
    float attention_factor;
  };
  const SeqLayout layout = SeqLayout::FromLengths({5, 1, 17, 140});
  for (const Case c :
       {Case{3, 64, 64, RopeStyle::kNeox, 1.0f}, Case{3, 64, 64, RopeStyle::kGptj, 1.0f},
        Case{2, 64, 16, RopeStyle::kNeox, 1.0f}, Case{4, 32, 8, RopeStyle::kGptj, 1.0f},
        // Partial rotary with yarn/longrope's cos/sin factor (Phi-4-mini's shape).
        Case{3, 128, 96, RopeStyle::kNeox, 1.1902f}, Case{2, 64, 64, RopeStyle::kNeox, 1.2079f}}) {
    Pair x = Make(layout.total_rows(), int64_t{c.heads} * c.head_dim, -2.0f, 2.0f);
    const std::vector<float> inv_freq = InvFreq(c.rotary_dim, 10000.0);
    cpu_->Rope(&x.cpu, layout, c.heads, c.head_dim, c.rotary_dim, inv_freq, c.style,
               c.attention_factor);
    gpu_->Rope(&x.gpu, layout, c.heads, c.head_dim, c.rotary_dim, inv_freq, c.style,
               c.attention_factor);
    ExpectClose(x, "Rope heads=" + std::to_string(c.heads) + " head_dim=" +
                       std::to_string(c.head_dim) + " rotary_dim=" + std::to_string(c.rotary_dim) +
                       (c.style == RopeStyle::kNeox ? " neox" : " gptj") +
                       " attention_factor=" + std::to_string(c.attention_factor));
  }
}

// Length-dependent scaling (dynamic, longrope) rotates each group of
// sequences with its own frequencies through a layout naming only them; the
// other rows stay as they were.
TEST_F(CudaBackendTest, RopeOnSomeSequences) {
  const SeqLayout all = SeqLayout::FromLengths({5, 1, 17, 40});
  SeqLayout some;  // sequences 0 and 2 only
  some.offsets = {all.offsets[0], all.offsets[2]};
  some.lengths = {all.lengths[0], all.lengths[2]};
  SeqLayout rest;
  rest.offsets = {all.offsets[1], all.offsets[3]};
  rest.lengths = {all.lengths[1], all.lengths[3]};
  Pair x = Make(all.total_rows(), 2 * 64, -2.0f, 2.0f);
  const std::vector<float> short_f = InvFreq(48, 10000.0), long_f = InvFreq(48, 250000.0);
  cpu_->Rope(&x.cpu, some, 2, 64, 48, short_f, RopeStyle::kNeox, 1.19f);
  gpu_->Rope(&x.gpu, some, 2, 64, 48, short_f, RopeStyle::kNeox, 1.19f);
  cpu_->Rope(&x.cpu, rest, 2, 64, 48, long_f, RopeStyle::kNeox, 1.19f);
  gpu_->Rope(&x.gpu, rest, 2, 64, 48, long_f, RopeStyle::kNeox, 1.19f);
  ExpectClose(x, "Rope on two groups of sequences");
}

// Qwen3's per-head q/k RMSNorm: RmsNorm in place on a [rows · heads, head_dim] view.
TEST_F(CudaBackendTest, PerHeadRmsNormOnView) {
  Pair x = Make(7, 4 * 32, -2.0f, 2.0f), w = Make(1, 32);
  Tensor xc = x.cpu.Reshaped(7 * 4, 32), xg = x.gpu.Reshaped(7 * 4, 32);
  cpu_->RmsNorm(xc, w.cpu, 1e-6f, &xc);
  gpu_->RmsNorm(xg, w.gpu, 1e-6f, &xg);
  ExpectClose(x, "per-head RmsNorm");
}

TEST_F(CudaBackendTest, Attention) {
  struct Case {
    int heads, kv_heads, head_dim;
    std::vector<int64_t> lengths;
    float range;
  };
  const std::vector<Case> cases = {
      {1, 1, 8, {1}, 1.0f},
      {4, 4, 64, {7}, 1.0f},
      {9, 3, 64, {1, 7, 200, 130}, 1.0f},  // SmolLM2's GQA shape, several sequences
      {8, 2, 128, {129, 3, 256}, 2.0f},    // key tiles of 128 with a partial last tile
      {4, 1, 256, {40, 300}, 4.0f},        // head_dim above the block size, peaked softmax
  };
  for (const Case& c : cases) {
    const SeqLayout layout = SeqLayout::FromLengths(c.lengths);
    const int64_t rows = layout.total_rows();
    Pair q = Make(rows, int64_t{c.heads} * c.head_dim, -c.range, c.range);
    Pair k = Make(rows, int64_t{c.kv_heads} * c.head_dim, -c.range, c.range);
    Pair v = Make(rows, int64_t{c.kv_heads} * c.head_dim);
    Pair out = Make(rows, int64_t{c.heads} * c.head_dim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    // Plain, then with a sliding window (shorter than most sequences, and one
    // wider than a key tile) and soft-capping, alone and together.
    for (const AttentionParams& p :
         {AttentionParams{scale}, AttentionParams{scale, 5}, AttentionParams{scale, 150},
          AttentionParams{scale, 0, 0.5f}, AttentionParams{0.7f, 6, 2.0f}}) {
      cpu_->Attention(q.cpu, k.cpu, v.cpu, layout, c.heads, c.kv_heads, c.head_dim, p, &out.cpu);
      gpu_->Attention(q.gpu, k.gpu, v.gpu, layout, c.heads, c.kv_heads, c.head_dim, p, &out.gpu);
      ExpectClose(out, "Attention heads=" + std::to_string(c.heads) + "/" +
                           std::to_string(c.kv_heads) + " head_dim=" + std::to_string(c.head_dim) +
                           " rows=" + std::to_string(rows) + " window=" + std::to_string(p.window) +
                           " softcap=" + std::to_string(p.softcap));
    }
  }
}

// AttentionRows (decoding with a KV cache): queries over explicit key lists
// into a larger cache, against the CPU backend; lists long enough for several
// key tiles, and windows cutting them.
TEST_F(CudaBackendTest, AttentionRows) {
  struct Case {
    int heads, kv_heads, head_dim;
    std::vector<int64_t> lens;  // key list length of each query
  };
  for (const Case& c : {Case{1, 1, 8, {1}}, Case{9, 3, 64, {1, 5, 200, 130}},
                        Case{8, 2, 128, {129, 3, 300}}, Case{4, 1, 256, {40, 257}}}) {
    int64_t cache = 0;
    for (int64_t l : c.lens) cache += l;
    cache += 7;  // rows no list names
    const int64_t n = static_cast<int64_t>(c.lens.size());
    Pair q = Make(n, int64_t{c.heads} * c.head_dim, -1.5f, 1.5f);
    Pair k = Make(cache, int64_t{c.kv_heads} * c.head_dim, -1.5f, 1.5f);
    Pair v = Make(cache, int64_t{c.kv_heads} * c.head_dim);
    Pair out = Make(n, int64_t{c.heads} * c.head_dim);
    std::vector<int64_t> offsets = {0}, keys;
    int64_t next = 0;
    for (int64_t l : c.lens) {
      for (int64_t j = 0; j < l; ++j) keys.push_back((next++ * 13 + 5) % cache);
      offsets.push_back(static_cast<int64_t>(keys.size()));
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    for (const AttentionParams& p : {AttentionParams{scale}, AttentionParams{scale, 5},
                                     AttentionParams{scale, 150}, AttentionParams{0.7f, 6, 2.0f}}) {
      cpu_->AttentionRows(q.cpu, k.cpu, v.cpu, offsets, keys, c.heads, c.kv_heads, c.head_dim, p,
                          &out.cpu);
      gpu_->AttentionRows(q.gpu, k.gpu, v.gpu, offsets, keys, c.heads, c.kv_heads, c.head_dim, p,
                          &out.gpu);
      ExpectClose(out, "AttentionRows heads=" + std::to_string(c.heads) + "/" +
                           std::to_string(c.kv_heads) + " head_dim=" + std::to_string(c.head_dim) +
                           " window=" + std::to_string(p.window));
    }
  }
}

// Rope over a prefix-tree layout (the positions of a decoding step's rows)
// against the CPU backend.
TEST_F(CudaBackendTest, RopeTreeLayout) {
  SeqLayout layout;
  layout.parent = {-1, -1, -1, -1, -1};
  layout.position = {0, 17, 3, 250, 9};
  std::vector<float> inv_freq(32);
  for (int f = 0; f < 32; ++f) inv_freq[f] = std::pow(10000.0f, -2.0f * f / 64.0f);
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kGptj}) {
    Pair x = Make(5, 3 * 64);
    cpu_->Rope(&x.cpu, layout, 3, 64, 64, inv_freq, style, 1.0f);
    gpu_->Rope(&x.gpu, layout, 3, 64, 64, inv_freq, style, 1.0f);
    ExpectClose(x, "Rope tree layout");
  }
}

TEST_F(CudaBackendTest, ScaleAndSoftCap) {
  Pair x = Make(17, 301, -80.0f, 80.0f);
  cpu_->Scale(&x.cpu, 25.298221f);
  gpu_->Scale(&x.gpu, 25.298221f);
  ExpectClose(x, "Scale");
  cpu_->SoftCap(&x.cpu, 30.0f);
  gpu_->SoftCap(&x.gpu, 30.0f);
  ExpectClose(x, "SoftCap");
}

TEST_F(CudaBackendTest, Activations) {
  for (Activation act :
       {Activation::kSilu, Activation::kGeluTanh, Activation::kGeluErf, Activation::kRelu}) {
    const std::string name = std::to_string(static_cast<int>(act));
    Pair x = Make(33, 257, -8.0f, 8.0f);
    cpu_->Activate(&x.cpu, act);
    gpu_->Activate(&x.gpu, act);
    ExpectClose(x, "Activate " + name);
    Pair gate = Make(17, 1536, -8.0f, 8.0f), up = Make(17, 1536, -2.0f, 2.0f);
    cpu_->GatedActivate(&gate.cpu, up.cpu, act);
    gpu_->GatedActivate(&gate.gpu, up.gpu, act);
    ExpectClose(gate, "GatedActivate " + name);
  }
}

TEST_F(CudaBackendTest, Add) {
  Pair x = Make(77, 129), y = Make(77, 129);
  cpu_->Add(x.cpu, &y.cpu);
  gpu_->Add(x.gpu, &y.gpu);
  ExpectClose(y, "Add", 0.0f);
}

TEST_F(CudaBackendTest, GatherRows) {
  Pair table = Make(1000, 96);
  const std::vector<int64_t> ids = {0, 999, 5, 5, 42, 0, 731};
  Pair out = Make(static_cast<int64_t>(ids.size()), 96);
  cpu_->GatherRows(table.cpu, ids, &out.cpu);
  gpu_->GatherRows(table.gpu, ids, &out.gpu);
  ExpectClose(out, "GatherRows", 0.0f);
}

TEST_F(CudaBackendTest, ScoreRows) {
  for (int64_t vocab : {3, 1000, 49152}) {
    const int64_t rows = 6;
    std::vector<float> host = Random(rows * vocab, -12.0f, 12.0f, seed_++);
    // Quantize to multiples of 1/4 so that many entries tie with the gold
    // logit and with each other (exercises "strictly greater" and first argmax).
    for (float& x : host) x = std::round(x * 4.0f) / 4.0f;
    // Row 1: the maximum occurs twice; the first occurrence must win.
    host[1 * vocab + vocab - 1] = 20.0f;
    host[1 * vocab + vocab / 2] = 20.0f;
    // Row 2: a constant row.
    std::fill(host.begin() + 2 * vocab, host.begin() + 3 * vocab, 0.5f);
    Pair logits = MakeFrom(host, rows, vocab);
    std::vector<int32_t> gold(rows);
    for (int64_t i = 0; i < rows; ++i) gold[i] = static_cast<int32_t>((i * 7919) % vocab);
    gold[1] = static_cast<int32_t>(vocab / 2);
    const auto c = cpu_->ScoreRows(logits.cpu, gold);
    const auto g = gpu_->ScoreRows(logits.gpu, gold);
    ASSERT_EQ(c.size(), static_cast<size_t>(rows));
    ASSERT_EQ(g.size(), static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " row " + std::to_string(i));
      EXPECT_NEAR(g[i].logprob, c[i].logprob, kTol * std::max(1.0f, std::abs(c[i].logprob)));
      EXPECT_EQ(g[i].argmax, c[i].argmax);
      EXPECT_EQ(g[i].greater, c[i].greater);
    }
    EXPECT_EQ(g[1].argmax, vocab / 2);
    EXPECT_EQ(g[2].argmax, 0);
    EXPECT_EQ(g[2].greater, 0);
  }
}

// On the CPU backend, DecomposeOnBackend is exactly the host path.
TEST(DecomposeOnBackendTest, CpuEqualsHostPath) {
  auto cpu = MakeCpuBackend();
  const int64_t m = 48, n = 80;
  const std::vector<float> w = Random(m * n, -1.0f, 1.0f, 99);
  Tensor t = cpu->FromHost(w.data(), m, n);
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized, SvdMethod::kPaper}) {
    SvdOptions o;
    o.method = method;
    o.seed = 7;
    auto got = DecomposeOnBackend(cpu.get(), {&t, &t}, 12, o, {12, 3, 0});
    ASSERT_TRUE(got.ok()) << got.status();
    auto want = ComputeTruncatedSvd(w.data(), m, n, 12, o);
    ASSERT_TRUE(want.ok());
    auto errs = TruncationErrors(w.data(), *want, {12, 3, 0});
    ASSERT_TRUE(errs.ok());
    for (const BackendSvd& b : *got) {
      EXPECT_EQ(b.svd.u, want->u);
      EXPECT_EQ(b.svd.s, want->s);
      EXPECT_EQ(b.svd.v, want->v);
      EXPECT_EQ(b.svd.method, method);
      EXPECT_EQ(b.errors, *errs);
    }
  }
  SvdOptions o;
  auto bad = DecomposeOnBackend(cpu.get(), {&t}, 49, o, {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// GPU against CPU decompositions: the same singular values and truncation
// errors (every method and dense solver), the same rank-k product.
TEST_F(CudaBackendTest, TruncatedSvdMatchesCpu) {
  struct Shape {
    int64_t m, n;
  };
  for (const Shape sh : {Shape{96, 160}, Shape{160, 96}, Shape{64, 64}}) {
    // A decaying spectrum, as weight matrices have: W = G1 · diag(d) · G2.
    const int64_t m = sh.m, n = sh.n, r = std::min(m, n);
    std::vector<float> g1 = Random(m * r, -1.0f, 1.0f, 5), g2 = Random(r * n, -1.0f, 1.0f, 6);
    std::vector<float> w(m * n, 0.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t t = 0; t < r; ++t) {
        const float a = g1[i * r + t] / (1.0f + 0.2f * t);
        for (int64_t j = 0; j < n; ++j) w[i * n + j] += a * g2[t * n + j];
      }
    Pair t = MakeFrom(w, m, n);
    const std::vector<int64_t> ranks = {20, 1, 0, 7};
    for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized, SvdMethod::kPaper}) {
      for (GpuSolver solver : {GpuSolver::kGesvd, GpuSolver::kGesvdp, GpuSolver::kGram}) {
        SvdOptions o;
        o.method = method;
        o.seed = 3;
        o.gpu_solver = solver;
        const std::string what = std::string(SvdMethodName(method)) + "/" + GpuSolverName(solver) +
                                 " " + std::to_string(m) + "x" + std::to_string(n);
        auto c = DecomposeOnBackend(cpu_.get(), {&t.cpu}, 20, o, ranks);
        auto g = DecomposeOnBackend(gpu_.get(), {&t.gpu, &t.gpu}, 20, o, ranks);
        ASSERT_TRUE(c.ok()) << what << ": " << c.status();
        ASSERT_TRUE(g.ok()) << what << ": " << g.status();
        ASSERT_EQ(g->size(), 2u);
        const float tol = solver == GpuSolver::kGram ? 2e-3f : 2e-4f;
        for (const BackendSvd& b : *g) {
          EXPECT_EQ(b.svd.method, method) << what;
          ASSERT_EQ(b.svd.k, 20) << what;
          ASSERT_EQ(b.svd.s.size(), 20u) << what;
          for (int j = 0; j < 20; ++j) {
            EXPECT_NEAR(b.svd.s[j], (*c)[0].svd.s[j], tol * (*c)[0].svd.s[0]) << what << " s" << j;
          }
          EXPECT_EQ(b.svd.spectrum.size(), (*c)[0].svd.spectrum.size()) << what;
          EXPECT_NEAR(b.svd.frobenius_sq, (*c)[0].svd.frobenius_sq,
                      1e-5 * (*c)[0].svd.frobenius_sq);
          ASSERT_EQ(b.errors.size(), ranks.size());
          for (size_t j = 0; j < ranks.size(); ++j) {
            EXPECT_NEAR(b.errors[j], (*c)[0].errors[j], tol) << what << " rank " << ranks[j];
          }
          const std::vector<float> pc = LowRankProduct((*c)[0].svd, 7),
                                   pg = LowRankProduct(b.svd, 7);
          double diff = 0, norm = 0;
          for (size_t i = 0; i < pc.size(); ++i) {
            diff += double(pc[i] - pg[i]) * (pc[i] - pg[i]);
            norm += double(pc[i]) * pc[i];
          }
          EXPECT_LT(std::sqrt(diff / norm), 10 * tol) << what;
        }
      }
    }
  }
}

// SvdOptions::interrupt on the GPU, as on the CPU: a batch of three
// same-shaped matrices is asked before the batch, before each power iteration
// and before each later matrix's own dense SVD (exact: before each matrix).
// Stopping at any of those asks ends the decomposition CANCELLED with nothing
// asked after it, and the backend decomposes normally afterwards; asking
// without stopping changes nothing computed.
TEST_F(CudaBackendTest, DecompositionStopsWhenInterrupted) {
  const int64_t m = 96, n = 160, k = 20;
  const int q = 6;
  Pair a = Make(m, n), b = Make(m, n), c = Make(m, n);
  const std::vector<const Tensor*> batch = {&a.gpu, &b.gpu, &c.gpu};
  const std::vector<int64_t> ranks = {20, 5};
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized}) {
    const std::string what = SvdMethodName(method);
    SvdOptions o;
    o.method = method;
    o.seed = 3;
    o.power_iters = q;
    auto plain = DecomposeOnBackend(gpu_.get(), batch, k, o, ranks);
    ASSERT_TRUE(plain.ok()) << what << ": " << plain.status();
    int asks = 0;
    o.interrupt = [&asks] {
      ++asks;
      return absl::OkStatus();
    };
    auto asked = DecomposeOnBackend(gpu_.get(), batch, k, o, ranks);
    ASSERT_TRUE(asked.ok()) << what << ": " << asked.status();
    const int points = method == SvdMethod::kExact ? 3 : 1 + q + 2;
    EXPECT_EQ(asks, points) << what;
    ASSERT_EQ(asked->size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const TruncatedSvd &x = (*plain)[i].svd, &y = (*asked)[i].svd;
      ASSERT_EQ(x.s.size(), y.s.size()) << what;
      for (size_t j = 0; j < x.s.size(); ++j) {
        EXPECT_NEAR(x.s[j], y.s[j], 1e-6f * x.s[0]) << what << " matrix " << i << " s" << j;
      }
    }
    for (int stop = 0; stop < points; ++stop) {
      int seen = 0;
      o.interrupt = [&seen, stop] {
        return seen++ == stop ? absl::CancelledError("stop") : absl::OkStatus();
      };
      auto r = DecomposeOnBackend(gpu_.get(), batch, k, o, ranks);
      EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled)
          << what << ", stopped at ask " << stop << ": " << r.status();
      EXPECT_EQ(seen, stop + 1) << what << ": asked again after it said stop";
    }
    o.interrupt = nullptr;
    auto after = DecomposeOnBackend(gpu_.get(), batch, k, o, ranks);
    ASSERT_TRUE(after.ok()) << what << " after the interrupted runs: " << after.status();
    for (size_t i = 0; i < 3; ++i) {
      for (size_t j = 0; j < (*after)[i].svd.s.size(); ++j) {
        EXPECT_NEAR((*after)[i].svd.s[j], (*plain)[i].svd.s[j], 1e-6f * (*plain)[i].svd.s[0])
            << what << " matrix " << i << " s" << j;
      }
    }
  }
}

// x rounded to nearest-even with `bits` significant bits (the implicit one
// included) and subnormals below `min_normal`: bf16 (8, 2^-126), fp16 (11,
// 2^-14), as the GPU stores a reduced matrix and converts an activation.
float RoundTo(float x, int bits, float min_normal) {
  if (x == 0.0f || !std::isfinite(x)) return x;
  int e = 0;
  std::frexp(std::max(std::abs(x), min_normal), &e);  // |x| in [2^(e-1), 2^e)
  const double quantum = std::ldexp(1.0, e - bits);
  return static_cast<float>(std::nearbyint(x / quantum) * quantum);
}
float RoundTo(float x, DType dt) {
  return dt == DType::kBF16 ? RoundTo(x, 8, std::ldexp(1.0f, -126))
                            : RoundTo(x, 11, std::ldexp(1.0f, -14));
}
std::vector<float> RoundAll(std::vector<float> v, DType dt) {
  for (float& x : v) x = RoundTo(x, dt);
  return v;
}
// The storage type's unit roundoff: 2^-8 (bf16), 2^-11 (fp16).
float UnitRoundoff(DType dt) { return dt == DType::kBF16 ? 1.0f / 256 : 1.0f / 2048; }

// Entries with |got − want| > kTol·max(1, |want|) + rel·|want|: the fp32
// tolerance (both sides sum the same rounded products in fp32, in different
// orders), plus `rel` for one more rounding of the output. At most three are
// described in *detail.
int64_t CountOutside(const std::vector<float>& got, const std::vector<float>& want, float rel,
                     std::string* detail) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float bound = kTol * std::max(1.0f, std::abs(want[i])) + rel * std::abs(want[i]);
    if (!(std::abs(got[i] - want[i]) <= bound)) {
      if (++bad <= 3) {
        *detail += " [" + std::to_string(i) + "] got " + std::to_string(got[i]) + " want " +
                   std::to_string(want[i]);
      }
    }
  }
  return bad;
}

// y = x·Wᵀ + b on the host, in double, from the given operands.
std::vector<float> HostLinear(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, int64_t n, int64_t k, int64_t m) {
  std::vector<float> y(n * m);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < m; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int64_t j = 0; j < k; ++j) s += double(x[i * k + j]) * w[o * k + j];
      y[i * m + o] = static_cast<float>(s);
    }
  }
  return y;
}

// Without a GPU: the GPU's bf16/fp16 product (rounded operands, fp32 sums in
// another order: blocks of 16, as tensor-core tiles add) simulated on the
// host. Against the CPU product of the rounded operands it stays within the
// accumulation bound; against the product of the unrounded inputs (the
// comparison this test replaced) it leaves the old tolerance.
TEST(ReducedPrecisionToleranceTest, RoundedOperandsBoundHoldsAndUnroundedToleranceDoesNot) {
  const int64_t n = 9, k = 576, m = 300;
  const std::vector<float> xh = Random(n * k, -1.0f, 1.0f, 11), wh = Random(m * k, -1.0f, 1.0f, 12);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(DTypeName(dt));
    const std::vector<float> xr = RoundAll(xh, dt), wr = RoundAll(wh, dt);
    std::vector<float> simulated(n * m);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t o = 0; o < m; ++o) {
        float total = 0.0f;
        for (int64_t j0 = 0; j0 < k; j0 += 16) {
          float block = 0.0f;
          for (int64_t j = j0; j < std::min(k, j0 + 16); ++j)
            block += xr[i * k + j] * wr[o * k + j];
          total += block;
        }
        simulated[i * m + o] = total;
      }
    }
    auto cpu = MakeCpuBackend();
    Tensor x = cpu->FromHost(xr.data(), n, k), w = cpu->FromHost(wr.data(), m, k);
    Tensor y = cpu->Empty(n, m);
    cpu->Linear(x, w, nullptr, &y);
    std::vector<float> want(n * m);
    cpu->ToHost(y, want.data());
    std::string detail;
    EXPECT_EQ(CountOutside(simulated, want, 0.0f, &detail), 0) << detail;
    // The old comparison: the product of the unrounded inputs, within 3e-2
    // (bf16) or 4e-3 (fp16) relative above 1.
    const std::vector<float> exact = HostLinear(xh, wh, {}, n, k, m);
    const float old_tol = dt == DType::kBF16 ? 3e-2f : 4e-3f;
    int64_t old_bad = 0;
    for (int64_t i = 0; i < n * m; ++i) {
      old_bad += std::abs(simulated[i] - exact[i]) > old_tol * std::max(1.0f, std::abs(exact[i]));
    }
    EXPECT_GT(old_bad, 0) << "the rounding error should exceed the old tolerance somewhere";
  }
}

// Resident matrices in bf16/fp16 (fp32 accumulation) against the CPU backend
// given the same rounded operands the GPU computes with (the reduced matrix
// as stored, the fp32 activation converted to the same type), within the
// fp32 accumulation bound; conversions exact to round-to-nearest-even.
TEST_F(CudaBackendTest, ReducedPrecisionResidentMatrices) {
  for (const char* spec : {"cuda/bf16", "cuda/fp16"}) {
    SCOPED_TRACE(spec);
    auto b = MakeBackend(spec);
    ASSERT_TRUE(b.ok()) << b.status();
    Backend* half = b->get();
    const DType dt = std::string(spec) == "cuda/bf16" ? DType::kBF16 : DType::kF16;
    const int64_t n = 9, k = 576, m = 300;
    const std::vector<float> xh = Random(n * k, -1.0f, 1.0f, 11),
                             wh = Random(m * k, -1.0f, 1.0f, 12), bh = Random(m, -1.0f, 1.0f, 13);
    const std::vector<float> xr = RoundAll(xh, dt), wr = RoundAll(wh, dt);
    Tensor x = half->FromHost(xh.data(), n, k), w = half->FromHost(wh.data(), m, k),
           bias = half->FromHost(bh.data(), 1, m);
    EXPECT_EQ(w.dtype(), dt);
    EXPECT_EQ(bias.dtype(), DType::kF32);  // vectors stay fp32
    Tensor xa = half->Empty(n, k);
    EXPECT_EQ(xa.dtype(), DType::kF32);
    half->Copy(x, &xa);  // a reduced matrix converted into an fp32 activation
    Tensor y = half->Empty(n, m);
    half->Linear(xa, w, &bias, &y);
    std::vector<float> got(n * m);
    half->ToHost(y, got.data());
    std::string detail;
    EXPECT_EQ(CountOutside(got, HostLinear(xr, wr, bh, n, k, m), 0.0f, &detail), 0)
        << "Linear" << detail;
    // ToHost of a reduced matrix gives each entry rounded once, to nearest even.
    std::vector<float> wback(m * k);
    half->ToHost(w, wback.data());
    EXPECT_EQ(wback, wr);
    // Copy into a reduced matrix and back is exact; a dense edit W ← us·vᵀ
    // writes a reduced output (one more rounding of the fp32 result).
    Tensor saved = half->Empty(m, k);
    half->Copy(w, &saved);
    const std::vector<float> uh = Random(m * 4, -1.0f, 1.0f, 14),
                             vh = Random(k * 4, -1.0f, 1.0f, 15);
    const std::vector<float> ur = RoundAll(uh, dt), vr = RoundAll(vh, dt);
    Tensor us = half->FromHost(uh.data(), m, 4), v = half->FromHost(vh.data(), k, 4);
    half->Linear(us, v, nullptr, &w);
    std::vector<float> edited(m * k);
    half->ToHost(w, edited.data());
    const std::vector<float> edit_want = HostLinear(ur, vr, {}, m, 4, k);
    detail.clear();
    EXPECT_EQ(CountOutside(edited, edit_want, UnitRoundoff(dt), &detail), 0) << "edit" << detail;
    half->Copy(saved, &w);
    half->ToHost(w, edited.data());
    EXPECT_EQ(edited, wback);
    // Factored apply: MatMul with a reduced factor (x·v, v is k×4).
    Tensor xv = half->Empty(n, 4);
    half->MatMul(xa, v, &xv);
    std::vector<float> a(n * 4), mm_want(n * 4, 0.0f);
    half->ToHost(xv, a.data());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < 4; ++r) {
        double s = 0;
        for (int64_t j = 0; j < k; ++j) s += double(xr[i * k + j]) * vr[j * 4 + r];
        mm_want[i * 4 + r] = static_cast<float>(s);
      }
    }
    detail.clear();
    EXPECT_EQ(CountOutside(a, mm_want, 0.0f, &detail), 0) << "MatMul" << detail;
    // GatherRows from a reduced table.
    Tensor rows = half->Empty(3, k);
    half->GatherRows(w, {5, 0, 299}, &rows);
    std::vector<float> gr(3 * k);
    half->ToHost(rows, gr.data());
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(gr[j], wback[5 * k + j]);
      EXPECT_EQ(gr[2 * k + j], wback[299 * k + j]);
    }
  }
}

}  // namespace
}  // namespace laserd::kernels
