// Interventions on mixture-of-experts models, on the tiny Mixtral fixture:
// the expert matrix names expand as docs/sweep.md says ("moe.in" = that
// matrix of every expert, one intervention each; SweepSpec.experts narrows
// them), a sweep edits exactly the expert it names, the low-rank and dense
// edits of an expert agree, and the expert index travels through the spec
// and the results proto.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/laser/intervention.h"
#include "engine/laser/rank.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;
namespace pb = ::laser::v1;
using server::InterventionFromProto;
using server::InterventionProto;
using server::SweepConfigFromSpec;

class MoeSweepTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("laserd_moe_sweep_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    const fs::path src = fs::path(LASERD_SOURCE_DIR) / "tests/fixtures/models/mixtral";
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(src / f, *dir_ / f);
    test_support::WriteByteLevelTokenizer(*dir_);
    std::ofstream(*dir_ / "data.jsonl") << test_support::kTenExamples;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
};
fs::path* MoeSweepTest::dir_ = nullptr;

TEST_F(MoeSweepTest, ExpertNamesExpand) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  const std::vector<std::string> have = lm->model->MatrixTypes();
  using V = std::vector<std::string>;
  EXPECT_EQ(*ExpandMatrixTypes({"moe.in"}, have),
            (V{"moe.in[0]", "moe.in[1]", "moe.in[2]", "moe.in[3]"}));
  EXPECT_EQ(*ExpandMatrixTypes({"moe.out[2]", "moe.router"}, have),
            (V{"moe.router", "moe.out[2]"}));
  EXPECT_EQ(ExpandMatrixTypes({"moe"}, have)->size(), 13u);
  EXPECT_EQ(ExpandMatrixTypes({"all"}, have)->size(), 17u);
  EXPECT_EQ(*ExpandMatrixTypes({"attn"}, have), (V{"attn.q", "attn.k", "attn.v", "attn.o"}));
  EXPECT_EQ(ExpandMatrixTypes({"moe.in[4]"}, have).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExpandMatrixTypes({"mlp.in"}, have).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*CanonicalMatrixType("moe.up[1]"), "moe.up[1]");
  EXPECT_EQ(CanonicalMatrixType("moe.up").status().code(), absl::StatusCode::kInvalidArgument);
  // A dense model has no expert types to expand.
  EXPECT_EQ(ExpandMatrixTypes({"moe.in"}, {"attn.q", "mlp.in"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

SweepConfig Config(std::vector<std::string> types, std::vector<int64_t> experts) {
  SweepConfig c;
  c.matrix_types = std::move(types);
  c.experts = std::move(experts);
  c.layer_indices = {1};
  c.ranks = {0.25};
  c.svd.method = kernels::SvdMethod::kExact;
  c.split.val_fraction = 0.3;
  c.batch_tokens = 64;
  return c;
}

TEST_F(MoeSweepTest, SweepsEveryExpertOrTheChosenOnes) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto ds = eval::LoadDataset((*dir_ / "data.jsonl").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto run = [&](const SweepConfig& cfg) {
    std::vector<SweepResult> out;
    auto runner = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, cfg);
    EXPECT_TRUE(runner.ok()) << runner.status();
    if (!runner.ok()) return out;
    absl::Status st = (*runner)->Run({}, [&](const SweepResult& r) {
      out.push_back(r);
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
    return out;
  };
  // Every expert of layer 1, one intervention each.
  std::vector<SweepResult> all = run(Config({"moe.out"}, {}));
  ASSERT_EQ(all.size(), 4u);
  for (int e = 0; e < 4; ++e) {
    const Intervention& iv = all[e].intervention;
    EXPECT_EQ(iv.type, model::ExpertMatrixType("moe.out", e));
    EXPECT_EQ(iv.layer, 1);
    EXPECT_EQ(iv.rows, 64);
    EXPECT_EQ(iv.cols, 48);
    EXPECT_EQ(iv.rank, 12);  // floor(48 · 0.25)
    EXPECT_GT(iv.relative_error, 0.0);
    // Into the results proto and back.
    const pb::Intervention p = InterventionProto(iv);
    EXPECT_EQ(p.matrix_type(), "moe.out");
    ASSERT_TRUE(p.has_expert());
    EXPECT_EQ(p.expert(), e);
    EXPECT_EQ(InterventionFromProto(p, iv.plan_index).type, iv.type);
    EXPECT_EQ(server::MatrixName(p), iv.type);
  }
  // The router has no expert.
  std::vector<SweepResult> router = run(Config({"moe.router"}, {}));
  ASSERT_EQ(router.size(), 1u);
  EXPECT_FALSE(InterventionProto(router[0].intervention).has_expert());
  EXPECT_EQ(server::MatrixName(InterventionProto(router[0].intervention)), "moe.router");
  // Experts 1 and 3 only: the same results as in the full sweep (the router stays).
  std::vector<SweepResult> some = run(Config({"moe.out", "moe.router"}, {3, 1}));
  ASSERT_EQ(some.size(), 3u);
  EXPECT_EQ(some[0].intervention.type, "moe.router");
  EXPECT_EQ(some[1].intervention.type, "moe.out[1]");
  EXPECT_EQ(some[2].intervention.type, "moe.out[3]");
  EXPECT_EQ(some[1].intervention.relative_error, all[1].intervention.relative_error);
  EXPECT_EQ(some[1].metrics.validation.log_loss, all[1].metrics.validation.log_loss);
  // Bad expert selections.
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{4}, std::vector<int64_t>{-1}}) {
    auto r = SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, Config({"moe.out"}, bad));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("experts[0]: "), std::string::npos) << r.status();
  }
}

TEST_F(MoeSweepTest, ExpertEditChangesOnlyThatExpertAndLowRankMatchesDense) {
  auto lm = model::LoadModel(dir_->string(), "cpu");
  ASSERT_TRUE(lm.ok()) << lm.status();
  model::Model* m = lm->model.get();
  const std::vector<std::vector<int32_t>> seqs = {{5, 17, 200, 3, 99, 42, 7, 128, 64, 1}};
  const std::vector<float> base = *m->Logits(seqs);
  kernels::SvdOptions o;
  o.method = kernels::SvdMethod::kExact;
  const kernels::TruncatedSvd svd = *DecomposeMatrix(m, "moe.in[2]", 0, 4, o);
  std::vector<float> dense;
  {
    Editor ed(m);
    ASSERT_TRUE(ed.ApplyDense("moe.in[2]", 0, svd, 4).ok());
    EXPECT_TRUE(ed.IsEdited("moe.in[2]", 0));
    EXPECT_FALSE(ed.IsEdited("moe.in[1]", 0));
    dense = *m->Logits(seqs);
  }
  EXPECT_EQ(*m->Logits(seqs), base);  // restored bit-exactly
  double changed = 0;
  for (size_t i = 0; i < base.size(); ++i)
    changed = std::max<double>(changed, std::fabs(dense[i] - base[i]));
  EXPECT_GT(changed, 1e-3);
  auto f = MakeFactors(m->backend(), svd, 4);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(m->SetLowRank("moe.in[2]", 0, std::move(f->us), std::move(f->v)).ok());
  const std::vector<float> lowrank = *m->Logits(seqs);
  m->ClearLowRank("moe.in[2]", 0);
  double d = 0;
  for (size_t i = 0; i < base.size(); ++i)
    d = std::max<double>(d, std::fabs(lowrank[i] - dense[i]));
  EXPECT_LE(d, 1e-4);
}

// Qwen3-MoE and OLMoE: "moe.in" with SweepSpec.experts sweeps the chosen
// experts of those families too, each edit its own expert's [32, 64] gate.
TEST(MoeFamiliesSweepTest, Qwen3MoeAndOlmoeExperts) {
  for (const char* family : {"qwen3_moe", "olmoe"}) {
    SCOPED_TRACE(family);
    const fs::path dir = fs::temp_directory_path() / (std::string("laserd_moe_sweep_test_") +
                                                      family + "_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const fs::path src = fs::path(LASERD_SOURCE_DIR) / "tests/fixtures/models" / family;
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(src / f, dir / f);
    test_support::WriteByteLevelTokenizer(dir);
    std::ofstream(dir / "data.jsonl") << test_support::kTenExamples;
    auto lm = model::LoadModel(dir.string(), "cpu");
    ASSERT_TRUE(lm.ok()) << lm.status();
    auto ds = eval::LoadDataset((dir / "data.jsonl").string());
    ASSERT_TRUE(ds.ok()) << ds.status();
    auto runner =
        SweepRunner::Create(lm->model.get(), *lm->tokenizer, *ds, Config({"moe.in"}, {3, 0}));
    ASSERT_TRUE(runner.ok()) << runner.status();
    std::vector<SweepResult> out;
    ASSERT_TRUE((*runner)
                    ->Run({},
                          [&](const SweepResult& r) {
                            out.push_back(r);
                            return absl::OkStatus();
                          })
                    .ok());
    ASSERT_EQ(out.size(), 2u);
    for (int j = 0; j < 2; ++j) {
      const Intervention& iv = out[j].intervention;
      EXPECT_EQ(iv.type, model::ExpertMatrixType("moe.in", j == 0 ? 0 : 3));
      EXPECT_EQ(iv.layer, 1);
      EXPECT_EQ(iv.rows, 32);
      EXPECT_EQ(iv.cols, 64);
      EXPECT_EQ(iv.rank, 8);  // floor(32 · 0.25)
      EXPECT_GT(iv.relative_error, 0.0);
    }
    // Two different experts edited: two different models.
    EXPECT_NE(out[0].metrics.validation.log_loss, out[1].metrics.validation.log_loss);
    fs::remove_all(dir);
  }
}

TEST(MoeSpecTest, ExpertsTravelFromSpecToConfig) {
  pb::SweepSpec spec;
  spec.mutable_dataset()->set_path("/tmp/x.jsonl");
  spec.add_matrix_types("moe.in");
  spec.add_experts(2);
  spec.add_experts(0);
  spec.mutable_rho()->add_values(0.5);
  auto h = SweepConfigFromSpec(spec);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->config.experts, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(h->config.matrix_types, std::vector<std::string>{"moe.in"});
}

}  // namespace
}  // namespace laserd::laser
