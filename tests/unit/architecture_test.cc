// The architecture descriptions against real files: every fixture model
// (tests/fixtures/models) and SmolLM2's GGUF resolves to its family, every
// canonical matrix maps to a tensor the file holds (and back), every tensor
// of the file has a role in the description, and an export of the loaded
// model writes the names back that the description gives.
#include "engine/model/architecture.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/formats/weights.h"
#include "engine/laser/export.h"
#include "engine/model/config.h"
#include "engine/model/loaded_model.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/requirements.h"

namespace laserd::model {
namespace {

namespace fs = std::filesystem;
using formats::FileFormat;
using nlohmann::json;

std::string FixtureDir() { return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/"; }
std::string SmolLm2Gguf() {
  return std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// (directory under tests/fixtures/models, family) of every fixture model.
std::vector<std::pair<std::string, std::string>> Fixtures() {
  std::ifstream f(FixtureDir() + "manifest.json");
  const json manifest = json::parse(f);
  std::vector<std::pair<std::string, std::string>> r;
  for (const json& m : manifest["models"]) {
    const std::string type = m["model_type"].get<std::string>();
    std::string family = type == "mistral" || type == "qwen2" ? "llama" : type;
    if (type == "gemma2" || type == "gemma3_text") family = "gemma";
    // (qwen3, phi and phi3 are families of their own.)
    r.push_back({m["dir"].get<std::string>(), family});
  }
  return r;
}

std::set<std::string> Names(const formats::WeightSource& src) {
  std::set<std::string> r;
  for (const formats::TensorInfo& t : src.tensors()) r.insert(t.name);
  return r;
}

// Every canonical matrix of every layer is named by a tensor of `src` that
// maps back to it; every tensor of `src` has a role.
void CheckNames(const formats::WeightSource& src, const ModelConfig& c, const std::string& what) {
  const Architecture& a = *c.arch;
  const std::string prefix = BodyPrefix(a, src);
  const std::set<std::string> names = Names(src);
  ASSERT_FALSE(a.MatrixTypes().empty()) << what;
  for (int64_t i = 0; i < c.layers; ++i) {
    for (const std::string& type : a.MatrixTypes()) {
      const std::string n =
          TensorName(a, src.format(), prefix, {TensorKind::kMatrix, i, {type}, false});
      EXPECT_TRUE(names.count(n)) << what << ": " << type << " of layer " << i << " -> " << n;
      auto role = RoleOfTensor(a, src.format(), prefix, n);
      ASSERT_TRUE(role.has_value()) << what << ": " << n;
      EXPECT_EQ(role->kind, TensorKind::kMatrix) << what << ": " << n;
      EXPECT_EQ(role->layer, i) << what << ": " << n;
      EXPECT_NE(std::find(role->types.begin(), role->types.end(), type), role->types.end())
          << what << ": " << n;
      if (i == 0) {
        auto ms = FindMatrixSource(src, c, type, 0);
        ASSERT_TRUE(ms.ok()) << ms.status();
        EXPECT_EQ(ms->tensor, n) << what;
        EXPECT_FALSE(ms->dtype.empty()) << what << ": " << n;
        EXPECT_EQ(ms->fused_block.empty(), role->types.size() == 1) << what << ": " << n;
      }
    }
  }
  for (const std::string& n : names) {
    auto role = RoleOfTensor(a, src, n);
    ASSERT_TRUE(role.has_value()) << what << ": tensor " << n << " has no role";
    EXPECT_EQ(TensorName(a, src.format(), prefix, *role), n) << what;
  }
  // Names the description does not give have no role.
  for (const std::string& bad : {prefix + "layers.x.mlp.up_proj.weight", std::string("nonsense"),
                                 prefix + "h.0.attn.c_attn.scale"}) {
    EXPECT_FALSE(RoleOfTensor(a, src.format(), prefix, bad).has_value()) << what << ": " << bad;
  }
}

// A model with its weights; the tokenizer (which these tests do not use) is
// the byte-level one of tests/support for safetensors fixtures.
LoadedModel Load(const std::string& path) {
  std::string tokenizer;
  if (fs::is_directory(path)) {
    const fs::path dir = fs::temp_directory_path() /
                         ("laserd_architecture_test_" + std::to_string(::getpid()) + "_tok");
    test_support::WriteByteLevelTokenizer(dir);
    tokenizer = (dir / "tokenizer.json").string();
  }
  auto lm = LoadModel(path, "cpu", tokenizer);
  if (!tokenizer.empty()) fs::remove_all(fs::path(tokenizer).parent_path());
  EXPECT_TRUE(lm.ok()) << path << ": " << lm.status();
  return lm.ok() ? *std::move(lm) : LoadedModel();
}

// The tensor names of a merged export of `l` (no edits).
std::set<std::string> ExportedNames(LoadedModel& l, const std::string& tag) {
  const fs::path dir = fs::temp_directory_path() /
                       ("laserd_architecture_test_" + std::to_string(::getpid()) + "_" + tag);
  fs::remove_all(dir);
  auto r =
      laser::WriteExport(*l.weights, l.model.get(), {}, laser::ExportFormat::kMerged, dir.string());
  EXPECT_TRUE(r.ok()) << r.status();
  std::set<std::string> names;
  if (r.ok()) {
    auto out = formats::OpenSafetensors(dir.string());
    EXPECT_TRUE(out.ok()) << out.status();
    if (out.ok()) names = Names(**out);
  }
  fs::remove_all(dir);
  return names;
}

TEST(ArchitectureTest, RegistryIsConsistent) {
  std::set<std::string> families, hf_types, gguf_types;
  for (const Architecture* a : Architectures()) {
    EXPECT_TRUE(families.insert(a->name).second) << a->name;
    EXPECT_EQ(FindArchitecture(a->name), a);
    EXPECT_STREQ(ArchName(a), a->name.c_str());
    EXPECT_NE(a->read_hf, nullptr) << a->name;
    for (const ModelType& t : a->model_types) {
      EXPECT_TRUE(hf_types.insert(t.hf).second) << t.hf;
      EXPECT_FALSE(t.hf_class.empty()) << t.hf;
      if (!t.gguf.empty()) {
        // A GGUF name is one family's, or two's told apart by experts.
        EXPECT_TRUE(gguf_types.insert(t.gguf + (t.gguf_experts ? "+experts" : "")).second)
            << t.gguf;
        EXPECT_NE(a->read_gguf, nullptr) << a->name;
      }
    }
    // Every canonical matrix is in at most one stored tensor, in both formats;
    // GGUF, where supported, has the same matrices.
    for (FileFormat f : {FileFormat::kSafetensors, FileFormat::kGguf}) {
      std::multiset<std::string> seen;
      for (const MatrixTensor& t : a->naming(f).matrices)
        seen.insert(t.types.begin(), t.types.end());
      for (const std::string& type : CanonicalMatrixTypes()) EXPECT_LE(seen.count(type), 1u);
    }
    if (a->read_gguf != nullptr) {
      for (const std::string& type : a->MatrixTypes()) {
        EXPECT_NE(FindMatrixTensor(*a, FileFormat::kGguf, type), nullptr) << a->name << type;
      }
    }
  }
  EXPECT_EQ(FindArchitecture("bert"), nullptr);
  EXPECT_STREQ(ArchName(nullptr), "?");
}

TEST(ArchitectureTest, EveryFixtureResolvesAndNamesItsMatrices) {
  const auto fixtures = Fixtures();
  ASSERT_GE(fixtures.size(), 8u);
  std::set<std::string> families;
  for (const auto& [dir, family] : fixtures) {
    auto src = formats::OpenSafetensors(FixtureDir() + dir);
    ASSERT_TRUE(src.ok()) << src.status();
    auto a = ArchitectureOf(**src);
    ASSERT_TRUE(a.ok()) << dir << ": " << a.status();
    EXPECT_EQ((*a)->name, family) << dir;
    families.insert(family);
    auto c = ReadModelConfig(**src);
    ASSERT_TRUE(c.ok()) << dir << ": " << c.status();
    CheckNames(**src, *c, dir);
  }
  // Every family has a fixture.
  EXPECT_EQ(families.size(), Architectures().size());
}

TEST(ArchitectureTest, FusedBlocksAreNamed) {
  auto gpt2 = formats::OpenSafetensors(FixtureDir() + "gpt2");
  ASSERT_TRUE(gpt2.ok());
  auto c = ReadModelConfig(**gpt2);
  ASSERT_TRUE(c.ok());
  auto k = FindMatrixSource(**gpt2, *c, "attn.k", 0);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->tensor, "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(k->fused_block, "rows 64:128 (of the transposed [192, 64] weight)");
  EXPECT_EQ(FindMatrixSource(**gpt2, *c, "mlp.up", 0).status().code(), absl::StatusCode::kNotFound);

  auto neox = formats::OpenSafetensors(FixtureDir() + "gpt_neox");
  ASSERT_TRUE(neox.ok());
  auto cn = ReadModelConfig(**neox);
  ASSERT_TRUE(cn.ok());
  auto v = FindMatrixSource(**neox, *cn, "attn.v", 1);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->tensor, "gpt_neox.layers.1.attention.query_key_value.weight");
  const int64_t hd = cn->head_dim;
  EXPECT_EQ(v->fused_block, absl::StrCat("rows h*", 3 * hd, "+", 2 * hd, ":h*", 3 * hd, "+", 3 * hd,
                                         " of every head h"));
}

TEST(ArchitectureTest, UnknownModelTypesAreRefused) {
  // A config.json naming an unsupported model_type, beside a copy of a fixture's weights.
  const fs::path dir = fs::temp_directory_path() /
                       ("laserd_architecture_test_" + std::to_string(::getpid()) + "_bert");
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(FixtureDir() + "llama/model.safetensors", dir / "model.safetensors");
  std::ofstream(dir / "config.json") << R"({"model_type": "bert"})";
  auto src = formats::OpenSafetensors(dir.string());
  ASSERT_TRUE(src.ok()) << src.status();
  auto a = ArchitectureOf(**src);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(a.status().message().find("supported: llama, mistral, qwen2, gpt2, gptj, gpt_neox"),
            std::string::npos)
      << a.status();
  std::ofstream(dir / "config.json") << R"({"hidden_size": 64})";
  auto src2 = formats::OpenSafetensors(dir.string());
  ASSERT_TRUE(src2.ok());
  EXPECT_EQ(ArchitectureOf(**src2).status().code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(ArchitectureTest, ExportWritesTheSourceNamesBack) {
  for (const auto& [dir, family] : Fixtures()) {
    LoadedModel l = Load(FixtureDir() + dir);
    ASSERT_TRUE(l.model) << dir;
    EXPECT_EQ(ExportedNames(l, dir), Names(*l.weights)) << dir;
  }
}

TEST(ArchitectureTest, SmolLm2GgufNamesAndExportNames) {
  const std::string path = SmolLm2Gguf();
  if (!fs::exists(path)) LASERD_SKIP_OR_FAIL_IN_CI(path << " not found");
  LoadedModel l = Load(path);
  ASSERT_TRUE(l.model);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(ArchName(c.arch), std::string("llama"));
  EXPECT_EQ(c.model_type, "llama");
  CheckNames(*l.weights, c, "SmolLM2 GGUF");
  // The export holds, for every GGUF tensor, the safetensors tensor of the same role.
  const Architecture& a = *c.arch;
  std::set<std::string> want;
  for (const std::string& n : Names(*l.weights)) {
    auto role = RoleOfTensor(a, FileFormat::kGguf, "", n);
    ASSERT_TRUE(role.has_value()) << n;
    const std::string hf =
        TensorName(a, FileFormat::kSafetensors, a.safetensors.prefixes.front(), *role);
    ASSERT_FALSE(hf.empty()) << n;
    want.insert(hf);
  }
  EXPECT_TRUE(want.count("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(want.count("model.embed_tokens.weight"));
  EXPECT_EQ(ExportedNames(l, "smollm2_gguf"), want);
}

}  // namespace
}  // namespace laserd::model
