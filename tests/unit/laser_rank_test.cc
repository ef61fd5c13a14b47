// ρ→k (k = floor(ρ·min(m, n)), at least 1) and the paper's rate form (ρ = 1 − rate/10,
// computed as the paper's Python does; docs/laser.md), and matrix-type names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/laser/rank.h"

namespace laserd::laser {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Expected values from Python: int(mn * ((10 - rate) * 0.1)) (committed here;
// rerun with
//   python3 -c "print([[int(mn*((10-r)*0.1)) for r in (1,2,4,6,8,9,9.5,9.9,9.95)] for mn in
//   (4096,768)])"
struct RateCase {
  double rate;
  int64_t k4096;
  int64_t k768;
};
constexpr RateCase kRateTable[] = {
    {1, 3686, 691}, {2, 3276, 614}, {4, 2457, 460}, {6, 1638, 307}, {8, 819, 153},
    {9, 409, 76},   {9.5, 204, 38}, {9.9, 40, 7},   {9.95, 20, 3},
};

TEST(KeptRankFromRate, MatchesPythonExpressionTable) {
  for (const RateCase& c : kRateTable) {
    // The minimum dimension decides, whichever side it is.
    EXPECT_EQ(*KeptRankFromRate(4096, 4096, c.rate), c.k4096) << c.rate;
    EXPECT_EQ(*KeptRankFromRate(4096, 16384, c.rate), c.k4096) << c.rate;
    EXPECT_EQ(*KeptRankFromRate(768, 3072, c.rate), c.k768) << c.rate;
    EXPECT_EQ(*KeptRankFromRate(3072, 768, c.rate), c.k768) << c.rate;
  }
}

TEST(KeptRankFromRate, RoundingDiffersFromRhoWhereDoubleArithmeticSaysSo) {
  // (10 - 9.9) * 0.1 = 0.009999999999999966, so 4096 of it is 40.9599..., 40.
  EXPECT_EQ(*KeptRankFromRate(4096, 4096, 9.9), 40);
  // (10 - 7.2) * 0.1 * 100 = 27.999999999999996 in double: the paper's code
  // keeps 27, while rho = 0.28 (100 * 0.28 = 28.000000000000004) keeps 28.
  EXPECT_EQ(*KeptRankFromRate(100, 300, 7.2), 27);
  EXPECT_EQ(*KeptRankFromRho(100, 300, 0.28), 28);
  // rate 0 keeps everything; tiny fractions still keep one
  // (Python's int(768 * ((10 - 9.999) * 0.1)) is 0).
  EXPECT_EQ(*KeptRankFromRate(576, 1536, 0), 576);
  EXPECT_EQ(*KeptRankFromRate(768, 768, 9.999), 1);
}

TEST(KeptRankFromRate, RejectsOutOfRange) {
  for (double r : {-0.5, 10.0, 11.0, std::nan("")}) {
    auto k = KeptRankFromRate(768, 768, r);
    ASSERT_FALSE(k.ok()) << r;
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(k.status().message(), HasSubstr("rate"));
  }
  EXPECT_FALSE(KeptRankFromRate(0, 768, 5).ok());
}

TEST(KeptRankFromRho, FloorOfMinDimTimesRho) {
  EXPECT_EQ(*KeptRankFromRho(576, 1536, 1.0), 576);
  EXPECT_EQ(*KeptRankFromRho(1536, 576, 0.5), 288);
  EXPECT_EQ(*KeptRankFromRho(576, 1536, 0.1), 57);    // 57.6
  EXPECT_EQ(*KeptRankFromRho(4096, 4096, 0.01), 40);  // 40.96
  EXPECT_EQ(*KeptRankFromRho(768, 768, 0.05), 38);    // 38.4
  EXPECT_EQ(*KeptRankFromRho(576, 576, 0.9), 518);    // 518.4
  // At least 1.
  EXPECT_EQ(*KeptRankFromRho(576, 1536, 0.001), 1);
  EXPECT_EQ(*KeptRankFromRho(576, 1536, 1e-300), 1);
  EXPECT_EQ(*KeptRankFromRho(1, 1, 0.5), 1);
}

TEST(KeptRankFromRho, RejectsOutOfRangeNamingTheField) {
  for (double r : {0.0, -0.1, 1.0000001, 2.0, std::nan("")}) {
    auto k = KeptRankFromRho(576, 1536, r);
    ASSERT_FALSE(k.ok()) << r;
    EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(k.status().message(), HasSubstr("rho"));
  }
  auto k = KeptRankFromRho(0, 5, 0.5);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
}

const std::vector<std::string> kLlama = {"attn.q", "attn.k", "attn.v", "attn.o",
                                         "mlp.in", "mlp.up", "mlp.out"};
const std::vector<std::string> kGpt2 = {"attn.q", "attn.k", "attn.v",
                                        "attn.o", "mlp.in", "mlp.out"};

TEST(MatrixTypes, AliasesMapToCanonicalNames) {
  EXPECT_EQ(*CanonicalMatrixType("fc_in"), "mlp.in");
  EXPECT_EQ(*CanonicalMatrixType("fc_up"), "mlp.up");
  EXPECT_EQ(*CanonicalMatrixType("fc_out"), "mlp.out");
  EXPECT_EQ(*CanonicalMatrixType("q_proj"), "attn.q");
  EXPECT_EQ(*CanonicalMatrixType("k_proj"), "attn.k");
  EXPECT_EQ(*CanonicalMatrixType("v_proj"), "attn.v");
  EXPECT_EQ(*CanonicalMatrixType("out_proj"), "attn.o");
  EXPECT_EQ(*CanonicalMatrixType("attn.o"), "attn.o");
}

TEST(MatrixTypes, GroupsExpandAgainstTheModel) {
  EXPECT_EQ(*ExpandMatrixTypes({"all"}, kLlama), kLlama);
  EXPECT_THAT(*ExpandMatrixTypes({"mlp"}, kLlama), ElementsAre("mlp.in", "mlp.up", "mlp.out"));
  EXPECT_THAT(*ExpandMatrixTypes({"mlp"}, kGpt2), ElementsAre("mlp.in", "mlp.out"));
  EXPECT_THAT(*ExpandMatrixTypes({"attn"}, kGpt2),
              ElementsAre("attn.q", "attn.k", "attn.v", "attn.o"));
  EXPECT_EQ(*ExpandMatrixTypes({"all"}, kGpt2), kGpt2);
  // Deduplicated, canonical order, aliases and canonical names mixed.
  EXPECT_THAT(*ExpandMatrixTypes({"fc_out", "q_proj", "attn.q", "mlp.out", "v_proj"}, kLlama),
              ElementsAre("attn.q", "attn.v", "mlp.out"));
  EXPECT_THAT(*ExpandMatrixTypes({"attn", "fc_in"}, kLlama),
              ElementsAre("attn.q", "attn.k", "attn.v", "attn.o", "mlp.in"));
}

TEST(MatrixTypes, UnknownNameListsValidOnes) {
  auto r = ExpandMatrixTypes({"mlp.gate"}, kLlama);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'mlp.gate'"));
  for (const char* v : {"attn.q", "mlp.out", "fc_in", "out_proj", "mlp", "attn", "all"})
    EXPECT_THAT(r.status().message(), HasSubstr(v));
  EXPECT_FALSE(CanonicalMatrixType("all").ok());
}

TEST(MatrixTypes, TypeTheModelLacksIsAnError) {
  auto r = ExpandMatrixTypes({"fc_up"}, kGpt2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("mlp.up"));
}

}  // namespace
}  // namespace laserd::laser
