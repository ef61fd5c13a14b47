// SVD planning (kernels/svd_plan.h): the method, sketch width and power
// iterations every backend runs, the argument checks, and that the host path
// is the plan's computation (ComputeTruncatedSvd = PlanSvd + RunSvdPlan).
#include "kernels/svd_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "kernels/svd.h"

namespace laserd::kernels {
namespace {

using ::testing::HasSubstr;

SvdOptions Method(SvdMethod m) {
  SvdOptions o;
  o.method = m;
  return o;
}

TEST(SvdPlanTest, ResolvesEveryMethod) {
  SvdPlan p = *PlanSvd(300, 200, 20, Method(SvdMethod::kExact));
  EXPECT_EQ(p.method, SvdMethod::kExact);
  EXPECT_FALSE(p.randomized());
  EXPECT_EQ(p.m, 300);
  EXPECT_EQ(p.n, 200);
  EXPECT_EQ(p.k, 20);

  p = *PlanSvd(300, 200, 20, Method(SvdMethod::kRandomized));
  EXPECT_EQ(p.method, SvdMethod::kRandomized);
  EXPECT_EQ(p.l, 30);  // k + max(10, k/2)
  EXPECT_EQ(p.q, kDefaultPowerIters);
  p = *PlanSvd(300, 200, 100, Method(SvdMethod::kRandomized));
  EXPECT_EQ(p.l, 150);
  p = *PlanSvd(300, 200, 190, Method(SvdMethod::kRandomized));
  EXPECT_EQ(p.l, 200);  // clamped to min(m, n)

  SvdOptions o = Method(SvdMethod::kRandomized);
  o.oversampling = 3;
  o.power_iters = 0;
  o.seed = 42;
  p = *PlanSvd(300, 200, 20, o);
  EXPECT_EQ(p.l, 23);
  EXPECT_EQ(p.q, 0);
  EXPECT_EQ(p.seed, 42u);

  p = *PlanSvd(300, 200, 20, Method(SvdMethod::kPaper));
  EXPECT_EQ(p.method, SvdMethod::kPaper);
  EXPECT_TRUE(p.randomized());
  EXPECT_EQ(p.l, 20);
  EXPECT_EQ(p.q, kPaperPowerIters);
  o = Method(SvdMethod::kPaper);
  o.encoder_model = true;
  EXPECT_EQ(PlanSvd(300, 200, 20, o)->q, kPaperEncoderPowerIters);
  o.oversampling = 0;
  o.power_iters = 7;
  EXPECT_EQ(PlanSvd(300, 200, 20, o)->q, 7);
}

TEST(SvdPlanTest, AutoFollowsTheCostModel) {
  for (int64_t k : {5, 100, 161, 162}) {
    const SvdPlan p = *PlanSvd(576, 1536, k, Method(SvdMethod::kAuto));
    EXPECT_EQ(p.method,
              AutoPicksRandomized(576, 1536, k) ? SvdMethod::kRandomized : SvdMethod::kExact)
        << k;
  }
  EXPECT_EQ(PlanSvd(576, 1536, 161, Method(SvdMethod::kAuto))->method, SvdMethod::kRandomized);
  EXPECT_EQ(PlanSvd(576, 1536, 162, Method(SvdMethod::kAuto))->method, SvdMethod::kExact);
  // Auto resolves to randomized with the default p and q.
  const SvdPlan p = *PlanSvd(576, 1536, 161, Method(SvdMethod::kAuto));
  EXPECT_EQ(p.l, 161 + 80);
  EXPECT_EQ(p.q, kDefaultPowerIters);
}

TEST(SvdPlanTest, RejectsBadArgumentsNamingThem) {
  SvdOptions o;
  for (auto [m, n] : {std::pair<int64_t, int64_t>{0, 5}, {5, 0}}) {
    auto r = PlanSvd(m, n, 1, o);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("empty"));
  }
  for (int64_t k : {0, -1, 21}) {
    EXPECT_THAT(PlanSvd(30, 20, k, o).status().message(), HasSubstr("k_max"));
  }
  o.oversampling = -2;
  EXPECT_THAT(PlanSvd(30, 20, 5, o).status().message(), HasSubstr("svd.oversampling"));
  o.oversampling = -1;
  o.power_iters = -2;
  EXPECT_THAT(PlanSvd(30, 20, 5, o).status().message(), HasSubstr("svd.power_iters"));
  o = Method(SvdMethod::kPaper);
  o.oversampling = 5;
  EXPECT_THAT(PlanSvd(30, 20, 5, o).status().message(), HasSubstr("no oversampling"));
  // Exact ignores oversampling.
  o.method = SvdMethod::kExact;
  EXPECT_TRUE(PlanSvd(30, 20, 5, o).ok());
}

TEST(SvdPlanTest, BudgetBytes) {
  const SvdPlan e = *PlanSvd(30, 20, 5, Method(SvdMethod::kExact));
  EXPECT_EQ(e.ResultBytes(), 4 * ((30 + 20 + 1) * 5 + 20));
  EXPECT_EQ(e.WorkingBytes(), 4 * (30 * 20 + 2 * 50 * 20 + 50 * 5));
  const SvdPlan r = *PlanSvd(30, 20, 5, Method(SvdMethod::kRandomized));
  EXPECT_EQ(r.ResultBytes(), 4 * (30 + 20 + 1) * 5);
  EXPECT_EQ(r.WorkingBytes(), 4 * (30 * 20 + 2 * 50 * 15 + 50 * 5));
}

TEST(SvdPlanTest, HostPathIsThePlansComputation) {
  const int64_t m = 40, n = 60;
  std::vector<float> w(m * n);
  GaussianFill(3, w.data(), w.size());
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized, SvdMethod::kPaper}) {
    SvdOptions o = Method(method);
    o.seed = 11;
    const TruncatedSvd want = *ComputeTruncatedSvd(w.data(), m, n, 8, o);
    SvdPlan plan = *PlanSvd(m, n, 8, o);
    // Without a sketch attached the plan draws it itself: the same values.
    const TruncatedSvd got = *RunSvdPlan(w.data(), plan);
    EXPECT_EQ(got.method, method);
    EXPECT_EQ(got.u, want.u);
    EXPECT_EQ(got.s, want.s);
    EXPECT_EQ(got.v, want.v);
    EXPECT_EQ(got.spectrum, want.spectrum);
    EXPECT_EQ(got.frobenius_sq, want.frobenius_sq);
    if (plan.randomized()) {
      // A longer shared stream gives the same factors (prefix-stable).
      plan.sketch = GaussianSketch(plan.seed, n * plan.l + 1001);
      const TruncatedSvd shared = *RunSvdPlan(w.data(), plan);
      EXPECT_EQ(shared.u, want.u);
      EXPECT_EQ(shared.v, want.v);
    }
  }
}

TEST(SvdPlanTest, ParsesNames) {
  EXPECT_EQ(*ParseSvdMethod("exact"), SvdMethod::kExact);
  EXPECT_EQ(*ParseSvdMethod("auto"), SvdMethod::kAuto);
  EXPECT_STREQ(SvdMethodName(SvdMethod::kPaper), "paper");
  EXPECT_EQ(*ParseGpuSolver("gesvdp"), GpuSolver::kGesvdp);
  EXPECT_STREQ(GpuSolverName(GpuSolver::kGram), "gram");
  EXPECT_THAT(ParseGpuSolver("qr").status().message(), HasSubstr("gesvd, gesvdp, gram"));
}

}  // namespace
}  // namespace laserd::kernels
