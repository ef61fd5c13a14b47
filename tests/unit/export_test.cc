// laserd export: merged and factored files reload to the edited model's logits
// (tiny fixtures of three architectures and SmolLM2's GGUF), the factored file
// is smaller, the safetensors layout is valid, and bad inputs are refused.
#include "engine/laser/export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/formats/weights.h"
#include "engine/laser/intervention.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/ops.h"
#include "tests/support/requirements.h"
#include "tests/support/test_model.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;
using test_support::LoadedModel;
using test_support::LoadTestModel;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  return std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

fs::path TempDir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("laserd_export_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

const std::vector<std::vector<int32_t>> kSeqs = {
    {1, 17, 42, 99, 200, 3, 7, 128, 255, 64}, {5, 6, 7}, {250, 0, 13, 31, 77, 101}};

// Parses a safetensors header and checks the layout rules of the format.
nlohmann::json CheckedHeader(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "header not padded to 8 bytes";
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  int64_t end = 0;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(t["dtype"], "F32") << name;
    int64_t elems = 1;
    for (int64_t s : t["shape"]) elems *= s;
    const int64_t b = t["data_offsets"][0], e = t["data_offsets"][1];
    EXPECT_EQ(e - b, elems * 4) << name;
    ranges.push_back({b, e});
    end = std::max(end, e);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 0; i < ranges.size(); ++i)
    EXPECT_EQ(ranges[i].first, i ? ranges[i - 1].second : 0) << "gap or overlap";
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), static_cast<int64_t>(8 + n) + end);
  return h;
}

struct Case {
  std::string fixture;
  std::string edits;
  int64_t factored;    // matrices stored as factors in the factored file
  int64_t kept_dense;  // edited q/k/v of a fused tensor
};

class ExportRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(ExportRoundTrip, MergedAndFactoredReloadToTheEditedLogits) {
  const Case& c = GetParam();
  LoadedModel l = LoadTestModel(Fixture(c.fixture));
  ASSERT_TRUE(l.model);
  auto base = l.model->Logits(kSeqs);
  ASSERT_TRUE(base.ok()) << base.status();

  auto edits = ParseEdits(c.edits, l.model->MatrixTypes(), l.model->config().layers);
  ASSERT_TRUE(edits.ok()) << edits.status();
  kernels::SvdOptions svd;
  svd.method = kernels::SvdMethod::kExact;
  Editor editor(l.model.get());
  auto applied = ApplyEdits(l.model.get(), *edits, svd, &editor);
  ASSERT_TRUE(applied.ok()) << applied.status();
  auto edited = l.model->Logits(kSeqs);
  ASSERT_TRUE(edited.ok()) << edited.status();
  // The edits change the model (so the comparisons below can fail).
  EXPECT_GT(MaxAbsDiff(*base, *edited), 1e-3);

  const fs::path merged = TempDir(c.fixture + "_merged");
  auto rm = WriteExport(*l.src, l.model.get(), *applied, ExportFormat::kMerged, merged.string());
  ASSERT_TRUE(rm.ok()) << rm.status();
  EXPECT_EQ(rm->dense_tensors_factored, 0);
  EXPECT_TRUE(fs::exists(merged / "config.json"));
  auto hm = CheckedHeader(rm->weights_path);
  ASSERT_TRUE(hm.contains("__metadata__"));
  EXPECT_EQ(hm["__metadata__"]["laserd_export"], "merged");
  auto meta_edits = nlohmann::json::parse(hm["__metadata__"]["laserd_edits"].get<std::string>());
  ASSERT_EQ(meta_edits.size(), applied->size());
  EXPECT_EQ(meta_edits[0]["k"], (*applied)[0].k);
  // Same tensor names and shapes as the source (a Hugging Face checkpoint).
  for (const formats::TensorInfo& t : l.src->tensors()) {
    ASSERT_TRUE(hm.contains(t.name)) << t.name;
    EXPECT_EQ(hm[t.name]["shape"].get<std::vector<int64_t>>(), t.shape) << t.name;
  }
  EXPECT_EQ(hm.size(), l.src->tensors().size() + 1);

  LoadedModel lm = LoadTestModel(merged.string());
  ASSERT_TRUE(lm.model);
  auto merged_logits = lm.model->Logits(kSeqs);
  ASSERT_TRUE(merged_logits.ok());
  EXPECT_LE(MaxAbsDiff(*edited, *merged_logits), 1e-6);

  const fs::path factored = TempDir(c.fixture + "_factored");
  auto rf =
      WriteExport(*l.src, l.model.get(), *applied, ExportFormat::kFactored, factored.string());
  ASSERT_TRUE(rf.ok()) << rf.status();
  EXPECT_EQ(rf->dense_tensors_factored, c.factored);
  EXPECT_EQ(rf->edits_kept_dense, c.kept_dense);
  auto hf = CheckedHeader(rf->weights_path);
  EXPECT_EQ(hf["__metadata__"]["laserd_export"], "factored");
  int64_t pairs = 0;
  for (auto& [name, t] : hf.items()) {
    if (name.size() > 8 && name.substr(name.size() - 8) == ".laser_a") {
      const std::string dense = name.substr(0, name.size() - 8);
      EXPECT_FALSE(hf.contains(dense)) << dense;
      ASSERT_TRUE(hf.contains(dense + ".laser_b"));
      EXPECT_EQ(t["shape"][1], hf[dense + ".laser_b"]["shape"][1]);
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, c.factored);
  EXPECT_LT(rf->weights_bytes, rm->weights_bytes);
  EXPECT_LT(rf->weights_bytes,
            static_cast<int64_t>(fs::file_size(Fixture(c.fixture) + "/model.safetensors")));

  LoadedModel lf = LoadTestModel(factored.string());
  ASSERT_TRUE(lf.model);
  auto factored_logits = lf.model->Logits(kSeqs);
  ASSERT_TRUE(factored_logits.ok());
  EXPECT_LE(MaxAbsDiff(*merged_logits, *factored_logits), 1e-5);
  EXPECT_LE(MaxAbsDiff(*edited, *factored_logits), 1e-5);

  // The model is left as it was once the editor restores it.
  editor.RestoreAll();
  auto again = l.model->Logits(kSeqs);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(MaxAbsDiff(*base, *again), 0.0);
  fs::remove_all(merged);
  fs::remove_all(factored);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ExportRoundTrip,
    ::testing::Values(
        Case{"llama", "attn.q:0:0.25,k_proj:0:0.5,mlp.up:1:0.1,fc_out:1:0.2,attn.o:1:0.05", 5, 0},
        // c_attn is fused: the q edit stays dense; c_fc / c_proj are Conv1D [in, out].
        Case{"gpt2", "attn.q:0:0.25,mlp.in:1:0.1,mlp.out:0:0.2,attn.o:1:0.3", 3, 1},
        Case{"gpt_neox", "attn.v:1:0.25,mlp.in:0:0.1,mlp.out:1:0.05,attn.o:0:0.3", 3, 1},
        // Rope-scaled, tied, q/k-normed, partial-rotary and fused families.
        Case{"llama3_2_tied", "attn.v:0:0.25,mlp.in:1:0.1,attn.o:0:0.3", 3, 0},
        Case{"llama_yarn", "attn.q:1:0.25,mlp.out:0:0.2", 2, 0},
        Case{"qwen3", "attn.q:0:0.25,attn.k:1:0.5,mlp.up:1:0.1,mlp.out:0:0.2", 4, 0},
        Case{"phi", "attn.q:0:0.25,attn.o:1:0.3,mlp.in:1:0.1,mlp.out:0:0.2", 4, 0},
        // qkv_proj and gate_up_proj are fused: their edits stay dense.
        Case{"phi3", "attn.k:0:0.5,mlp.up:1:0.1,attn.o:1:0.3,mlp.out:0:0.2", 2, 2},
        Case{"phi4_mini", "attn.q:1:0.25,mlp.in:0:0.1,mlp.out:1:0.2", 1, 2},
        // One expert's matrices and the router of a mixture of experts.
        Case{"mixtral", "moe.in[1]:0:0.25,moe.out[3]:1:0.2,moe.up[0]:1:0.1,moe.router:1:0.5", 4, 0},
        // The shared expert (mlp.*) and an expert of Qwen2-MoE.
        Case{"qwen2_moe", "mlp.in:0:0.25,moe.up[2]:1:0.2,mlp.out:1:0.1", 3, 0},
        // Qwen3-MoE and OLMoE: experts, the router and q/k-normed attention.
        Case{"qwen3_moe", "moe.in[2]:0:0.25,moe.out[1]:1:0.2,moe.router:0:0.5,attn.q:1:0.25", 4, 0},
        Case{"olmoe", "moe.up[3]:1:0.25,moe.out[0]:0:0.2,attn.k:0:0.5", 3, 0},
        // Sliding-window attention: the window stays in the exported config.json.
        Case{"mistral_swa", "attn.q:0:0.25,mlp.out:1:0.2", 2, 0},
        Case{"qwen2_swa", "attn.v:1:0.25,mlp.in:0:0.1", 2, 0}),
    [](const auto& info) { return info.param.fixture; });

TEST(ExportEdits, ParsesAliasesAndRefusesBadItems) {
  const std::vector<std::string> gpt2 = {"attn.q", "attn.k", "attn.v",
                                         "attn.o", "mlp.in", "mlp.out"};
  auto e = ParseEdits("fc_in:1:0.1,attn.o:0:1", gpt2, 2);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].type, "mlp.in");
  EXPECT_EQ((*e)[0].layer, 1);
  EXPECT_DOUBLE_EQ((*e)[0].rho, 0.1);
  EXPECT_EQ((*e)[1].type, "attn.o");
  EXPECT_DOUBLE_EQ((*e)[1].rho, 1.0);
  struct Bad {
    const char* spec;
    const char* msg;
  };
  for (const Bad& b : {Bad{"mlp.up:0:0.1", "has no mlp.up"}, Bad{"mlp.in:2:0.1", "layer '2'"},
                       Bad{"mlp.in:-1:0.1", "layer '-1'"}, Bad{"mlp.in:0:0", "rho '0'"},
                       Bad{"mlp.in:0:1.5", "rho '1.5'"}, Bad{"mlp.in:0", "expected T:layer:rho"},
                       Bad{"mlp.in:0:0.1,fc_in:0:0.2", "edited twice"}, Bad{"", "no edit"},
                       Bad{"bogus:0:0.1", "bogus"}}) {
    auto r = ParseEdits(b.spec, gpt2, 2);
    ASSERT_FALSE(r.ok()) << b.spec;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << b.spec;
    EXPECT_THAT(r.status().message(), HasSubstr(b.msg)) << b.spec;
  }
  EXPECT_TRUE(ParseExportFormat("merged").ok());
  EXPECT_EQ(ParseExportFormat("dense").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExportSafetensors, WriterOutputIsReadBackExactly) {
  const fs::path dir = TempDir("writer");
  fs::create_directories(dir);
  std::vector<StTensor> ts = {{"b.weight", {2, 3}, {1, -2, 3.5f, 4, 5, 6e-8f}},
                              {"a", {3}, {7, 8, 9}},
                              {"c.scalar", {}, {42}}};
  const std::string path = (dir / "x.safetensors").string();
  ASSERT_TRUE(WriteSafetensorsF32(path, ts, {{"note", "hello"}}).ok());
  auto h = CheckedHeader(path);
  EXPECT_EQ(h["__metadata__"]["note"], "hello");
  auto src = formats::OpenSafetensors(path);
  ASSERT_TRUE(src.ok()) << src.status();
  for (const StTensor& t : ts) {
    auto r = (*src)->LoadF32(t.name);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->shape, t.shape);
    EXPECT_EQ(r->data, t.data);
  }
  std::vector<StTensor> dup = {{"a", {1}, {1}}, {"a", {1}, {2}}};
  EXPECT_EQ(WriteSafetensorsF32(path, dup, {}).code(), absl::StatusCode::kInvalidArgument);
  std::vector<StTensor> bad = {{"a", {2, 2}, {1, 2, 3}}};
  EXPECT_EQ(WriteSafetensorsF32(path, bad, {}).code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(ExportSafetensors, UnpairedOrMismatchedFactorsAreRefused) {
  LoadedModel l = LoadTestModel(Fixture("llama"));
  ASSERT_TRUE(l.model);
  const std::string w = "model.layers.0.mlp.up_proj.weight";
  auto make = [&](const std::string& name, std::vector<StTensor> extra, bool drop) {
    const fs::path dir = TempDir(name);
    fs::create_directories(dir);
    fs::copy_file(Fixture("llama") + "/config.json", dir / "config.json");
    std::vector<StTensor> ts;
    for (const formats::TensorInfo& t : l.src->tensors()) {
      if (drop && t.name == w) continue;
      auto d = l.src->LoadF32(t.name);
      ts.push_back({t.name, d->shape, d->data});
    }
    for (auto& e : extra) ts.push_back(e);
    EXPECT_TRUE(WriteSafetensorsF32((dir / "model.safetensors").string(), ts, {}).ok());
    auto src = formats::OpenWeights(dir.string());
    EXPECT_TRUE(src.ok());
    auto m = model::Model::Load(**src, l.backend.get());
    fs::remove_all(dir);
    return m.status();
  };
  StTensor a{w + ".laser_a", {128, 2}, std::vector<float>(256, 0.5f)};
  StTensor b{w + ".laser_b", {64, 2}, std::vector<float>(128, 0.5f)};
  StTensor b3{w + ".laser_b", {64, 3}, std::vector<float>(192, 0.5f)};
  auto s1 = make("unpaired", {a}, true);
  EXPECT_EQ(s1.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s1.message(), HasSubstr("has no " + w + ".laser_b"));
  auto s2 = make("mismatch", {a, b3}, true);
  EXPECT_EQ(s2.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s2.message(), HasSubstr("same k"));
  auto s3 = make("both", {a, b}, false);
  EXPECT_EQ(s3.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s3.message(), HasSubstr("both dense and factored"));
  EXPECT_TRUE(make("ok", {a, b}, true).ok());
}

// SmolLM2's GGUF (Q4_1, permuted Q/K rows, GGUF names) exports to a Hugging
// Face Llama directory that laserd reloads to the edited model's logits.
TEST(ExportGguf, SmolLM2MergedAndFactoredReload) {
  const std::string path = std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(path)) LASERD_SKIP_OR_FAIL_IN_CI(path << " not found (scripts/fetch_model.sh)");
  LoadedModel l = LoadTestModel(path);
  ASSERT_TRUE(l.model);
  const std::vector<std::vector<int32_t>> seqs = {{1, 504, 3458, 282, 4649, 314, 3575, 30}};
  auto edits = ParseEdits("attn.q:3:0.1,attn.k:29:0.2,mlp.in:29:0.05", l.model->MatrixTypes(),
                          l.model->config().layers);
  ASSERT_TRUE(edits.ok());
  kernels::SvdOptions svd;
  svd.method = kernels::SvdMethod::kExact;
  Editor editor(l.model.get());
  auto applied = ApplyEdits(l.model.get(), *edits, svd, &editor);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)[0].k, 57);  // floor(576 * 0.1)
  auto edited = l.model->Logits(seqs);
  ASSERT_TRUE(edited.ok());
  const fs::path merged = TempDir("smollm2_merged"), factored = TempDir("smollm2_factored");
  auto rm = WriteExport(*l.src, l.model.get(), *applied, ExportFormat::kMerged, merged.string());
  ASSERT_TRUE(rm.ok()) << rm.status();
  auto cfg = nlohmann::json::parse(std::ifstream(merged / "config.json"));
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_EQ(cfg["hidden_size"], 576);
  EXPECT_EQ(cfg["num_key_value_heads"], 3);
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  // The tokenizer.json written from the GGUF vocabulary encodes the tokenizer
  // corpus exactly as the GGUF tokenizer does (llama.cpp reference ids).
  auto gguf_tok = tokenizer::LoadGgufTokenizer(l.src->metadata());
  ASSERT_TRUE(gguf_tok.ok()) << gguf_tok.status();
  auto json_tok = tokenizer::LoadTokenizerJson((merged / "tokenizer.json").string());
  ASSERT_TRUE(json_tok.ok()) << json_tok.status();
  EXPECT_FALSE((*json_tok)->adds_bos());
  std::ifstream texts(std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/tokenizer/texts.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(texts, line)) {
    const std::string text = nlohmann::json::parse(line).get<std::string>();
    auto a = (*gguf_tok)->Encode(text, false);
    auto b = (*json_tok)->Encode(text, false);
    ASSERT_TRUE(a.ok() && b.ok()) << text;
    EXPECT_EQ(*a, *b) << text;
    ++n;
  }
  EXPECT_GT(n, 20);
  auto tcfg = nlohmann::json::parse(std::ifstream(merged / "tokenizer_config.json"));
  EXPECT_EQ(tcfg["eos_token"], "<|im_end|>");
  EXPECT_TRUE(tcfg.contains("chat_template"));

  LoadedModel lm = LoadTestModel(merged.string());
  ASSERT_TRUE(lm.model);
  auto ml = lm.model->Logits(seqs);
  ASSERT_TRUE(ml.ok());
  EXPECT_LE(MaxAbsDiff(*edited, *ml), 1e-5);
  auto rf =
      WriteExport(*l.src, l.model.get(), *applied, ExportFormat::kFactored, factored.string());
  ASSERT_TRUE(rf.ok()) << rf.status();
  EXPECT_LT(rf->weights_bytes, rm->weights_bytes);
  LoadedModel lf = LoadTestModel(factored.string());
  ASSERT_TRUE(lf.model);
  auto fl = lf.model->Logits(seqs);
  ASSERT_TRUE(fl.ok());
  EXPECT_LE(MaxAbsDiff(*ml, *fl), 1e-5);
  fs::remove_all(merged);
  fs::remove_all(factored);
}

}  // namespace
}  // namespace laserd::laser
