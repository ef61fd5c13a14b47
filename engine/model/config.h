// A model's configuration: its architecture (engine/model/architecture.h) and
// the per-checkpoint numbers, read from config.json (safetensors) or the GGUF
// metadata by the architecture's config reader.
#ifndef LASERD_ENGINE_MODEL_CONFIG_H_
#define LASERD_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "engine/model/architecture.h"
#include "engine/model/rope_scaling.h"
#include "kernels/ops.h"
#include "nlohmann/json.hpp"

namespace laserd::model {

struct ModelConfig {
  const Architecture* arch = nullptr;
  std::string model_type;  // as the source names it: llama, mistral, qwen2, gpt2, gptj, gpt_neox
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  int64_t max_positions = 0;  // context length
  int64_t rotary_dim = 0;     // 0: no rotary (learned positions)
  double rope_theta = 10000.0;
  RopeScaling rope;  // scaled rotary frequencies (rope_scaling / rope_parameters)
  double norm_eps = 1e-5;
  bool tied_embeddings = false;
  bool parallel_residual = false;  // see Architecture::parallel_residual
  kernels::Activation act = kernels::Activation::kSilu;
  std::optional<int32_t> bos_id, eos_id;

  // Attention and logit options (Gemma 2 / Gemma 3); the defaults are plain
  // causal attention scaled by 1/sqrt(head_dim) and raw logits.
  double attn_scale = 0.0;          // > 0: the attention scale (query_pre_attn_scalar^-0.5)
  double attn_softcap = 0.0;        // > 0: attention logits soft-capped (AttentionParams)
  double final_softcap = 0.0;       // > 0: final logits = cap · tanh(logits / cap)
  int64_t sliding_window = 0;       // window of the sliding layers
  std::vector<bool> layer_sliding;  // per layer (empty: none): sliding-window attention
  // > 0: rotary base of the sliding layers, unscaled (Gemma 3); `rope`
  // scales the other layers only.
  double rope_local_theta = 0.0;
  bool qk_norm = false;  // per-head q/k norms (TensorNaming::q_norm, k_norm)

  // Mixture of experts (Architecture::moe): every layer routes each token to
  // its experts_per_token highest-probability experts (softmax of the
  // router logits, top-k, renormalised to sum 1 when norm_topk_prob) and
  // sums their gated MLPs (intermediate size moe_intermediate) weighted by
  // those probabilities. experts == 0: a dense MLP.
  int64_t experts = 0;
  int64_t experts_per_token = 0;
  int64_t moe_intermediate = 0;
  bool norm_topk_prob = true;
};

// Typed reads from a config object: config.json, or GGUF metadata whose keys
// are prefixed with the GGUF architecture ("llama.block_count"). `where`
// names the file in errors.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& cfg, std::string where, std::string key_prefix = "")
      : cfg_(cfg), where_(std::move(where)), prefix_(std::move(key_prefix)) {}

  const nlohmann::json& doc() const { return cfg_; }
  const std::string& where() const { return where_; }

  // The first present key (as a number).
  std::optional<double> Num(std::initializer_list<const char*> keys) const;
  // Same, INVALID_ARGUMENT naming the first key when none is present.
  absl::StatusOr<double> Req(std::initializer_list<const char*> keys) const;
  std::string Str(const char* key, const std::string& dflt) const;
  bool Flag(const char* key, bool dflt) const;
  // An integer key (unprefixed: token ids are global GGUF keys).
  std::optional<int32_t> Id(const char* key) const;
  // rope_theta (or rotary_emb_base, or rope_parameters.rope_theta as
  // transformers >= 5 nests it).
  double RopeTheta(double dflt) const;
  // The rope scaling of config.json (rope_scaling, or rope_parameters as
  // transformers >= 5 writes it) into c->rope, as transformers reads it;
  // needs c->rotary_dim and c->max_positions (max_position_embeddings), and
  // raises c->max_positions to factor × max_position_embeddings for dynamic
  // scaling (the context it extends to). `aliases` renames types first
  // (Phi-3 configs call longrope "su" or "yarn"). UNIMPLEMENTED naming the
  // type for a type laserd does not compute, INVALID_ARGUMENT naming the key
  // for a missing or malformed parameter.
  absl::Status ReadRopeScaling(
      ModelConfig* c,
      std::initializer_list<std::pair<const char*, const char*>> aliases = {}) const;

 private:
  const nlohmann::json* Find(const char* key) const;
  const nlohmann::json& cfg_;
  std::string where_, prefix_;
};

// Hugging Face activation names (silu, gelu_new, gelu, relu, ...).
absl::StatusOr<kernels::Activation> ParseActivation(const std::string& name);

// The architecture and configuration of `src`, checked for consistent
// dimensions (INVALID_ARGUMENT otherwise).
absl::StatusOr<ModelConfig> ReadModelConfig(const formats::WeightSource& src);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_CONFIG_H_
