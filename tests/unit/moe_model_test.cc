// Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE) on the tiny fixtures: the router
// and every expert's matrices are addressable by their canonical names, and config options laserd
// does not support are refused at load, naming them. (Logits against transformers: model_test's
// TinyModelTest on "mixtral", "qwen2_moe", "qwen3_moe" and "olmoe".)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/formats/weights.h"
#include "engine/model/architecture.h"
#include "engine/model/config.h"
#include "engine/model/model.h"
#include "tests/support/test_model.h"

namespace laserd::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string FixtureDir(const std::string& name) {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}
std::string MixtralDir() { return FixtureDir("mixtral"); }

TEST(MoeModelTest, ExpertMatrixNames) {
  EXPECT_EQ(ExpertMatrixType("moe.in", 3), "moe.in[3]");
  auto p = ParseExpertMatrixType("moe.out[12]");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->first, "moe.out");
  EXPECT_EQ(p->second, 12);
  for (const char* bad : {"moe.in", "moe.in[]", "moe.in[-1]", "moe.in[1x]", "mlp.in[0]",
                          "moe.router[0]", "moe.in[0", "moe.in[1234567890]"}) {
    EXPECT_FALSE(ParseExpertMatrixType(bad).has_value()) << bad;
  }
}

TEST(MoeModelTest, MixtralMatricesAreAddressable) {
  test_support::LoadedModel l = test_support::LoadTestModel(MixtralDir());
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(c.arch->name, "mixtral");
  EXPECT_EQ(c.experts, 4);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.moe_intermediate, 48);
  std::vector<std::string> want = {"attn.q", "attn.k", "attn.v", "attn.o", "moe.router"};
  for (const char* base : {"moe.in", "moe.up", "moe.out"})
    for (int e = 0; e < 4; ++e) want.push_back(ExpertMatrixType(base, e));
  EXPECT_EQ(l.model->MatrixTypes(), want);
  auto r = l.model->Matrix("moe.router", 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->rows(), 4);
  EXPECT_EQ((*r)->cols(), 64);
  auto w = l.model->Matrix("moe.out[3]", 0);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->rows(), 64);
  EXPECT_EQ((*w)->cols(), 48);
  EXPECT_EQ(l.model->Matrix("moe.in[4]", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(l.model->Matrix("mlp.in", 0).status().code(), absl::StatusCode::kNotFound);
  // Where each lives in the file.
  auto ms = FindMatrixSource(*l.src, c, "moe.up[2]", 1);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->tensor, "model.layers.1.block_sparse_moe.experts.2.w3.weight");
  auto role = RoleOfTensor(*c.arch, *l.src, "model.layers.1.block_sparse_moe.experts.2.w3.weight");
  ASSERT_TRUE(role.has_value());
  EXPECT_EQ(role->layer, 1);
  EXPECT_EQ(role->types, std::vector<std::string>{"moe.up[2]"});
}

// A copy of the fixture `name` whose config.json is edited by `edit`.
absl::Status LoadEdited(const std::function<void(json&)>& edit,
                        const std::string& name = "mixtral") {
  const fs::path dir =
      fs::temp_directory_path() / ("laserd_moe_model_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(FixtureDir(name) + "/model.safetensors", dir / "model.safetensors");
  json cfg = json::parse(std::ifstream(FixtureDir(name) + "/config.json"));
  edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump();
  auto src = formats::OpenSafetensors(dir.string());
  absl::Status st = src.status();
  if (src.ok()) st = ReadModelConfig(**src).status();
  fs::remove_all(dir);
  return st;
}

TEST(MoeModelTest, UnsupportedOptionsAreRefusedByName) {
  EXPECT_TRUE(LoadEdited([](json&) {}).ok());
  absl::Status st = LoadEdited([](json& c) { c["num_experts_per_tok"] = 5; });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_experts_per_tok 5 is outside [1, num_local_experts = 4]"),
            std::string::npos)
      << st;
  st = LoadEdited([](json& c) { c["num_experts_per_tok"] = 0; });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  st = LoadEdited([](json& c) { c.erase("num_local_experts"); });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_local_experts"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c["sliding_window"] = 0; });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("sliding_window must be at least 1"), std::string::npos) << st;
}

TEST(MoeModelTest, Qwen2MoeSharedExpertIsTheDenseMlp) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir("qwen2_moe"));
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(c.arch->name, "qwen2_moe");
  EXPECT_EQ(c.experts, 4);
  EXPECT_EQ(c.moe_intermediate, 32);
  EXPECT_EQ(c.intermediate, 96);
  EXPECT_FALSE(c.norm_topk_prob);
  std::vector<std::string> want = {"attn.q", "attn.k", "attn.v",  "attn.o",
                                   "mlp.in", "mlp.up", "mlp.out", "moe.router"};
  for (const char* base : {"moe.in", "moe.up", "moe.out"})
    for (int e = 0; e < 4; ++e) want.push_back(ExpertMatrixType(base, e));
  EXPECT_EQ(l.model->MatrixTypes(), want);  // the shared gate is not sweepable
  auto ms = FindMatrixSource(*l.src, c, "mlp.up", 0);
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->tensor, "model.layers.0.mlp.shared_expert.up_proj.weight");
  auto ex = FindMatrixSource(*l.src, c, "moe.out[1]", 1);
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->tensor, "model.layers.1.mlp.experts.1.down_proj.weight");
}

TEST(MoeModelTest, Qwen2MoeUnsupportedOptionsAreRefusedByName) {
  EXPECT_TRUE(LoadEdited([](json&) {}, "qwen2_moe").ok());
  absl::Status st = LoadEdited([](json& c) { c["decoder_sparse_step"] = 2; }, "qwen2_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("decoder_sparse_step 2"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c["mlp_only_layers"] = {1}; }, "qwen2_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("mlp_only_layers [1]"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c["num_experts_per_tok"] = 9; }, "qwen2_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_experts_per_tok 9 is outside [1, num_experts = 4]"),
            std::string::npos)
      << st;
  st = LoadEdited([](json& c) { c.erase("shared_expert_intermediate_size"); }, "qwen2_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("shared_expert_intermediate_size"), std::string::npos) << st;
}

// The expert and router matrix types of a fixture with `experts` experts
// after `first` (its attention and any dense MLP types).
std::vector<std::string> WithExperts(std::vector<std::string> first, int experts) {
  for (const char* base : {"moe.in", "moe.up", "moe.out"})
    for (int e = 0; e < experts; ++e) first.push_back(ExpertMatrixType(base, e));
  return first;
}

TEST(MoeModelTest, Qwen3MoeMatricesAndNorms) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir("qwen3_moe"));
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(c.arch->name, "qwen3_moe");
  EXPECT_EQ(c.experts, 4);  // saved by transformers as num_local_experts
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.moe_intermediate, 32);
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.arch->qk_norm_whole);
  EXPECT_EQ(l.model->MatrixTypes(),
            WithExperts({"attn.q", "attn.k", "attn.v", "attn.o", "moe.router"}, 4));
  auto q = l.model->Matrix("attn.q", 0);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->rows(), 96);  // 4 heads x 24
  auto ms = FindMatrixSource(*l.src, c, "moe.in[3]", 1);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->tensor, "model.layers.1.mlp.experts.3.gate_proj.weight");
  ms = FindMatrixSource(*l.src, c, "moe.router", 0);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->tensor, "model.layers.0.mlp.gate.weight");
  auto role = RoleOfTensor(*c.arch, *l.src, "model.layers.1.self_attn.k_norm.weight");
  ASSERT_TRUE(role.has_value());
  EXPECT_EQ(role->kind, TensorKind::kKNorm);
  EXPECT_EQ(role->layer, 1);
  EXPECT_EQ(l.model->Matrix("mlp.in", 0).status().code(), absl::StatusCode::kNotFound);
}

TEST(MoeModelTest, Qwen3MoeUnsupportedOptionsAreRefusedByName) {
  EXPECT_TRUE(LoadEdited([](json&) {}, "qwen3_moe").ok());
  // Published checkpoints name the expert count num_experts.
  EXPECT_TRUE(LoadEdited(
                  [](json& c) {
                    c["num_experts"] = c["num_local_experts"];
                    c.erase("num_local_experts");
                  },
                  "qwen3_moe")
                  .ok());
  absl::Status st = LoadEdited([](json& c) { c["decoder_sparse_step"] = 2; }, "qwen3_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("decoder_sparse_step 2"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c["mlp_only_layers"] = {0}; }, "qwen3_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("mlp_only_layers [0]"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c.erase("num_local_experts"); }, "qwen3_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'num_experts'"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c.erase("moe_intermediate_size"); }, "qwen3_moe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("moe_intermediate_size"), std::string::npos) << st;
}

TEST(MoeModelTest, OlmoeNormsTheWholeProjections) {
  test_support::LoadedModel l = test_support::LoadTestModel(FixtureDir("olmoe"));
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(c.arch->name, "olmoe");
  EXPECT_EQ(c.experts, 4);
  EXPECT_EQ(c.moe_intermediate, 32);  // intermediate_size: each expert's
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.arch->qk_norm_whole);
  EXPECT_EQ(l.model->MatrixTypes(),
            WithExperts({"attn.q", "attn.k", "attn.v", "attn.o", "moe.router"}, 4));
  auto ms = FindMatrixSource(*l.src, c, "moe.out[2]", 0);
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->tensor, "model.layers.0.mlp.experts.2.down_proj.weight");
}

TEST(MoeModelTest, OlmoeUnsupportedOptionsAreRefusedByName) {
  EXPECT_TRUE(LoadEdited([](json&) {}, "olmoe").ok());
  absl::Status st = LoadEdited([](json& c) { c["clip_qkv"] = 8.0; }, "olmoe");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("olmoe option clip_qkv 8"), std::string::npos) << st;
  st = LoadEdited([](json& c) { c["head_dim"] = 8; }, "olmoe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_attention_heads x head_dim = hidden_size"), std::string::npos)
      << st;
  st = LoadEdited([](json& c) { c["num_experts_per_tok"] = 5; }, "olmoe");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("num_experts_per_tok 5 is outside [1, num_experts = 4]"),
            std::string::npos)
      << st;
}

}  // namespace
}  // namespace laserd::model
