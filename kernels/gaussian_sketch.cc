#include "kernels/gaussian_sketch.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

namespace laserd::kernels {
namespace {

// Pairs per thread below which the transform stays on one thread.
constexpr int64_t kPairsPerThread = int64_t{1} << 16;
constexpr int kMaxThreads = 8;
constexpr int64_t kMinCoresForThreads = 4;
constexpr int64_t kMaxCached = int64_t{1} << 26;

// Pairs [begin, end) of the transform; words holds two engine words per pair,
// from pair `base` on.
void BoxMuller(const uint64_t* words, int64_t base, int64_t begin, int64_t end, float* out,
               int64_t count) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double kTwoPow53 = 1.0 / 9007199254740992.0;  // 2^-53
  for (int64_t j = begin; j < end; ++j) {
    const uint64_t* w = words + 2 * (j - base);
    const double u1 = (static_cast<double>(w[0] >> 11) + 1.0) * kTwoPow53;  // (0, 1]
    const double u2 = static_cast<double>(w[1] >> 11) * kTwoPow53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    const int64_t i = 2 * j;
    out[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < count) out[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
}

}  // namespace

void GaussianFill(uint64_t seed, float* out, int64_t count, int threads_wanted) {
  if (count <= 0) return;
  const int64_t pairs = (count + 1) / 2;
  // Threads only where there are cores to spare (measured no faster than one
  // thread on a loaded 2-core machine).
  const int64_t hw = std::thread::hardware_concurrency();
  int64_t threads = 1;
  if (threads_wanted > 0) {
    threads = std::min<int64_t>(threads_wanted, pairs);
  } else if (hw >= kMinCoresForThreads) {
    threads = std::clamp<int64_t>(pairs / kPairsPerThread, 1, std::min<int64_t>(hw, kMaxThreads));
  }
  std::mt19937_64 gen(seed);
  if (threads == 1) {
    // In chunks of words, so that no buffer of the whole draw is needed.
    constexpr int64_t kChunk = 4096;
    uint64_t words[2 * kChunk];
    for (int64_t first = 0; first < pairs; first += kChunk) {
      const int64_t len = std::min(kChunk, pairs - first);
      for (int64_t i = 0; i < 2 * len; ++i) words[i] = gen();
      BoxMuller(words, first, first, first + len, out, count);
    }
    return;
  }
  std::vector<uint64_t> words(2 * pairs);
  for (uint64_t& w : words) w = gen();
  std::vector<std::thread> pool;
  const int64_t chunk = (pairs + threads - 1) / threads;
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t begin = t * chunk, end = std::min(pairs, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back(BoxMuller, words.data(), int64_t{0}, begin, end, out, count);
  }
  for (std::thread& th : pool) th.join();
}

std::shared_ptr<const std::vector<float>> GaussianSketch(uint64_t seed, int64_t count) {
  static std::mutex mu;
  static uint64_t cached_seed = 0;
  static std::shared_ptr<const std::vector<float>> cached;
  count = std::max<int64_t>(count, 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (cached != nullptr && cached_seed == seed && static_cast<int64_t>(cached->size()) >= count) {
      return cached;
    }
  }
  // Drawn outside the lock; two threads may draw the same stream at once.
  auto fresh = std::make_shared<std::vector<float>>(count);
  GaussianFill(seed, fresh->data(), count);
  if (count <= kMaxCached) {
    std::lock_guard<std::mutex> lock(mu);
    if (cached == nullptr || cached_seed != seed || static_cast<int64_t>(cached->size()) < count) {
      cached_seed = seed;
      cached = fresh;
    }
  }
  return fresh;
}

}  // namespace laserd::kernels
