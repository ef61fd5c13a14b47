#include "server/model_description.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/proto_time.h"
#include "server/sha256.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

// Canonical type → the aliases of the paper's code.
const std::map<std::string, std::string>& AliasOf() {
  static const auto* m = new std::map<std::string, std::string>{
      {"attn.q", "q_proj"}, {"attn.k", "k_proj"}, {"attn.v", "v_proj"}, {"attn.o", "out_proj"},
      {"mlp.in", "fc_in"},  {"mlp.up", "fc_up"},  {"mlp.out", "fc_out"}};
  return *m;
}

// The model's hash: of the GGUF file, or of a safetensors directory's
// index.json then its shards in file name order (or model.safetensors).
std::string ModelSha256(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (!fs::is_directory(p)) return FileSha256(path);
  std::string cat;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(p)) {
    const std::string n = e.path().filename().string();
    if (n == "model.safetensors.index.json" || e.path().extension() == ".safetensors") {
      files.push_back(n);
    }
  }
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    const bool ai = absl::EndsWith(a, ".json"), bi = absl::EndsWith(b, ".json");
    return ai != bi ? ai : a < b;
  });
  for (const std::string& n : files) {
    std::ifstream f(p / n, std::ios::binary);
    cat.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return Sha256Hex(cat);
}

// A string value of the GGUF metadata, or `dflt`.
std::string MetaString(const nlohmann::json& meta, bool gguf, const char* key,
                       const std::string& dflt) {
  if (gguf && meta.contains(key) && meta[key].is_string()) return meta[key].get<std::string>();
  return dflt;
}

}  // namespace

SourceTensor SourceTensorOf(const formats::WeightSource& w, const std::string& type,
                            const model::ModelConfig& c) {
  static const std::map<std::string, std::vector<std::string>> kNames = {
      {"attn.q",
       {"blk.0.attn_q.weight", "layers.0.self_attn.q_proj.weight", "h.0.attn.q_proj.weight"}},
      {"attn.k",
       {"blk.0.attn_k.weight", "layers.0.self_attn.k_proj.weight", "h.0.attn.k_proj.weight"}},
      {"attn.v",
       {"blk.0.attn_v.weight", "layers.0.self_attn.v_proj.weight", "h.0.attn.v_proj.weight"}},
      {"attn.o",
       {"blk.0.attn_output.weight", "layers.0.self_attn.o_proj.weight", "h.0.attn.out_proj.weight",
        "h.0.attn.c_proj.weight", "layers.0.attention.dense.weight"}},
      {"mlp.in",
       {"blk.0.ffn_gate.weight", "layers.0.mlp.gate_proj.weight", "h.0.mlp.fc_in.weight",
        "h.0.mlp.c_fc.weight", "layers.0.mlp.dense_h_to_4h.weight"}},
      {"mlp.up", {"blk.0.ffn_up.weight", "layers.0.mlp.up_proj.weight"}},
      {"mlp.out",
       {"blk.0.ffn_down.weight", "layers.0.mlp.down_proj.weight", "h.0.mlp.fc_out.weight",
        "h.0.mlp.c_proj.weight", "layers.0.mlp.dense_4h_to_h.weight"}}};
  auto find = [&](const std::string& suffix) -> const formats::TensorInfo* {
    for (const auto& t : w.tensors()) {
      if (t.name == suffix || absl::EndsWith(t.name, "." + suffix)) return &t;
    }
    return nullptr;
  };
  SourceTensor out;
  if (auto it = kNames.find(type); it != kNames.end()) {
    for (const std::string& n : it->second) {
      if (const auto* t = find(n)) {
        out.name = t->name;
        out.dtype = formats::DTypeName(t->dtype);
        return out;
      }
    }
  }
  const int j = type == "attn.q" ? 0 : type == "attn.k" ? 1 : type == "attn.v" ? 2 : -1;
  if (j < 0) return out;
  const int64_t d = c.hidden, hd = c.head_dim;
  if (const auto* t = find("h.0.attn.c_attn.weight")) {  // GPT-2 Conv1D [d, 3d]
    out = {t->name, formats::DTypeName(t->dtype),
           absl::StrCat("rows ", j * d, ":", (j + 1) * d, " (of the transposed [3d, d] weight)")};
  } else if (const auto* t2 = find("layers.0.attention.query_key_value.weight")) {
    out = {t2->name, formats::DTypeName(t2->dtype),
           absl::StrCat("rows h*", 3 * hd, "+", j * hd, ":h*", 3 * hd, "+", (j + 1) * hd,
                        " of every head h")};
  }
  return out;
}

absl::StatusOr<pb::ModelInfo> DescribeLoadedModel(const std::string& path,
                                                  const eval::LoadedModel& lm,
                                                  const std::vector<std::string>& device_names,
                                                  int64_t cache_budget_bytes) {
  namespace fs = std::filesystem;
  const model::ModelConfig& c = lm.model->config();
  pb::ModelInfo mi;
  const fs::path p(path);
  mi.set_path(path);
  const bool gguf = lm.weights->format() == formats::FileFormat::kGguf;
  mi.set_format(gguf ? "gguf" : "safetensors");
  const nlohmann::json& meta = lm.weights->metadata();
  mi.set_name(MetaString(meta, gguf, "general.name",
                         fs::is_directory(p) ? p.filename().string() : p.stem().string()));
  mi.set_sha256(ModelSha256(path));
  mi.set_architecture(model::ArchName(c.arch));
  mi.set_num_layers(static_cast<int32_t>(c.layers));
  mi.set_hidden_size(c.hidden);
  mi.set_intermediate_size(c.intermediate);
  mi.set_num_attention_heads(static_cast<int32_t>(c.heads));
  mi.set_num_key_value_heads(static_cast<int32_t>(c.kv_heads));
  mi.set_vocab_size(c.vocab_size);
  mi.set_context_length(c.max_positions);
  mi.set_tied_embeddings(c.tied_embeddings);
  mi.set_parameter_count(lm.model->ParameterCount());
  std::set<std::string> dtypes;
  for (const auto& t : lm.weights->tensors()) dtypes.insert(formats::DTypeName(t.dtype));
  for (const auto& d : dtypes) mi.add_source_dtypes(d);
  mi.set_compute_dtype("F32");
  const bool cuda = lm.backend->kind() == kernels::DeviceKind::kCuda;
  mi.set_device(cuda ? pb::DEVICE_CUDA : pb::DEVICE_CPU);
  mi.set_device_name(lm.backend->name());
  for (const std::string& d : device_names) mi.add_devices(d);
  for (const std::string& type : lm.model->MatrixTypes()) {
    LASERD_ASSIGN_OR_RETURN(const auto* w, lm.model->Matrix(type, 0));
    pb::MatrixTypeInfo* t = mi.add_matrix_types();
    t->set_matrix_type(type);
    t->add_aliases(AliasOf().at(type));
    t->set_rows(w->rows());
    t->set_cols(w->cols());
    t->set_max_rank(std::min(w->rows(), w->cols()));
    for (int32_t l = 0; l < c.layers; ++l) t->add_layers(l);
    const SourceTensor src = SourceTensorOf(*lm.weights, type, c);
    t->set_source_tensor(src.name);
    t->set_source_dtype(src.dtype);
    t->set_fused_block(src.fused_block);
  }
  pb::TokenizerInfo* ti = mi.mutable_tokenizer();
  const std::string tok_model = MetaString(meta, gguf, "tokenizer.ggml.model", "gpt2");
  ti->set_kind(tok_model == "llama" ? "sentencepiece_bpe" : "byte_level_bpe");
  if (const std::string pre = MetaString(meta, gguf, "tokenizer.ggml.pre", ""); !pre.empty()) {
    ti->set_pre_tokenizer(pre);
  }
  ti->set_add_bos(lm.tokenizer->adds_bos());
  ti->set_bos_token_id(lm.tokenizer->bos_id().value_or(-1));
  ti->set_eos_token_id(lm.tokenizer->eos_id().value_or(-1));
  *mi.mutable_load_time() = ProtoNow();
  // Every replica holds its own copy of the weights.
  mi.mutable_memory()->set_weights_bytes(lm.model->ParameterCount() * 4 *
                                         static_cast<int64_t>(device_names.size()));
  mi.mutable_memory()->set_cache_budget_bytes(cache_budget_bytes);
  return mi;
}

}  // namespace laserd::server
