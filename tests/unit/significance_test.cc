// McNemar's exact test against scipy.stats.binomtest (values computed once
// with scipy and committed here), SplitMix64 against its published outputs,
// and the paired bootstrap against a plain recomputation and against values
// computed once with a Python reimplementation and numpy.quantile.
#include "engine/eval/significance.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"

namespace laserd::eval {
namespace {

TEST(McNemarTest, MatchesScipyBinomtest) {
  // {b, c, scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue}
  struct Case {
    int64_t b, c;
    double p;
  };
  const Case cases[] = {
      {0, 0, 1},
      {1, 0, 1},
      {0, 5, 0.0625},
      {3, 7, 0.34375},
      {10, 2, 0.03857421875},
      {5, 5, 1},
      {4, 5, 1},
      {30, 12, 0.0079158973348967265},
      {200, 160, 0.03968427883649793},
      {1000, 1100, 0.03072070786424249},
      {0, 1, 1},
      {6, 0, 0.03125},
  };
  for (const Case& c : cases) {
    EXPECT_NEAR(McNemarExactPValue(c.b, c.c), c.p, 1e-12 * std::max(1.0, c.p))
        << "b=" << c.b << " c=" << c.c;
  }
  // Small counts are exact sums of binomial terms: 2 * (1 + 10 + 45) / 1024.
  EXPECT_NEAR(McNemarExactPValue(2, 8), 112.0 / 1024, 1e-14);
}

TEST(SplitMix64Test, PublishedOutputsForSeedZero) {
  SplitMix64 r(0);
  EXPECT_EQ(r.Next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(r.Next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(r.Next(), 0x06c45d188009454fULL);
}

TEST(QuantileTest, LinearInterpolation) {
  const std::vector<double> x = {1, 2, 4, 8};
  EXPECT_DOUBLE_EQ(Quantile(x, 0), 1);
  EXPECT_DOUBLE_EQ(Quantile(x, 1), 8);
  EXPECT_DOUBLE_EQ(Quantile(x, 0.5), 3);        // h = 1.5
  EXPECT_DOUBLE_EQ(Quantile(x, 0.025), 1.075);  // h = 0.075
  EXPECT_DOUBLE_EQ(Quantile(x, 0.975), 7.7);    // h = 2.925
}

struct Data {
  std::vector<PairedOutcome> base, edited;
};

Data TwelveExamples() {
  const int bc[] = {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1};
  const int ec[] = {1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1};
  const double bl[] = {0.5, 2.0, 0.25, 0.75, 1.5, 3.0, 0.125, 2.5, 0.5, 1.75, 2.25, 0.375};
  const double el[] = {0.25, 1.0, 0.5, 1.25, 0.75, 2.5, 0.125, 1.0, 0.25, 1.0, 2.5, 0.5};
  Data d;
  for (int i = 0; i < 12; ++i) {
    d.base.push_back({bc[i] == 1, bl[i]});
    d.edited.push_back({ec[i] == 1, el[i]});
  }
  return d;
}

TEST(PairedTestTest, CountsDeltasAndPValue) {
  const Data d = TwelveExamples();
  auto t = PairedTest(d.base, d.edited, SignificanceOptions{});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->examples, 12);
  EXPECT_EQ(t->improved, 4);
  EXPECT_EQ(t->worsened, 1);
  EXPECT_DOUBLE_EQ(t->p_value, 0.375);  // binomtest(1, 5, 0.5)
  EXPECT_FALSE(t->significant);
  EXPECT_DOUBLE_EQ(t->accuracy_delta, 25.0);
  EXPECT_DOUBLE_EQ(t->log_loss_delta, -0.3229166666666667);
}

TEST(PairedTestTest, BootstrapMatchesPythonReference) {
  const Data d = TwelveExamples();
  // (seed, resamples, confidence) -> numpy.quantile of the Python recomputation.
  SignificanceOptions o;
  o.seed = 1;
  o.resamples = 1000;
  o.confidence = 0.95;
  auto t = PairedTest(d.base, d.edited, o);
  ASSERT_TRUE(t.ok());
  EXPECT_NEAR(t->accuracy_ci_low, -8.333333333333334, 1e-12);
  EXPECT_NEAR(t->accuracy_ci_high, 58.333333333333336, 1e-12);
  EXPECT_NEAR(t->log_loss_ci_low, -0.6148437499999998, 1e-12);
  EXPECT_NEAR(t->log_loss_ci_high, -0.010416666666666666, 1e-12);
  o.seed = 7;
  o.resamples = 200;
  o.confidence = 0.9;
  t = PairedTest(d.base, d.edited, o);
  ASSERT_TRUE(t.ok());
  EXPECT_NEAR(t->accuracy_ci_low, -8.333333333333334, 1e-12);
  EXPECT_NEAR(t->accuracy_ci_high, 50.0, 1e-12);
  EXPECT_NEAR(t->log_loss_ci_low, -0.6156250000000001, 1e-12);
  EXPECT_NEAR(t->log_loss_ci_high, -0.08229166666666701, 1e-12);
}

TEST(PairedTestTest, BootstrapEqualsPlainRecomputation) {
  // 300 examples of a deterministic pattern; the bootstrap recomputed here
  // step by step must give the same bits.
  Data d;
  for (int i = 0; i < 300; ++i) {
    d.base.push_back({i % 3 == 0, 1.0 + (i % 7) * 0.125});
    d.edited.push_back({i % 3 == 0 || i % 5 == 1, 0.875 + (i % 11) * 0.0625});
  }
  SignificanceOptions o;
  o.resamples = 500;
  o.seed = 42;
  auto t = PairedTest(d.base, d.edited, o);
  ASSERT_TRUE(t.ok());
  SplitMix64 rng(42);
  std::vector<double> acc, loss;
  for (int r = 0; r < 500; ++r) {
    double a = 0, l = 0;
    for (int i = 0; i < 300; ++i) {
      const uint64_t j = rng.Below(300);
      a += (d.edited[j].correct ? 100.0 : 0.0) - (d.base[j].correct ? 100.0 : 0.0);
      l += d.edited[j].log_loss - d.base[j].log_loss;
    }
    acc.push_back(a / 300);
    loss.push_back(l / 300);
  }
  std::sort(acc.begin(), acc.end());
  std::sort(loss.begin(), loss.end());
  // h = 499 * 0.025 = 12.475 and 499 * 0.975 = 486.525.
  EXPECT_DOUBLE_EQ(t->accuracy_ci_low, acc[12] + 0.475 * (acc[13] - acc[12]));
  EXPECT_DOUBLE_EQ(t->accuracy_ci_high, acc[486] + 0.525 * (acc[487] - acc[486]));
  EXPECT_DOUBLE_EQ(t->log_loss_ci_low, loss[12] + 0.475 * (loss[13] - loss[12]));
  EXPECT_DOUBLE_EQ(t->log_loss_ci_high, loss[486] + 0.525 * (loss[487] - loss[486]));
  // b: i%3 != 0 and i%5 == 1 -> 40 of 300; c = 0.
  EXPECT_EQ(t->improved, 40);
  EXPECT_EQ(t->worsened, 0);
  EXPECT_TRUE(t->significant);
  EXPECT_NEAR(t->p_value, 2.0 / (1LL << 40), 1e-24);  // 2 * 0.5^40
  // Same seed, same numbers.
  auto again = PairedTest(d.base, d.edited, o);
  EXPECT_EQ(again->accuracy_ci_low, t->accuracy_ci_low);
  EXPECT_EQ(again->log_loss_ci_high, t->log_loss_ci_high);
}

TEST(PairedTestTest, RejectsMismatchAndBadOptions) {
  std::vector<PairedOutcome> a(3), b(2);
  EXPECT_EQ(PairedTest(a, b, {}).status().code(), absl::StatusCode::kInvalidArgument);
  SignificanceOptions o;
  o.resamples = 0;
  EXPECT_EQ(PairedTest(a, a, o).status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = PairedTest({}, {}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->examples, 0);
  EXPECT_EQ(empty->p_value, 1);
  EXPECT_FALSE(empty->significant);
}

}  // namespace
}  // namespace laserd::eval
