// CPU backend ops with exact expectations: SiLU against a double-precision
// reference, prefix-tree attention and RoPE against the same sequences packed,
// the buffer pool's reuse, and decompositions (Backend::Decompose through
// DecomposeOnBackend) equal to the host path bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {
namespace {

std::vector<float> Host(Backend& be, const Tensor& t) {
  std::vector<float> v(t.size());
  be.ToHost(t, v.data());
  return v;
}

TEST(CpuBackendTest, SiluAndGatedSiluMatchDoublePrecision) {
  auto be = MakeCpuBackend();
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.0371f) x.push_back(v);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  x.push_back(1e-30f);
  x.push_back(-1e-30f);
  const int64_t n = static_cast<int64_t>(x.size());
  Tensor t = be->FromHost(x.data(), 1, n);
  be->Activate(&t, Activation::kSilu);
  std::vector<float> up(n, 0.5f);
  Tensor g = be->FromHost(x.data(), 1, n), u = be->FromHost(up.data(), 1, n);
  be->GatedActivate(&g, u, Activation::kSilu);
  const std::vector<float> a = Host(*be, t), b = Host(*be, g);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double want = x[i] / (1.0 + std::exp(-static_cast<double>(x[i])));
    const double tol = 4e-7 * std::fabs(want) + 1e-35;
    EXPECT_NEAR(a[i], want, tol) << "x = " << x[i];
    EXPECT_NEAR(b[i], 0.5 * want, tol) << "x = " << x[i];
    if (std::fabs(want) > 1e-30) worst = std::max(worst, std::fabs(a[i] - want) / std::fabs(want));
  }
  std::printf("SiLU max relative error %.3g over %lld points\n", worst, static_cast<long long>(n));
}

// Three sequences sharing prefixes, once packed and once as a prefix tree.
TEST(CpuBackendTest, PrefixTreeEqualsPackedSequences) {
  auto be = MakeCpuBackend();
  ASSERT_TRUE(be->SupportsPrefixTree());
  // Sequences as token paths: a b c d / a b e / a f. Tree rows: a0 b1 c2 d3 e4 f5.
  const std::vector<std::vector<int>> seq_rows = {{0, 1, 2, 3}, {0, 1, 4}, {0, 5}};
  const SeqLayout tree = SeqLayout::FromParents({-1, 0, 1, 2, 1, 0});
  EXPECT_EQ(tree.position, (std::vector<int64_t>{0, 1, 2, 3, 2, 1}));
  EXPECT_EQ(tree.total_rows(), 6);
  const SeqLayout packed = SeqLayout::FromLengths({4, 3, 2});
  const int heads = 4, kv_heads = 2, hd = 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  auto rand = [&](int64_t rows, int64_t cols) {
    std::vector<float> v(rows * cols);
    for (float& f : v) f = nd(rng);
    return v;
  };
  const std::vector<float> q = rand(6, heads * hd), k = rand(6, kv_heads * hd),
                           v = rand(6, kv_heads * hd);
  auto expand = [&](const std::vector<float>& t, int64_t cols) {
    std::vector<float> o;
    for (const auto& s : seq_rows)
      for (int r : s) o.insert(o.end(), t.begin() + r * cols, t.begin() + (r + 1) * cols);
    return o;
  };
  std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kGptj}) {
    Tensor tq = be->FromHost(q.data(), 6, heads * hd),
           tk = be->FromHost(k.data(), 6, kv_heads * hd),
           tv = be->FromHost(v.data(), 6, kv_heads * hd), to = be->Empty(6, heads * hd);
    const std::vector<float> pq = expand(q, heads * hd), pk = expand(k, kv_heads * hd),
                             pv = expand(v, kv_heads * hd);
    Tensor sq = be->FromHost(pq.data(), 9, heads * hd),
           sk = be->FromHost(pk.data(), 9, kv_heads * hd),
           sv = be->FromHost(pv.data(), 9, kv_heads * hd), so = be->Empty(9, heads * hd);
    be->Rope(&tq, tree, heads, hd, 8, inv_freq, style, 1.0f);
    be->Rope(&tk, tree, kv_heads, hd, 8, inv_freq, style, 1.0f);
    be->Rope(&sq, packed, heads, hd, 8, inv_freq, style, 1.0f);
    be->Rope(&sk, packed, kv_heads, hd, 8, inv_freq, style, 1.0f);
    // RoPE is per row: bit-identical.
    EXPECT_EQ(expand(Host(*be, tq), heads * hd), Host(*be, sq));
    EXPECT_EQ(expand(Host(*be, tk), kv_heads * hd), Host(*be, sk));
    be->Attention(tq, tk, tv, tree, heads, kv_heads, hd, {0.25f}, &to);
    be->Attention(sq, sk, sv, packed, heads, kv_heads, hd, {0.25f}, &so);
    const std::vector<float> got = expand(Host(*be, to), heads * hd), want = Host(*be, so);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
  }
}

// Sliding-window and soft-capped attention against a double-precision
// reference written from the definition, packed and as a prefix tree; with
// window 0 and no cap it is plain causal attention.
TEST(CpuBackendTest, WindowedSoftCappedAttentionMatchesDefinition) {
  auto be = MakeCpuBackend();
  const int heads = 4, kv_heads = 2, hd = 8;
  const std::vector<int64_t> lengths = {1, 6, 11};
  const SeqLayout packed = SeqLayout::FromLengths(lengths);
  const int64_t rows = packed.total_rows();
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> q(rows * heads * hd), k(rows * kv_heads * hd), v(rows * kv_heads * hd);
  for (auto* x : {&q, &k, &v})
    for (float& f : *x) f = nd(rng);
  // The same sequences as a tree: each sequence a chain of its own.
  std::vector<int64_t> parent;
  for (int64_t len : lengths)
    for (int64_t p = 0; p < len; ++p) parent.push_back(p == 0 ? -1 : int64_t(parent.size()) - 1);
  const SeqLayout tree = SeqLayout::FromParents(parent);
  for (const AttentionParams& ap :
       {AttentionParams{0.3f}, AttentionParams{0.3f, 3}, AttentionParams{0.3f, 0, 1.5f},
        AttentionParams{0.9f, 4, 2.0f}, AttentionParams{0.3f, 1}}) {
    // Reference.
    std::vector<double> want(rows * heads * hd, 0.0);
    for (size_t s = 0; s < lengths.size(); ++s) {
      const int64_t off = packed.offsets[s];
      for (int64_t i = 0; i < lengths[s]; ++i)
        for (int h = 0; h < heads; ++h) {
          const int kh = h / (heads / kv_heads);
          const int64_t first = ap.window > 0 ? std::max<int64_t>(0, i - ap.window + 1) : 0;
          std::vector<double> w;
          double mx = -1e300, sum = 0;
          for (int64_t j = first; j <= i; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d)
              dot += double(q[(off + i) * heads * hd + h * hd + d]) *
                     k[(off + j) * kv_heads * hd + kh * hd + d];
            double sc = ap.scale * dot;
            if (ap.softcap > 0) sc = ap.softcap * std::tanh(sc / ap.softcap);
            w.push_back(sc);
            mx = std::max(mx, sc);
          }
          for (double& x : w) sum += (x = std::exp(x - mx));
          for (int64_t j = first; j <= i; ++j)
            for (int d = 0; d < hd; ++d)
              want[(off + i) * heads * hd + h * hd + d] +=
                  w[j - first] / sum * v[(off + j) * kv_heads * hd + kh * hd + d];
        }
    }
    for (const SeqLayout* layout : {&packed, &tree}) {
      Tensor tq = be->FromHost(q.data(), rows, heads * hd);
      Tensor tk = be->FromHost(k.data(), rows, kv_heads * hd);
      Tensor tv = be->FromHost(v.data(), rows, kv_heads * hd);
      Tensor out = be->Empty(rows, heads * hd);
      be->Attention(tq, tk, tv, *layout, heads, kv_heads, hd, ap, &out);
      const std::vector<float> got = Host(*be, out);
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 2e-5)
            << (layout->is_tree() ? "tree" : "packed") << " window " << ap.window << " softcap "
            << ap.softcap << " element " << i;
      }
    }
    // AttentionRows: the keys and values stored in a shuffled order (as a KV
    // cache holds them), each query given the list of its sequence's rows.
    std::vector<int64_t> perm(rows);
    for (int64_t r = 0; r < rows; ++r) perm[r] = (r * 7 + 3) % rows;  // rows = 18, 7 coprime
    std::vector<float> ks(k.size()), vs(v.size());
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(&k[r * kv_heads * hd], kv_heads * hd, &ks[perm[r] * kv_heads * hd]);
      std::copy_n(&v[r * kv_heads * hd], kv_heads * hd, &vs[perm[r] * kv_heads * hd]);
    }
    std::vector<int64_t> offsets = {0}, keys;
    for (size_t s = 0; s < lengths.size(); ++s) {
      for (int64_t i = 0; i < lengths[s]; ++i) {
        for (int64_t j = 0; j <= i; ++j) keys.push_back(perm[packed.offsets[s] + j]);
        offsets.push_back(static_cast<int64_t>(keys.size()));
      }
    }
    Tensor tq = be->FromHost(q.data(), rows, heads * hd);
    Tensor tk = be->FromHost(ks.data(), rows, kv_heads * hd);
    Tensor tv = be->FromHost(vs.data(), rows, kv_heads * hd);
    Tensor out = be->Empty(rows, heads * hd);
    be->AttentionRows(tq, tk, tv, offsets, keys, heads, kv_heads, hd, ap, &out);
    const std::vector<float> got = Host(*be, out);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 2e-5)
          << "AttentionRows window " << ap.window << " softcap " << ap.softcap << " element " << i;
    }
  }
}

TEST(CpuBackendTest, RowRangeIsAView) {
  auto be = MakeCpuBackend();
  const std::vector<float> x = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  Tensor t = be->FromHost(x.data(), 4, 3);
  Tensor mid = t.RowRange(1, 2);
  EXPECT_EQ(mid.rows(), 2);
  EXPECT_EQ(mid.cols(), 3);
  const std::vector<float> two = {-1, -2, -3, -4, -5, -6};
  be->Copy(be->FromHost(two.data(), 2, 3), &mid);
  EXPECT_EQ(Host(*be, t), (std::vector<float>{0, 1, 2, -1, -2, -3, -4, -5, -6, 9, 10, 11}));
}

TEST(CpuBackendTest, ScaleAndSoftCap) {
  auto be = MakeCpuBackend();
  const std::vector<float> x = {-1000.0f, -30.0f, -1.0f, 0.0f, 0.5f, 29.0f, 1e6f};
  Tensor t = be->FromHost(x.data(), 1, x.size());
  be->Scale(&t, 2.0f);
  be->SoftCap(&t, 30.0f);
  const std::vector<float> got = Host(*be, t);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(got[i], 30.0 * std::tanh(2.0 * x[i] / 30.0), 2e-6) << x[i];
  }
  EXPECT_EQ(got[3], 0.0f);
  EXPECT_EQ(got[6], 30.0f);
}

TEST(CpuBackendTest, FreedBuffersAreReusedAndIndependent) {
  auto be = MakeCpuBackend();
  const float* first;
  {
    Tensor a = be->Empty(1000, 1000);
    first = a.data();
    a.data()[0] = 42.0f;
  }
  Tensor b = be->Empty(1000, 1000);  // same size: the freed buffer comes back
  EXPECT_EQ(b.data(), first);
  Tensor c = be->Empty(1000, 1000);  // b still holds it: a new one
  EXPECT_NE(c.data(), first);
  Tensor d = be->Empty(10, 10);
  EXPECT_NE(d.data(), first);
  // A tensor may outlive its backend.
  Tensor e = be->Empty(4, 4);
  be.reset();
  e.data()[15] = 1.0f;
  EXPECT_EQ(e.data()[15], 1.0f);
}

TEST(CpuBackendTest, DecomposeIsTheHostPathForEveryMatrixOfAGroup) {
  auto be = MakeCpuBackend();
  EXPECT_TRUE(be->DecomposesOnHost());
  // Two shapes, interleaved: grouped by shape, answered in input order.
  const int64_t m = 40, n = 56;
  std::vector<std::vector<float>> hosts;
  std::vector<Tensor> ts;
  for (int i = 0; i < 5; ++i) {
    const int64_t rows = i % 2 == 0 ? m : n, cols = i % 2 == 0 ? n : m;
    hosts.emplace_back(rows * cols);
    GaussianFill(100 + i, hosts.back().data(), rows * cols);
    ts.push_back(be->FromHost(hosts.back().data(), rows, cols));
  }
  std::vector<const Tensor*> ws;
  for (const Tensor& t : ts) ws.push_back(&t);
  const std::vector<int64_t> ranks = {10, 0, 3, 10};
  for (SvdMethod method :
       {SvdMethod::kExact, SvdMethod::kRandomized, SvdMethod::kPaper, SvdMethod::kAuto}) {
    SvdOptions o;
    o.method = method;
    o.seed = 5;
    auto got = DecomposeOnBackend(be.get(), ws, 10, o, ranks);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), ws.size());
    for (size_t i = 0; i < ws.size(); ++i) {
      auto want = ComputeTruncatedSvd(hosts[i].data(), ws[i]->rows(), ws[i]->cols(), 10, o);
      ASSERT_TRUE(want.ok());
      auto errs = TruncationErrors(hosts[i].data(), *want, ranks);
      ASSERT_TRUE(errs.ok());
      const BackendSvd& b = (*got)[i];
      EXPECT_EQ(b.svd.m, ws[i]->rows());
      EXPECT_EQ(b.svd.method, want->method);
      EXPECT_EQ(b.svd.u, want->u);
      EXPECT_EQ(b.svd.s, want->s);
      EXPECT_EQ(b.svd.v, want->v);
      EXPECT_EQ(b.svd.spectrum, want->spectrum);
      EXPECT_EQ(b.errors, *errs);
      // Alone: the same bits as in the group.
      auto alone = DecomposeOnBackend(be.get(), {ws[i]}, 10, o, ranks);
      ASSERT_TRUE(alone.ok());
      EXPECT_EQ((*alone)[0].svd.u, b.svd.u);
      EXPECT_EQ((*alone)[0].errors, b.errors);
    }
  }
  SvdOptions o;
  EXPECT_EQ(DecomposeOnBackend(be.get(), ws, 41, o, {}).status().code(),
            absl::StatusCode::kInvalidArgument);  // k_max > min(m, n)
  EXPECT_EQ(DecomposeOnBackend(be.get(), ws, 10, o, {11}).status().code(),
            absl::StatusCode::kInvalidArgument);  // an error rank above k_max
  EXPECT_EQ(DecomposeOnBackend(be.get(), {nullptr}, 10, o, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace laserd::kernels
