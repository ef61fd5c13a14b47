// The Gaussian sketch stream (kernels/gaussian_sketch.h): the same values as
// the original single-threaded mt19937_64 + Box–Muller fill (which every
// seeded randomized SVD so far was computed with), whatever the thread split;
// the shared per-seed draw; thread safety.
#include "kernels/gaussian_sketch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace laserd::kernels {
namespace {

// The sketch as it was drawn before the stream got its own file: one loop,
// both Box–Muller outputs of each pair used.
void ReferenceFill(uint64_t seed, float* out, int64_t count) {
  std::mt19937_64 gen(seed);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double kTwoPow53 = 1.0 / 9007199254740992.0;
  for (int64_t i = 0; i < count; i += 2) {
    const double u1 = (static_cast<double>(gen() >> 11) + 1.0) * kTwoPow53;
    const double u2 = static_cast<double>(gen() >> 11) * kTwoPow53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < count) out[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b, size_t count) {
  return a.size() >= count && b.size() >= count &&
         std::memcmp(a.data(), b.data(), count * sizeof(float)) == 0;
}

TEST(GaussianSketchTest, FillEqualsTheSequentialReference) {
  // Small and odd counts, long ones, on one thread and split over several.
  for (int64_t count : {0, 1, 2, 3, 1000, 262145, 600001}) {
    for (uint64_t seed : {0ull, 1ull, 7ull, 0xFFFFFFFFFFFFFFFFull}) {
      std::vector<float> want(count + 1, -99.0f);
      ReferenceFill(seed, want.data(), count);
      for (int threads : {0, 1, 3, 8}) {
        std::vector<float> got(count + 1, -99.0f);
        GaussianFill(seed, got.data(), count, threads);
        EXPECT_TRUE(SameBits(got, want, count + 1))
            << "seed " << seed << " count " << count << " threads " << threads;
        EXPECT_EQ(got[count], -99.0f);  // nothing written past count
      }
    }
  }
}

TEST(GaussianSketchTest, SharedDrawIsAPrefixOfTheStreamAndKept) {
  std::vector<float> want(500000);
  ReferenceFill(1234, want.data(), want.size());
  auto a = GaussianSketch(1234, 300000);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(SameBits(*a, want, 300000));
  // A shorter or equal request of the same seed is the kept draw.
  EXPECT_EQ(GaussianSketch(1234, 1000).get(), a.get());
  EXPECT_EQ(GaussianSketch(1234, 300000).get(), a.get());
  // A longer one draws again; the values agree on the common prefix.
  auto b = GaussianSketch(1234, 500000);
  EXPECT_TRUE(SameBits(*b, want, 500000));
  EXPECT_TRUE(SameBits(*a, *b, 300000));
  // Another seed: other values; then the first seed again: its values.
  auto c = GaussianSketch(99, 1000);
  std::vector<float> other(1000);
  ReferenceFill(99, other.data(), other.size());
  EXPECT_TRUE(SameBits(*c, other, 1000));
  EXPECT_FALSE(SameBits(*c, want, 1000));
  EXPECT_TRUE(SameBits(*GaussianSketch(1234, 10), want, 10));
}

TEST(GaussianSketchTest, ConcurrentRequestsAgree) {
  std::vector<float> want(200000);
  ReferenceFill(555, want.data(), want.size());
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t seed = t % 2 == 0 ? 555 : 556;
      auto s = GaussianSketch(seed, 200000 - 1000 * t);
      ok[t] = seed == 556 || SameBits(*s, want, 200000 - 1000 * t);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_TRUE(ok[t]) << t;
}

}  // namespace
}  // namespace laserd::kernels
