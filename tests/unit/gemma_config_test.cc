// Gemma 2 / Gemma 3 config reading: the values read from the tiny fixtures'
// config.json (both key layouts of Gemma 3), and every option laserd does not
// implement refused at load with the option named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/formats/weights.h"
#include "engine/model/config.h"
#include "nlohmann/json.hpp"

namespace laserd::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string FixtureDir() { return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/"; }

absl::StatusOr<ModelConfig> Read(const std::string& dir) {
  auto src = formats::OpenSafetensors(dir);
  if (!src.ok()) return src.status();
  return ReadModelConfig(**src);
}

TEST(GemmaConfigTest, Gemma2) {
  auto c = Read(FixtureDir() + "gemma2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch->name, "gemma");
  EXPECT_EQ(c->head_dim, 24);
  EXPECT_DOUBLE_EQ(c->attn_scale, 1.0 / std::sqrt(20.0));
  EXPECT_EQ(c->attn_softcap, 3.0);
  EXPECT_EQ(c->final_softcap, 6.0);
  EXPECT_EQ(c->sliding_window, 4);
  EXPECT_EQ(c->layer_sliding, (std::vector<bool>{true, false}));
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_local_theta, 0.0);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->act, kernels::Activation::kGeluTanh);
}

TEST(GemmaConfigTest, Gemma3BothKeyLayouts) {
  for (const char* dir : {"gemma3", "gemma3_legacy"}) {
    auto c = Read(FixtureDir() + dir);
    ASSERT_TRUE(c.ok()) << dir << ": " << c.status();
    EXPECT_EQ(c->model_type, "gemma3_text");
    EXPECT_EQ(c->layer_sliding, (std::vector<bool>{true, true, true, true, true, false})) << dir;
    EXPECT_EQ(c->rope_theta, 1e6) << dir;
    EXPECT_EQ(c->rope_local_theta, 1e4) << dir;
    EXPECT_EQ(c->rope.type, RopeType::kLinear) << dir;  // global layers only
    EXPECT_EQ(c->rope.factor, 2.0) << dir;
    EXPECT_EQ(c->attn_softcap, 0.0) << dir;
    EXPECT_EQ(c->final_softcap, 0.0) << dir;
    EXPECT_DOUBLE_EQ(c->attn_scale, 1.0 / std::sqrt(24.0)) << dir;
    EXPECT_TRUE(c->qk_norm);
    EXPECT_TRUE(c->tied_embeddings);
  }
}

// A copy of a fixture with its config.json edited.
class EditedGemma {
 public:
  EditedGemma(const std::string& fixture, const std::function<void(json&)>& edit) {
    dir_ = fs::temp_directory_path() /
           ("laserd_gemma_config_test_" + std::to_string(::getpid()) + "_" + fixture);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path src = FixtureDir() + fixture;
    fs::copy_file(src / "model.safetensors", dir_ / "model.safetensors");
    std::ifstream in(src / "config.json");
    json cfg = json::parse(in);
    edit(cfg);
    std::ofstream(dir_ / "config.json") << cfg.dump();
  }
  ~EditedGemma() { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

TEST(GemmaConfigTest, UnsupportedOptionsAreRefusedByName) {
  struct Case {
    const char* fixture;
    std::function<void(json&)> edit;
    const char* named;
  };
  const std::vector<Case> cases = {
      {"gemma3", [](json& c) { c["use_bidirectional_attention"] = true; },
       "use_bidirectional_attention"},
      {"gemma2", [](json& c) { c["attention_bias"] = true; }, "attention_bias"},
      {"gemma3", [](json& c) { c["laurel_rank"] = 64; }, "laurel_rank"},
      {"gemma3", [](json& c) { c["rope_parameters"]["full_attention"]["rope_type"] = "yarn"; },
       "full_attention rope type 'yarn'"},
      {"gemma3", [](json& c) { c["rope_parameters"]["sliding_attention"]["rope_type"] = "linear"; },
       "sliding_attention rope type 'linear'"},
      {"gemma3_legacy",
       [](json& c) {
         c["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2}};
       },
       "rope_scaling rope type 'dynamic'"},
      {"gemma2", [](json& c) { c["rope_parameters"]["rope_type"] = "linear"; },
       "rope scaling type 'linear'"},
      {"gemma3", [](json& c) { c["layer_types"][0] = "chunked_attention"; },
       "layer type \"chunked_attention\""},
      {"gemma3", [](json& c) { c["layer_types"].erase(0); }, "layer_types"},
      {"gemma2", [](json& c) { c["hidden_activation"] = "mish"; }, "mish"},
      {"gemma2", [](json& c) { c["query_pre_attn_scalar"] = 0; }, "query_pre_attn_scalar"},
  };
  for (const Case& k : cases) {
    EditedGemma e(k.fixture, k.edit);
    auto c = Read(e.dir());
    ASSERT_FALSE(c.ok()) << k.named;
    EXPECT_NE(c.status().message().find(k.named), std::string::npos)
        << k.named << ": " << c.status();
  }
}

}  // namespace
}  // namespace laserd::model
