// A decomposition stops soon after it is asked to (kernels::SvdOptions::
// interrupt): a flag flipped from another thread while a randomized SVD with
// many power iterations of a large random matrix runs ends it with the
// interrupt's status within a few iterations, not after all of them.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/gaussian_sketch.h"
#include "kernels/svd.h"

namespace laserd::kernels {
namespace {

using Clock = std::chrono::steady_clock;

TEST(SvdInterruptTest, AFlagFlippedFromAnotherThreadStopsTheDecomposition) {
  const int64_t m = 2048, n = 2048, k = 100;
  std::vector<float> w(m * n);
  GaussianFill(7, w.data(), m * n);
  std::atomic<bool> stop{false};
  std::atomic<int> asked{0};
  SvdOptions o;
  o.method = SvdMethod::kRandomized;
  o.power_iters = 64;
  o.interrupt = [&] {
    ++asked;
    return stop.load() ? absl::CancelledError("stop") : absl::OkStatus();
  };
  Clock::time_point flipped;
  std::thread flipper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    flipped = Clock::now();
    stop = true;
  });
  auto r = ComputeTruncatedSvd(w.data(), m, n, k, o);
  const Clock::time_point returned = Clock::now();
  flipper.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  // It was asked between power iterations and stopped before the last one;
  // one iteration here is two 2048x2048x110 GEMMs and two QRs (well under a
  // second even on a loaded 2-core machine).
  EXPECT_LT(asked.load(), 1 + 64);
  EXPECT_LT(std::chrono::duration<double>(returned - flipped).count(), 2.0);
}

TEST(SvdInterruptTest, AskingChangesNothingComputed) {
  const int64_t m = 300, n = 200, k = 20;
  std::vector<float> w(m * n);
  GaussianFill(3, w.data(), m * n);
  SvdOptions o;
  o.method = SvdMethod::kRandomized;
  o.seed = 5;
  auto plain = ComputeTruncatedSvd(w.data(), m, n, k, o);
  int asked = 0;
  o.interrupt = [&] {
    ++asked;
    return absl::OkStatus();
  };
  auto with = ComputeTruncatedSvd(w.data(), m, n, k, o);
  ASSERT_TRUE(plain.ok() && with.ok());
  EXPECT_EQ(asked, 1 + kDefaultPowerIters);
  EXPECT_EQ(plain->u, with->u);
  EXPECT_EQ(plain->s, with->s);
  EXPECT_EQ(plain->v, with->v);
}

}  // namespace
}  // namespace laserd::kernels
