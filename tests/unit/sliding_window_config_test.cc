// Sliding-window attention read from config.json as transformers lays it
// out: Mistral's and Mixtral's one window on every layer, Qwen2's / Qwen3's
// use_sliding_window with max_window_layers (or layer_types), Qwen2-MoE's
// alternating layers and Qwen3-MoE's every layer; inconsistent settings are
// refused naming the key. (Logits of windowed models against transformers:
// model_test's TinyModelTest on "mistral_swa" and "qwen2_swa".)
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

std::string FixtureDir(const std::string& name) {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

// The config of fixture `name` with its config.json edited by `edit`.
absl::StatusOr<ModelConfig> ReadEdited(const std::string& name,
                                       const std::function<void(json&)>& edit = {}) {
  const fs::path dir =
      fs::temp_directory_path() / ("laserd_sliding_window_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(FixtureDir(name) + "/model.safetensors", dir / "model.safetensors");
  json cfg = json::parse(std::ifstream(FixtureDir(name) + "/config.json"));
  if (edit) edit(cfg);
  std::ofstream(dir / "config.json") << cfg.dump();
  absl::StatusOr<ModelConfig> c = absl::UnknownError("not read");
  if (auto src = formats::OpenSafetensors(dir.string()); src.ok()) {
    c = ReadModelConfig(**src);
  } else {
    c = src.status();
  }
  fs::remove_all(dir);
  return c;
}

using Layers = std::vector<bool>;

TEST(SlidingWindowConfigTest, MistralSlidesEveryLayer) {
  auto c = ReadEdited("mistral_swa");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 6);
  EXPECT_EQ(c->layer_sliding, (Layers{true, true}));
  // The older fixture's window (4096) is longer than its context: kept, harmless.
  c = ReadEdited("mistral");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 4096);
  // Absent: MistralConfig's default 4096; null: none.
  c = ReadEdited("mistral_swa", [](json& j) { j.erase("sliding_window"); });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_EQ(c->layer_sliding, (Layers{true, true}));
  c = ReadEdited("mistral_swa", [](json& j) { j["sliding_window"] = nullptr; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 0);
  EXPECT_TRUE(c->layer_sliding.empty());
  c = ReadEdited("mistral_swa", [](json& j) { j["sliding_window"] = 0; });
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("sliding_window must be at least 1"), std::string::npos)
      << c.status();
  // Llama has no window, whatever its config says.
  c = ReadEdited("llama", [](json& j) { j["sliding_window"] = 6; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
}

TEST(SlidingWindowConfigTest, Qwen2SlidesFromMaxWindowLayers) {
  auto c = ReadEdited("qwen2_swa");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 6);
  EXPECT_EQ(c->layer_sliding, (Layers{false, true}));
  c = ReadEdited("qwen2_swa", [](json& j) { j["max_window_layers"] = 0; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layer_sliding, (Layers{true, true}));
  // The default max_window_layers (28) leaves both layers full.
  c = ReadEdited("qwen2_swa", [](json& j) { j.erase("max_window_layers"); });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  EXPECT_EQ(c->sliding_window, 0);
  // layer_types, where listed, decides.
  c = ReadEdited("qwen2_swa", [](json& j) {
    j["layer_types"] = {"sliding_attention", "full_attention"};
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layer_sliding, (Layers{true, false}));
  // Without use_sliding_window there is no window.
  c = ReadEdited("qwen2_swa", [](json& j) { j["use_sliding_window"] = false; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  c = ReadEdited("qwen2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  // Refused: sliding layers without a window, malformed layer_types.
  c = ReadEdited("qwen2_swa", [](json& j) {
    j["use_sliding_window"] = false;
    j["layer_types"] = {"full_attention", "sliding_attention"};
  });
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("sliding_attention layers without a sliding window"),
            std::string::npos)
      << c.status();
  c = ReadEdited("qwen2_swa", [](json& j) { j["layer_types"] = {"full_attention"}; });
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("layer_types must list one type per layer"),
            std::string::npos)
      << c.status();
  c = ReadEdited("qwen2_swa", [](json& j) {
    j["layer_types"] = {"full_attention", "chunked_attention"};
  });
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("\"chunked_attention\""), std::string::npos) << c.status();
}

TEST(SlidingWindowConfigTest, Qwen3AsQwen2) {
  auto c = ReadEdited("qwen3", [](json& j) {
    j.erase("layer_types");
    j["use_sliding_window"] = true;
    j["sliding_window"] = 6;
    j["max_window_layers"] = 1;
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 6);
  EXPECT_EQ(c->layer_sliding, (Layers{false, true}));
  c = ReadEdited("qwen3");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
}

TEST(SlidingWindowConfigTest, MixtureOfExpertsFamilies) {
  // Mixtral: Mistral's window on every layer; absent or null: none.
  auto c = ReadEdited("mixtral", [](json& j) { j["sliding_window"] = 16; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 16);
  EXPECT_EQ(c->layer_sliding, (Layers{true, true}));
  c = ReadEdited("mixtral", [](json& j) { j.erase("sliding_window"); });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  // Qwen2-MoE: the even-indexed layers below max_window_layers.
  c = ReadEdited("qwen2_moe", [](json& j) {
    j.erase("layer_types");
    j["use_sliding_window"] = true;
    j["sliding_window"] = 6;
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 6);
  EXPECT_EQ(c->layer_sliding, (Layers{true, false}));
  c = ReadEdited("qwen2_moe");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  // Qwen3-MoE: every layer; a null window (as saved when unused) is none.
  c = ReadEdited("qwen3_moe", [](json& j) {
    j["use_sliding_window"] = true;
    j["sliding_window"] = 6;
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 6);
  EXPECT_EQ(c->layer_sliding, (Layers{true, true}));
  c = ReadEdited("qwen3_moe", [](json& j) { j["use_sliding_window"] = true; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
  c = ReadEdited("qwen3_moe", [](json& j) { j["sliding_window"] = 6; });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->layer_sliding.empty());
}

}  // namespace
}  // namespace laserd::model
