// The supported architecture families, one entry each (see architecture.h):
// tensor names for safetensors and GGUF, layout and forward-pass facts, and
// the config readers. Tensor names as transformers and llama.cpp write them.
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/architecture.h"
#include "engine/model/config.h"

namespace laserd::model {
namespace {

using nlohmann::json;

// ------------------------------------------------------------------ Llama ---
// Llama, Mistral, Qwen2 (q/k/v biases where the checkpoint has them).

absl::Status ReadLlamaHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"intermediate_size"}));
  c->kv_heads = cfg.Num({"num_key_value_heads"}).value_or(c->heads);
  c->head_dim = cfg.Num({"head_dim"}).value_or(c->head_dim);
  c->intermediate = im;
  c->max_positions = cfg.Num({"max_position_embeddings"}).value_or(2048);
  c->norm_eps = cfg.Num({"rms_norm_eps"}).value_or(1e-6);
  c->rope_theta = cfg.RopeTheta(10000.0);
  c->rotary_dim = c->head_dim;
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", false);
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("hidden_act", "silu")));
  return cfg.CheckNoRopeScaling();
}

// GGUF keys are prefixed with the architecture (cfg's key prefix).
absl::Status ReadLlamaGguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double h, cfg.Req({"embedding_length"}));
  LASERD_ASSIGN_OR_RETURN(const double l, cfg.Req({"block_count"}));
  LASERD_ASSIGN_OR_RETURN(const double nh, cfg.Req({"attention.head_count"}));
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"feed_forward_length"}));
  c->hidden = h;
  c->layers = l;
  c->heads = nh;
  c->kv_heads = cfg.Num({"attention.head_count_kv"}).value_or(c->heads);
  c->head_dim = cfg.Num({"attention.key_length"}).value_or(c->heads ? c->hidden / c->heads : 0);
  c->intermediate = im;
  c->max_positions = cfg.Num({"context_length"}).value_or(2048);
  c->norm_eps = cfg.Num({"attention.layer_norm_rms_epsilon"}).value_or(1e-5);
  c->rope_theta = cfg.Num({"rope.freq_base"}).value_or(10000.0);
  c->rotary_dim = cfg.Num({"rope.dimension_count"}).value_or(c->head_dim);
  c->act = kernels::Activation::kSilu;
  if (auto v = cfg.Num({"vocab_size"})) {
    c->vocab_size = *v;
  } else if (auto it = cfg.doc().find("tokenizer.ggml.tokens");
             it != cfg.doc().end() && it->is_array()) {
    c->vocab_size = it->size();
  }
  if (std::string s = cfg.Str("rope.scaling.type", "none"); s != "none") {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": rope scaling '", s, "' is not supported"));
  }
  return absl::OkStatus();
}

// A LlamaConfig-style config.json from the GGUF metadata.
absl::StatusOr<json> LlamaHfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  const json& md = src.metadata();
  const Architecture& a = *c.arch;
  const ModelType* type = a.FindModelType(formats::FileFormat::kGguf, c.model_type);
  auto has = [&](TensorKind kind, std::vector<std::string> types) {
    return src.Has(TensorName(a, formats::FileFormat::kGguf, "",
                              {kind, 0, std::move(types), kind == TensorKind::kMatrix}));
  };
  json cfg = {
      {"architectures", {type->hf_class}},
      {"model_type", type->hf},
      {"hidden_size", c.hidden},
      {"intermediate_size", c.intermediate},
      {"num_hidden_layers", c.layers},
      {"num_attention_heads", c.heads},
      {"num_key_value_heads", c.kv_heads},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"max_position_embeddings", c.max_positions},
      {"vocab_size", c.vocab_size},
      {"tie_word_embeddings", !has(TensorKind::kHead, {})},
      {"attention_bias", has(TensorKind::kMatrix, {"attn.q"})},
      {"mlp_bias", false},
      {"torch_dtype", "float32"},
      {"dtype", "float32"},
  };
  if (type->hf == "llama") cfg["pretraining_tp"] = 1;
  if (c.bos_id) cfg["bos_token_id"] = *c.bos_id;
  if (c.eos_id) cfg["eos_token_id"] = *c.eos_id;
  if (auto it = md.find("tokenizer.ggml.padding_token_id");
      it != md.end() && it->is_number_integer()) {
    cfg["pad_token_id"] = *it;
  }
  if (auto it = md.find("general.name"); it != md.end() && it->is_string()) {
    cfg["_name_or_path"] = *it;
  }
  return cfg;
}

Architecture MakeLlama() {
  Architecture a;
  a.name = "llama";
  a.model_types = {{"llama", "llama", "LlamaForCausalLM", /*gguf_rotary_permuted=*/true},
                   {"mistral", "mistral", "MistralForCausalLM"},
                   {"qwen2", "qwen2", "Qwen2ForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"model."};
  st.embed = "embed_tokens";
  st.final_norm = {"norm"};
  st.head = "lm_head";
  st.attn_norm = {"layers.{L}.input_layernorm"};
  st.mlp_norm = {"layers.{L}.post_attention_layernorm"};
  st.matrices = {
      {{"attn.q"}, "layers.{L}.self_attn.q_proj"}, {{"attn.k"}, "layers.{L}.self_attn.k_proj"},
      {{"attn.v"}, "layers.{L}.self_attn.v_proj"}, {{"attn.o"}, "layers.{L}.self_attn.o_proj"},
      {{"mlp.in"}, "layers.{L}.mlp.gate_proj"},    {{"mlp.up"}, "layers.{L}.mlp.up_proj"},
      {{"mlp.out"}, "layers.{L}.mlp.down_proj"}};
  TensorNaming& gg = a.gguf;
  gg.embed = "token_embd";
  gg.final_norm = {"output_norm"};
  gg.head = "output";
  gg.attn_norm = {"blk.{L}.attn_norm"};
  gg.mlp_norm = {"blk.{L}.ffn_norm"};
  gg.matrices = {{{"attn.q"}, "blk.{L}.attn_q"},   {{"attn.k"}, "blk.{L}.attn_k"},
                 {{"attn.v"}, "blk.{L}.attn_v"},   {{"attn.o"}, "blk.{L}.attn_output"},
                 {{"mlp.in"}, "blk.{L}.ffn_gate"}, {{"mlp.up"}, "blk.{L}.ffn_up"},
                 {{"mlp.out"}, "blk.{L}.ffn_down"}};
  a.norm = NormKind::kRms;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kNeox;
  a.gated_mlp = true;
  a.read_hf = ReadLlamaHf;
  a.read_gguf = ReadLlamaGguf;
  a.hf_config_from_gguf = LlamaHfConfigFromGguf;
  return a;
}

// ------------------------------------------------------------------ GPT-2 ---

absl::Status ReadGpt2Hf(const ConfigReader& cfg, ModelConfig* c) {
  c->intermediate = cfg.Num({"n_inner"}).value_or(4 * c->hidden);
  c->max_positions = cfg.Num({"n_positions", "max_position_embeddings"}).value_or(1024);
  c->norm_eps = cfg.Num({"layer_norm_epsilon"}).value_or(1e-5);
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", true);
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("activation_function", "gelu_new")));
  return absl::OkStatus();
}

Architecture MakeGpt2() {
  Architecture a;
  a.name = "gpt2";
  a.model_types = {{"gpt2", "", "GPT2LMHeadModel"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"transformer.", ""};
  st.embed = "wte";
  st.pos_embed = "wpe";
  st.final_norm = {"ln_f", true};
  st.head = "lm_head";
  st.attn_norm = {"h.{L}.ln_1", true};
  st.mlp_norm = {"h.{L}.ln_2", true};
  // Conv1D layers store [in, out]; c_attn holds q, k, v side by side.
  constexpr MatrixLayout kConv = MatrixLayout::kConv1D;
  st.matrices = {
      {{"attn.q", "attn.k", "attn.v"}, "h.{L}.attn.c_attn", kConv, FusedSplit::kStacked, true},
      {{"attn.o"}, "h.{L}.attn.c_proj", kConv, FusedSplit::kStacked, true},
      {{"mlp.in"}, "h.{L}.mlp.c_fc", kConv, FusedSplit::kStacked, true},
      {{"mlp.out"}, "h.{L}.mlp.c_proj", kConv, FusedSplit::kStacked, true}};
  a.norm = NormKind::kLayer;
  a.position = PositionKind::kLearned;
  a.config_ties_head = true;
  a.read_hf = ReadGpt2Hf;
  return a;
}

// ------------------------------------------------------------------ GPT-J ---

absl::Status ReadGptJHf(const ConfigReader& cfg, ModelConfig* c) {
  c->intermediate = cfg.Num({"n_inner"}).value_or(4 * c->hidden);
  c->max_positions = cfg.Num({"n_positions", "max_position_embeddings"}).value_or(2048);
  c->norm_eps = cfg.Num({"layer_norm_epsilon"}).value_or(1e-5);
  c->rotary_dim = cfg.Num({"rotary_dim"}).value_or(c->head_dim);
  c->rope_theta = cfg.RopeTheta(10000.0);
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", false);
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("activation_function", "gelu_new")));
  return absl::OkStatus();
}

Architecture MakeGptJ() {
  Architecture a;
  a.name = "gptj";
  a.model_types = {{"gptj", "", "GPTJForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"transformer."};
  st.embed = "wte";
  st.final_norm = {"ln_f", true};
  st.head = "lm_head";
  st.head_bias = true;
  st.attn_norm = {"h.{L}.ln_1", true};  // the MLP reads ln_1's output too
  st.matrices = {{{"attn.q"}, "h.{L}.attn.q_proj"}, {{"attn.k"}, "h.{L}.attn.k_proj"},
                 {{"attn.v"}, "h.{L}.attn.v_proj"}, {{"attn.o"}, "h.{L}.attn.out_proj"},
                 {{"mlp.in"}, "h.{L}.mlp.fc_in"},   {{"mlp.out"}, "h.{L}.mlp.fc_out"}};
  a.norm = NormKind::kLayer;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kGptj;
  a.parallel_residual = true;
  a.read_hf = ReadGptJHf;
  return a;
}

// --------------------------------------------------------------- GPT-NeoX ---

absl::Status ReadGptNeoXHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"intermediate_size"}));
  c->intermediate = im;
  c->max_positions = cfg.Num({"max_position_embeddings"}).value_or(2048);
  c->norm_eps = cfg.Num({"layer_norm_eps"}).value_or(1e-5);
  double pct = cfg.Num({"rotary_pct", "partial_rotary_factor"}).value_or(1.0);
  if (auto it = cfg.doc().find("rope_parameters"); it != cfg.doc().end() && it->is_object()) {
    pct = ConfigReader(*it, cfg.where()).Num({"partial_rotary_factor"}).value_or(pct);
  }
  c->rotary_dim = static_cast<int64_t>(c->head_dim * pct);
  c->rope_theta = cfg.RopeTheta(10000.0);
  c->parallel_residual = cfg.Flag("use_parallel_residual", true);
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", false);
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("hidden_act", "gelu")));
  return absl::OkStatus();
}

Architecture MakeGptNeoX() {
  Architecture a;
  a.name = "gpt_neox";
  a.model_types = {{"gpt_neox", "", "GPTNeoXForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"gpt_neox."};
  st.embed = "embed_in";
  st.final_norm = {"final_layer_norm", true};
  st.head = "embed_out";
  st.attn_norm = {"layers.{L}.input_layernorm", true};
  st.mlp_norm = {"layers.{L}.post_attention_layernorm", true};
  st.matrices = {{{"attn.q", "attn.k", "attn.v"},
                  "layers.{L}.attention.query_key_value",
                  MatrixLayout::kLinear,
                  FusedSplit::kPerHead,
                  true},
                 {{"attn.o"}, "layers.{L}.attention.dense"},
                 {{"mlp.in"}, "layers.{L}.mlp.dense_h_to_4h"},
                 {{"mlp.out"}, "layers.{L}.mlp.dense_4h_to_h"}};
  a.norm = NormKind::kLayer;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kNeox;
  a.parallel_residual = true;
  a.read_hf = ReadGptNeoXHf;
  return a;
}

// ---------------------------------------------------------------- Mixtral ---
// Llama attention with a mixture-of-experts MLP: a router (block_sparse_moe.
// gate) and per-expert gated MLPs w1 (gate, moe.in), w3 (up, moe.up), w2
// (down, moe.out), as transformers saves MixtralForCausalLM.

// The mixture-of-experts keys every MoE config.json has; INVALID_ARGUMENT
// naming the key for a count out of range.
absl::Status ReadExpertCounts(const ConfigReader& cfg, const char* experts_key, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double e, cfg.Req({experts_key}));
  LASERD_ASSIGN_OR_RETURN(const double k, cfg.Req({"num_experts_per_tok"}));
  c->experts = e;
  c->experts_per_token = k;
  if (c->experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(), ": ", experts_key, " must be at least 1, got ", c->experts));
  }
  if (c->experts_per_token < 1 || c->experts_per_token > c->experts) {
    return absl::InvalidArgumentError(absl::StrCat(cfg.where(), ": num_experts_per_tok ",
                                                   c->experts_per_token, " is outside [1, ",
                                                   experts_key, " = ", c->experts, "]"));
  }
  return absl::OkStatus();
}

absl::Status ReadMixtralHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadExpertCounts(cfg, "num_local_experts", c));
  c->moe_intermediate = c->intermediate;
  c->norm_topk_prob = true;  // Mixtral always renormalises the top-k weights
  // A sliding attention window shorter than the context changes attention.
  if (auto w = cfg.Num({"sliding_window"}); w && *w < c->max_positions) {
    return absl::UnimplementedError(absl::StrCat(cfg.where(), ": sliding_window ", *w,
                                                 " (shorter than max_position_embeddings ",
                                                 c->max_positions, ") is not supported"));
  }
  return absl::OkStatus();
}

Architecture MakeMixtral() {
  Architecture a = MakeLlama();
  a.name = "mixtral";
  a.model_types = {{"mixtral", "", "MixtralForCausalLM"}};
  a.gguf = TensorNaming();
  a.read_gguf = nullptr;
  a.hf_config_from_gguf = nullptr;
  a.moe = true;
  TensorNaming& st = a.safetensors;
  st.matrices = {{{"attn.q"}, "layers.{L}.self_attn.q_proj"},
                 {{"attn.k"}, "layers.{L}.self_attn.k_proj"},
                 {{"attn.v"}, "layers.{L}.self_attn.v_proj"},
                 {{"attn.o"}, "layers.{L}.self_attn.o_proj"},
                 {{kRouterMatrixType}, "layers.{L}.block_sparse_moe.gate"}};
  st.expert_matrices = {{{"moe.in"}, "layers.{L}.block_sparse_moe.experts.{E}.w1"},
                        {{"moe.up"}, "layers.{L}.block_sparse_moe.experts.{E}.w3"},
                        {{"moe.out"}, "layers.{L}.block_sparse_moe.experts.{E}.w2"}};
  a.read_hf = ReadMixtralHf;
  return a;
}

// -------------------------------------------------------------- Qwen2-MoE ---
// Qwen2 attention (q/k/v biases) with a mixture of experts plus a shared
// expert: the shared expert is a dense gated MLP (mlp.in / mlp.up / mlp.out,
// intermediate size shared_expert_intermediate_size) whose output is scaled
// by sigmoid(moe.shared_gate · x) and added to the experts' sum.

absl::Status ReadQwen2MoeHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadExpertCounts(cfg, "num_experts", c));
  LASERD_ASSIGN_OR_RETURN(const double mi, cfg.Req({"moe_intermediate_size"}));
  LASERD_ASSIGN_OR_RETURN(const double si, cfg.Req({"shared_expert_intermediate_size"}));
  c->moe_intermediate = mi;
  c->intermediate = si;  // the shared expert's mlp.* matrices
  c->norm_topk_prob = cfg.Flag("norm_topk_prob", false);
  // Every layer must be a mixture-of-experts layer.
  if (auto step = cfg.Num({"decoder_sparse_step"}); step && *step != 1) {
    return absl::UnimplementedError(absl::StrCat(cfg.where(), ": decoder_sparse_step ", *step,
                                                 " (dense MLP layers) is not supported"));
  }
  if (auto it = cfg.doc().find("mlp_only_layers");
      it != cfg.doc().end() && it->is_array() && !it->empty()) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": mlp_only_layers ", it->dump(), " is not supported"));
  }
  if (cfg.Flag("use_sliding_window", false)) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": use_sliding_window true is not supported"));
  }
  return absl::OkStatus();
}

Architecture MakeQwen2Moe() {
  Architecture a = MakeMixtral();
  a.name = "qwen2_moe";
  a.model_types = {{"qwen2_moe", "", "Qwen2MoeForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.matrices = {{{"attn.q"}, "layers.{L}.self_attn.q_proj"},
                 {{"attn.k"}, "layers.{L}.self_attn.k_proj"},
                 {{"attn.v"}, "layers.{L}.self_attn.v_proj"},
                 {{"attn.o"}, "layers.{L}.self_attn.o_proj"},
                 {{kRouterMatrixType}, "layers.{L}.mlp.gate"},
                 {{"mlp.in"}, "layers.{L}.mlp.shared_expert.gate_proj"},
                 {{"mlp.up"}, "layers.{L}.mlp.shared_expert.up_proj"},
                 {{"mlp.out"}, "layers.{L}.mlp.shared_expert.down_proj"},
                 {{kSharedExpertGateType}, "layers.{L}.mlp.shared_expert_gate"}};
  st.expert_matrices = {{{"moe.in"}, "layers.{L}.mlp.experts.{E}.gate_proj"},
                        {{"moe.up"}, "layers.{L}.mlp.experts.{E}.up_proj"},
                        {{"moe.out"}, "layers.{L}.mlp.experts.{E}.down_proj"}};
  a.read_hf = ReadQwen2MoeHf;
  return a;
}

}  // namespace

const std::vector<const Architecture*>& Architectures() {
  static const auto* kAll = new std::vector<const Architecture*>{
      new Architecture(MakeLlama()),   new Architecture(MakeGpt2()),
      new Architecture(MakeGptJ()),    new Architecture(MakeGptNeoX()),
      new Architecture(MakeMixtral()), new Architecture(MakeQwen2Moe())};
  return *kAll;
}

}  // namespace laserd::model
