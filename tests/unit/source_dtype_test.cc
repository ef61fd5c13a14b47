// round_to_source_dtype (engine/laser/source_dtype.h): fp16/bf16 rounding to
// nearest even, which stored types can be rounded to, each matrix's source
// type, and, in sweeps on the tiny Llama fixtures stored in F16, BF16 and F32,
// that the matrix scored is exactly the dense product W_k rounded to the
// source type (F32: unchanged).
#include "engine/laser/source_dtype.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/intervention.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/svd.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;

TEST(SourceDtypeTest, F16RoundsToNearestEven) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(RoundToF16(1.0f), 1.0f);
  EXPECT_EQ(RoundToF16(1.0f + 0x1p-11f), 1.0f);                // tie, to even
  EXPECT_EQ(RoundToF16(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);  // tie, to even (up)
  EXPECT_EQ(RoundToF16(1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);
  EXPECT_EQ(RoundToF16(-0.1f), -0.0999755859375f);
  EXPECT_EQ(RoundToF16(65504.0f), 65504.0f);
  EXPECT_EQ(RoundToF16(65519.0f), 65504.0f);
  EXPECT_EQ(RoundToF16(65520.0f), inf);       // tie above the largest
  EXPECT_EQ(RoundToF16(0x1p-24f), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(RoundToF16(0x1p-25f), 0.0f);      // tie, to even (zero)
  EXPECT_EQ(RoundToF16(0x1.8p-25f), 0x1p-24f);
  EXPECT_TRUE(std::isnan(RoundToF16(std::nanf(""))));
}

TEST(SourceDtypeTest, Bf16RoundsToNearestEven) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(RoundToBF16(1.0f), 1.0f);
  EXPECT_EQ(RoundToBF16(1.0f + 0x1p-8f), 1.0f);                // tie, to even
  EXPECT_EQ(RoundToBF16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);  // tie, to even (up)
  EXPECT_EQ(RoundToBF16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
  EXPECT_EQ(RoundToBF16(-0.1f), -0.10009765625f);
  EXPECT_EQ(RoundToBF16(std::numeric_limits<float>::max()), inf);
  EXPECT_EQ(RoundToBF16(0x1.fep127f), 0x1.fep127f);  // largest bf16
  EXPECT_TRUE(std::isnan(RoundToBF16(std::nanf(""))));
  EXPECT_EQ(RoundToBF16(-inf), -inf);
}

TEST(SourceDtypeTest, WhichTypesRound) {
  EXPECT_EQ(*RoundingForDType("F16"), SourceRounding::kF16);
  EXPECT_EQ(*RoundingForDType("BF16"), SourceRounding::kBF16);
  EXPECT_EQ(*RoundingForDType("F32"), SourceRounding::kNone);
  EXPECT_EQ(*RoundingForDType("F64"), SourceRounding::kNone);
  for (const char* t : {"Q4_1", "Q8_0", "I8", ""}) {
    auto r = RoundingForDType(t);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << t;
  }
  EXPECT_EQ(RoundingForDType("Q4_1").status().message(),
            "is stored as Q4_1; only F16 and BF16 (rounded) and F32 or F64 (unchanged) sources "
            "can be rounded to");
  std::vector<float> w = {1.0f + 0x1p-11f + 0x1p-20f, -0.1f};
  RoundInPlace(SourceRounding::kF16, &w);
  EXPECT_EQ(w, (std::vector<float>{1.0f + 0x1p-10f, -0.0999755859375f}));
}

class RoundedSweepTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("laserd_source_dtype_test_" + GetParam() + "_" + std::to_string(getpid()));
    test_support::MakeTinyLlamaDir(dir_, GetParam());
    std::ofstream(dir_ / "data.jsonl") << test_support::kTenExamples;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// The matrix scored for every intervention is the dense W_k (the product
// Editor::ApplyDense forms) rounded to the source type, read from the model
// while its examples are scored.
TEST_P(RoundedSweepTest, ScoredMatrixIsTheRoundedDenseProduct) {
  const std::string name = GetParam();
  const std::string want_dtype = name == "llama_float16"    ? "F16"
                                 : name == "llama_bfloat16" ? "BF16"
                                                            : "F32";
  auto lm = model::LoadModel(dir_.string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  model::Model* model = lm->model.get();
  for (const std::string& t : model->MatrixTypes()) {
    for (int64_t l = 0; l < model->config().layers; ++l) {
      EXPECT_EQ(model->SourceDType(t, l), want_dtype) << t << " " << l;
    }
  }
  auto ds = eval::LoadDataset((dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  SweepConfig cfg;
  cfg.ranks = {0.1, 0.5};
  cfg.matrix_types = {"mlp.in", "attn.o"};
  cfg.svd.method = kernels::SvdMethod::kExact;
  cfg.split.val_fraction = 0.3;
  cfg.batch_tokens = 64;
  cfg.round_to_source_dtype = true;
  // Which intervention is being scored (the edit hook), and the matrix the
  // first scoring batch of each sees (asked through the interrupt).
  auto runner = SweepRunner::Create(model, *lm->tokenizer, *ds, cfg);
  ASSERT_TRUE(runner.ok()) << runner.status();
  std::vector<const Intervention*> order;
  for (const PlanMatrix& m : (*runner)->plan())
    for (const Intervention& iv : m.interventions) order.push_back(&iv);
  int64_t current = -1;
  bool editing = false;
  std::vector<std::optional<std::vector<float>>> seen(order.size());
  (*runner)->set_edit_hook([&](size_t, bool e) {
    editing = e;
    if (e) ++current;
  });
  (*runner)->set_interrupt([&]() -> absl::Status {
    if (editing && !seen[current]) {
      auto w = MatrixToHost(model, order[current]->type, order[current]->layer);
      if (!w.ok()) return w.status();
      seen[current] = *std::move(w);
    }
    return absl::OkStatus();
  });
  std::vector<SweepResult> results;
  ASSERT_TRUE((*runner)
                  ->Run({},
                        [&](const SweepResult& r) {
                          results.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_EQ(results.size(), order.size());
  ASSERT_EQ(current + 1, static_cast<int64_t>(order.size()));
  const SourceRounding rounding = *RoundingForDType(want_dtype);
  for (size_t i = 0; i < order.size(); ++i) {
    const Intervention& iv = *order[i];
    SCOPED_TRACE(::testing::Message() << iv.type << " " << iv.layer << " k " << iv.rank);
    ASSERT_TRUE(seen[i].has_value());
    // The expectation, formed the same way on the (now unedited) model.
    auto svd = DecomposeMatrix(model, iv.type, iv.layer, iv.rank, cfg.svd);
    ASSERT_TRUE(svd.ok());
    Editor editor(model);
    ASSERT_TRUE(editor.ApplyDense(iv.type, iv.layer, *svd, iv.rank).ok());
    std::vector<float> product = *MatrixToHost(model, iv.type, iv.layer);
    ASSERT_TRUE(editor.Restore(iv.type, iv.layer).ok());
    std::vector<float> rounded = product;
    RoundInPlace(rounding, &rounded);
    EXPECT_EQ(*seen[i], rounded);
    if (rounding == SourceRounding::kNone) {
      EXPECT_EQ(*seen[i], product);
    } else {
      EXPECT_NE(*seen[i], product);  // the rounding did something
    }
  }
  // Restored afterwards: the model is its file's again.
  auto again = model::LoadModel(dir_.string(), "cpu");
  ASSERT_TRUE(again.ok());
  for (const Intervention* iv : order) {
    EXPECT_EQ(*MatrixToHost(model, iv->type, iv->layer),
              *MatrixToHost(again->model.get(), iv->type, iv->layer));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RoundedSweepTest,
                         ::testing::Values("llama_float16", "llama_bfloat16", "llama"));

TEST(RoundSpecTest, SpecFieldReachesTheSweep) {
  ::laser::v1::SweepSpec spec;
  spec.mutable_dataset()->set_path("/tmp/x.jsonl");
  spec.mutable_rho()->add_values(0.1);
  auto off = server::SweepConfigFromSpec(spec);
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->config.round_to_source_dtype);
  spec.set_round_to_source_dtype(true);
  auto on = server::SweepConfigFromSpec(spec);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->config.round_to_source_dtype);
}

}  // namespace
}  // namespace laserd::laser
