// GGUF files of the tiny fixture models as llama.cpp's converter writes their
// families (tests/fixtures/gguf_models, made by
// scripts/fixtures/make_gguf_models.py: llama with rope scaling keys and the
// rope_freqs tensor, qwen3, phi2, phi3 with longrope factor tensors): each
// loads to the family of its safetensors twin, every tensor has a role, and
// its logits equal transformers' on the safetensors model (F32 weights).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/formats/weights.h"
#include "engine/laser/export.h"
#include "engine/model/architecture.h"
#include "engine/model/config.h"
#include "engine/model/model.h"
#include "kernels/ops.h"

namespace laserd::model {
namespace {

using nlohmann::json;

std::string Fixtures() { return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/"; }

json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

class GgufModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufModelTest, LoadsToTransformersLogits) {
  const std::string name = GetParam();
  auto src = formats::OpenGguf(Fixtures() + "gguf_models/" + name + ".gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  auto twin = formats::OpenSafetensors(Fixtures() + "models/" + name);
  ASSERT_TRUE(twin.ok()) << twin.status();
  auto be = kernels::MakeCpuBackend();
  auto m = Model::Load(**src, be.get());
  ASSERT_TRUE(m.ok()) << m.status();
  auto mt = Model::Load(**twin, be.get());
  ASSERT_TRUE(mt.ok()) << mt.status();
  const ModelConfig& c = (*m)->config();
  const ModelConfig& ct = (*mt)->config();
  EXPECT_EQ(c.arch, ct.arch) << name;
  EXPECT_EQ(c.rotary_dim, ct.rotary_dim) << name;
  EXPECT_EQ(c.head_dim, ct.head_dim) << name;
  EXPECT_EQ(c.tied_embeddings, ct.tied_embeddings) << name;
  EXPECT_EQ(c.max_positions, ct.max_positions) << name;
  // Every tensor of the file has a role in the family's GGUF naming.
  for (const formats::TensorInfo& t : (*src)->tensors()) {
    EXPECT_TRUE(RoleOfTensor(*c.arch, **src, t.name).has_value()) << name << ": " << t.name;
  }
  // The same matrices as the safetensors twin, bit for bit (Q/K rows unpermuted).
  for (const std::string& type : (*mt)->MatrixTypes()) {
    for (int64_t l = 0; l < c.layers; ++l) {
      auto a = (*m)->Matrix(type, l);
      auto b = (*mt)->Matrix(type, l);
      ASSERT_TRUE(a.ok() && b.ok()) << name << " " << type;
      std::vector<float> ha((*a)->size()), hb((*b)->size());
      be->ToHost(**a, ha.data());
      be->ToHost(**b, hb.data());
      EXPECT_EQ(ha, hb) << name << ": " << type << " of layer " << l;
    }
  }
  const json ref = ReadJson(Fixtures() + "models/" + name + "/reference.json");
  const int64_t V = c.vocab_size;
  double worst = 0;
  for (const json& s : ref["sequences"]) {
    const std::vector<int32_t> ids = s["ids"].get<std::vector<int32_t>>();
    auto got = (*m)->Logits({ids});
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<int64_t> pos = s["positions"].get<std::vector<int64_t>>();
    for (size_t r = 0; r < pos.size(); ++r) {
      for (int64_t v = 0; v < V; ++v) {
        worst = std::max<double>(
            worst, std::fabs((*got)[pos[r] * V + v] - s["logits"][r][v].get<float>()));
      }
    }
  }
  EXPECT_LE(worst, 1e-4) << name;
  std::printf("%s GGUF: max abs logit error vs transformers %.3g\n", name.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufModelTest,
                         ::testing::Values("llama3_1", "llama_linear", "llama_yarn", "qwen3", "phi",
                                           "phi3", "phi4_mini"));

TEST(GgufModelTest, UnsupportedRopeScalingIsRefusedByName) {
  // A GGUF whose rope.scaling.type laserd does not compute.
  const std::string path = ::testing::TempDir() + "/rope_scaling_su.gguf";
  {
    std::ifstream in(Fixtures() + "gguf_models/llama_linear.gguf", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // "linear" -> "lineal": same length, so the file stays well formed.
    const size_t at = bytes.find("linear");
    ASSERT_NE(at, std::string::npos);
    bytes.replace(at, 6, "lineal");
    std::ofstream(path, std::ios::binary) << bytes;
  }
  auto src = formats::OpenGguf(path);
  ASSERT_TRUE(src.ok()) << src.status();
  auto be = kernels::MakeCpuBackend();
  auto m = Model::Load(**src, be.get());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented) << m.status();
  EXPECT_NE(m.status().message().find("GGUF rope scaling type 'lineal'"), std::string::npos)
      << m.status();
}

// Exports of GGUF sources: the rope scaling keys become config.json's
// rope_scaling and the export reloads to the same logits; factor tensors
// (llama3's rope_freqs) and families without a config writer are refused.
TEST(GgufModelTest, ExportWritesRopeScalingOrRefusesByName) {
  auto be = kernels::MakeCpuBackend();
  const std::vector<std::vector<int32_t>> seqs = {
      {1, 17, 42, 99, 200, 3, 7, 128, 255, 64, 5, 6, 19, 23, 29, 31, 37, 41, 43, 47}};
  for (const std::string name : {"llama_linear", "llama_yarn", "qwen3"}) {
    auto src = formats::OpenGguf(Fixtures() + "gguf_models/" + name + ".gguf");
    ASSERT_TRUE(src.ok()) << src.status();
    auto m = Model::Load(**src, be.get());
    ASSERT_TRUE(m.ok()) << m.status();
    const std::string out = ::testing::TempDir() + "/gguf_export_" + name;
    auto r = laser::WriteExport(**src, m->get(), {}, laser::ExportFormat::kMerged, out);
    ASSERT_TRUE(r.ok()) << r.status();
    const json cfg = ReadJson(out + "/config.json");
    const json twin = ReadJson(Fixtures() + "models/" + name + "/config.json");
    if (name == "qwen3") {
      EXPECT_FALSE(cfg.contains("rope_scaling")) << cfg.dump();
    } else {
      ASSERT_TRUE(cfg.contains("rope_scaling")) << name;
      EXPECT_EQ(cfg["rope_scaling"]["rope_type"], twin["rope_parameters"]["rope_type"]);
      EXPECT_EQ(cfg["rope_scaling"]["factor"], twin["rope_parameters"]["factor"]);
    }
    auto back = formats::OpenSafetensors(out);
    ASSERT_TRUE(back.ok()) << back.status();
    auto mb = Model::Load(**back, be.get());
    ASSERT_TRUE(mb.ok()) << mb.status();
    auto a = (*m)->Logits(seqs), b = (*mb)->Logits(seqs);
    ASSERT_TRUE(a.ok() && b.ok());
    double d = 0;
    for (size_t i = 0; i < a->size(); ++i) d = std::max<double>(d, std::fabs((*a)[i] - (*b)[i]));
    EXPECT_LE(d, 1e-6) << name;
    std::filesystem::remove_all(out);
  }
  for (const auto& [name, says] : std::vector<std::pair<std::string, std::string>>{
           {"llama3_1", "rope_freqs.weight has no Hugging Face counterpart"},
           {"phi", "GGUF architecture phi2 cannot be exported"}}) {
    auto src = formats::OpenGguf(Fixtures() + "gguf_models/" + name + ".gguf");
    ASSERT_TRUE(src.ok()) << src.status();
    auto m = Model::Load(**src, be.get());
    ASSERT_TRUE(m.ok()) << m.status();
    auto r = laser::WriteExport(**src, m->get(), {}, laser::ExportFormat::kMerged,
                                ::testing::TempDir() + "/gguf_export_" + name);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented) << name;
    EXPECT_NE(r.status().message().find(says), std::string::npos) << r.status();
  }
}

}  // namespace
}  // namespace laserd::model
