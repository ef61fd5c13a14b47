// Rotary frequencies of every rope scaling type against transformers' own
// (tests/fixtures/rope_frequencies.json, made by
// scripts/fixtures/make_rope_refs.py with real checkpoints' parameters), and
// the refusal of scalings and options laserd does not compute.
#include "engine/model/rope_scaling.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/formats/weights.h"
#include "engine/model/config.h"
#include "engine/model/model.h"
#include "kernels/ops.h"

namespace laserd::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

std::string Fixture(const std::string& rel) {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/" + rel;
}

// c->rope from `cfg` as a config.json with the given head/rotary dims.
absl::Status Read(const json& cfg, int64_t head_dim, int64_t rotary_dim, ModelConfig* c,
                  bool phi3 = false) {
  const ConfigReader r(cfg, "config.json");
  c->head_dim = head_dim;
  c->rotary_dim = rotary_dim;
  c->max_positions = r.Num({"max_position_embeddings"}).value_or(2048);
  c->rope_theta = r.RopeTheta(10000.0);
  if (phi3) return r.ReadRopeScaling(c, {{"su", "longrope"}, {"yarn", "longrope"}});
  return r.ReadRopeScaling(c);
}

TEST(RopeScalingTest, FrequenciesMatchTransformers) {
  const json doc = ReadJson(Fixture("rope_frequencies.json"));
  ASSERT_GE(doc["cases"].size(), 10u);
  for (const json& k : doc["cases"]) {
    const std::string name = k["name"];
    ModelConfig c;
    const bool phi3 = name.rfind("longrope", 0) == 0;
    ASSERT_TRUE(Read(k["config"], k["head_dim"], k["rotary_dim"], &c, phi3).ok()) << name;
    for (const json& r : k["results"]) {
      const int64_t len = r["seq_len"];
      const RopeFrequencies f = ComputeRopeFrequencies(c.rope, c.rope_theta, c.rotary_dim, len);
      const std::vector<double> want = r["inv_freq"].get<std::vector<double>>();
      ASSERT_EQ(f.inv_freq.size(), want.size()) << name;
      double worst = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        worst = std::max(worst, std::fabs(f.inv_freq[i] - want[i]) / want[i]);
      }
      // fp32 throughout on both sides: a few units in the last place at most.
      EXPECT_LE(worst, 1e-6) << name << " at length " << len;
      EXPECT_NEAR(f.attention_factor, r["attention_factor"].get<double>(), 1e-6)
          << name << " at length " << len;
    }
  }
}

TEST(RopeScalingTest, LengthClasses) {
  ModelConfig c;
  ASSERT_TRUE(Read(json::parse(R"({"max_position_embeddings": 16,
      "rope_parameters": {"rope_type": "dynamic", "factor": 4.0}})"),
                   16, 16, &c)
                  .ok());
  EXPECT_TRUE(RopeDependsOnLength(c.rope));
  EXPECT_EQ(c.max_positions, 64);  // the context dynamic scaling extends to
  EXPECT_EQ(RopeLengthClass(c.rope, 3), RopeLengthClass(c.rope, 16));
  EXPECT_NE(RopeLengthClass(c.rope, 17), RopeLengthClass(c.rope, 18));
  ModelConfig l;
  ASSERT_TRUE(Read(json::parse(R"({"max_position_embeddings": 128,
      "rope_parameters": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}})"),
                   16, 16, &l)
                  .ok());
  EXPECT_FALSE(RopeDependsOnLength(l.rope));
  EXPECT_EQ(l.max_positions, 128);
}

TEST(RopeScalingTest, UnsupportedOrMalformedScalingIsRefused) {
  struct Case {
    const char* cfg;
    absl::StatusCode code;
    const char* names;
  };
  for (const Case& k : {
           Case{R"({"rope_scaling": {"type": "mrope", "factor": 2.0}})",
                absl::StatusCode::kUnimplemented, "rope scaling type 'mrope' is not supported"},
           Case{R"({"rope_parameters": {"rope_type": "proportional", "factor": 2.0}})",
                absl::StatusCode::kUnimplemented, "'proportional'"},
           Case{R"({"rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                    "high_freq_factor": 4.0}})",
                absl::StatusCode::kInvalidArgument, "'low_freq_factor'"},
           Case{R"({"rope_scaling": {"type": "linear"}})", absl::StatusCode::kInvalidArgument,
                "'factor'"},
           Case{R"({"rope_scaling": {"type": "longrope", "short_factor": [1.0],
                    "long_factor": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}})",
                absl::StatusCode::kInvalidArgument, "'short_factor' with 8 numbers"},
       }) {
    ModelConfig c;
    const absl::Status s = Read(json::parse(k.cfg), 16, 16, &c);
    EXPECT_EQ(s.code(), k.code) << k.cfg << ": " << s;
    EXPECT_NE(s.message().find(k.names), std::string::npos) << s;
  }
  // Unscaled forms: no key, null, "default".
  for (const char* cfg : {R"({})", R"({"rope_scaling": null})",
                          R"({"rope_parameters": {"rope_type": "default", "rope_theta": 1.0}})"}) {
    ModelConfig c;
    EXPECT_TRUE(Read(json::parse(cfg), 16, 16, &c).ok()) << cfg;
    EXPECT_EQ(c.rope.type, RopeType::kDefault);
  }
}

// A fixture's weights beside an edited config.json: loading names what is refused.
absl::Status LoadWithConfig(const std::string& fixture, const std::function<void(json*)>& edit) {
  const fs::path dir = fs::temp_directory_path() /
                       ("laserd_rope_scaling_test_" + std::to_string(::getpid()) + "_" + fixture);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string from = Fixture("models/" + fixture);
  fs::copy_file(from + "/model.safetensors", dir / "model.safetensors");
  json cfg = ReadJson(from + "/config.json");
  edit(&cfg);
  std::ofstream(dir / "config.json") << cfg.dump();
  auto src = formats::OpenSafetensors(dir.string());
  if (!src.ok()) return src.status();
  auto be = kernels::MakeCpuBackend();
  absl::Status s = Model::Load(**src, be.get()).status();
  fs::remove_all(dir);
  return s;
}

TEST(RopeScalingTest, LoadRefusesUnsupportedOptionsNamingThem) {
  absl::Status s = LoadWithConfig(
      "llama3_1", [](json* c) { (*c)["rope_parameters"]["rope_type"] = "su_yarn_mix"; });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("'su_yarn_mix'"), std::string::npos) << s;
  s = LoadWithConfig("phi", [](json* c) { (*c)["qk_layernorm"] = true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("phi option qk_layernorm"), std::string::npos) << s;
  s = LoadWithConfig("phi3", [](json* c) { (*c)["model_type"] = "phi3small"; });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_NE(s.message().find("'phi3small'"), std::string::npos) << s;
  // Phi-3 configs name longrope "su": read as longrope.
  s = LoadWithConfig("phi4_mini", [](json* c) { (*c)["rope_parameters"]["rope_type"] = "su"; });
  EXPECT_TRUE(s.ok()) << s;
}

TEST(RopeScalingTest, Phi3SlidingWindowCapsTheContext) {
  const fs::path dir = fs::temp_directory_path() /
                       ("laserd_rope_scaling_test_" + std::to_string(::getpid()) + "_sw");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string from = Fixture("models/phi3");
  fs::copy_file(from + "/model.safetensors", dir / "model.safetensors");
  json cfg = ReadJson(from + "/config.json");
  cfg["sliding_window"] = 20;
  std::ofstream(dir / "config.json") << cfg.dump();
  auto src = formats::OpenSafetensors(dir.string());
  ASSERT_TRUE(src.ok()) << src.status();
  auto be = kernels::MakeCpuBackend();
  auto m = Model::Load(**src, be.get());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config().max_positions, 20);
  EXPECT_EQ((*m)->Logits({std::vector<int32_t>(21, 3)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(RopeScalingTest, DynamicContextIsFactorTimesMaxPositions) {
  const std::string dir = Fixture("models/llama_dynamic");
  auto src = formats::OpenSafetensors(dir);
  ASSERT_TRUE(src.ok()) << src.status();
  auto be = kernels::MakeCpuBackend();
  auto m = Model::Load(**src, be.get());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config().max_positions, 64);
  EXPECT_TRUE((*m)->Logits({std::vector<int32_t>(64, 3)}).ok());
  EXPECT_EQ((*m)->Logits({std::vector<int32_t>(65, 3)}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace laserd::model
