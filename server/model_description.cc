#include "server/model_description.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "engine/laser/rank.h"
#include "engine/model/architecture.h"
#include "server/proto_time.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

// The model's hash: of the GGUF file, or of a safetensors directory's
// index.json then its shards in file name order (or model.safetensors),
// streamed (a sharded model is never held in memory to hash it).
std::string ModelSha256(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (!fs::is_directory(p)) return FileSha256(path);
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
  for (std::string& n : files) n = (p / n).string();
  return FilesSha256(files);
}

// A string value of the GGUF metadata, or `dflt`.
std::string MetaString(const nlohmann::json& meta, bool gguf, const char* key,
                       const std::string& dflt) {
  if (gguf && meta.contains(key) && meta[key].is_string()) return meta[key].get<std::string>();
  return dflt;
}

}  // namespace

absl::StatusOr<pb::ModelInfo> DescribeLoadedModel(const std::string& path,
                                                  const model::LoadedModel& lm,
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
    t->add_aliases(laser::PaperAlias(type));
    t->set_rows(w->rows());
    t->set_cols(w->cols());
    t->set_max_rank(std::min(w->rows(), w->cols()));
    for (int32_t l = 0; l < c.layers; ++l) t->add_layers(l);
    // Where layer 0's matrix lives in the file, from the architecture's
    // description (the one the loader read it by).
    const auto src = model::FindMatrixSource(*lm.weights, c, type, /*layer=*/0);
    if (src.ok()) {
      t->set_source_tensor(src->tensor);
      t->set_source_dtype(src->dtype);
      t->set_fused_block(src->fused_block);
    } else if (!absl::IsNotFound(src.status())) {
      return src.status();
    }
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
