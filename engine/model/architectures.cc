// The supported architecture families, one entry each (see architecture.h):
// tensor names for safetensors and GGUF, layout and forward-pass facts, and
// the config readers. Tensor names as transformers and llama.cpp write them.
#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/architecture.h"
#include "engine/model/config.h"

namespace laserd::model {
namespace {

using nlohmann::json;

// A number that may be null (null and absent both give nullopt); `present` is
// whether the key is there at all.
std::optional<double> NullableNum(const ConfigReader& cfg, const char* key, bool* present) {
  auto it = cfg.doc().find(key);
  *present = it != cfg.doc().end();
  if (!*present || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// ------------------------------------------------------- sliding windows ---
// Sliding-window attention as transformers applies it: a sliding layer's
// query at position p attends to the keys p - window < j <= p
// (ModelConfig::sliding_window, layer_sliding; AttentionParams::window).

// The window of config.json's sliding_window: its number, none (0) when it
// is null or `enabled` is false, `absent` when the key is missing.
// INVALID_ARGUMENT for a number < 1.
absl::StatusOr<int64_t> ReadWindow(const ConfigReader& cfg, bool enabled, int64_t absent) {
  if (!enabled) return 0;
  bool present = false;
  auto w = NullableNum(cfg, "sliding_window", &present);
  if (!present) return absent;
  if (!w) return 0;
  if (*w < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(), ": sliding_window must be at least 1 (or null), got ", *w));
  }
  return static_cast<int64_t>(*w);
}

// Every layer slides over `window` (0: none), as Mistral, Mixtral and
// Qwen3-MoE apply their one window.
void SetUniformWindow(int64_t window, ModelConfig* c) {
  c->sliding_window = window;
  c->layer_sliding.assign(window > 0 ? c->layers : 0, true);
}

// Per-layer windows (Qwen2, Qwen3, Qwen2-MoE): the layers config.json's
// layer_types marks "sliding_attention", else those `default_sliding` picks,
// slide over `window`. INVALID_ARGUMENT for sliding layers without a window
// (transformers refuses them too) and for a malformed layer_types.
absl::Status SetLayerWindows(const ConfigReader& cfg, int64_t window,
                             const std::function<bool(int64_t)>& default_sliding, ModelConfig* c) {
  std::vector<bool> sliding(c->layers, false);
  const json& doc = cfg.doc();
  if (auto it = doc.find("layer_types"); it != doc.end() && !it->is_null()) {
    if (!it->is_array() || static_cast<int64_t>(it->size()) != c->layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg.where(), ": layer_types must list one type per layer"));
    }
    for (int64_t i = 0; i < c->layers; ++i) {
      const json& t = (*it)[i];
      if (t == "sliding_attention") {
        sliding[i] = true;
      } else if (t != "full_attention") {
        return absl::UnimplementedError(
            absl::StrCat(cfg.where(), ": layer type ", t.dump(), " is not supported"));
      }
    }
  } else {
    for (int64_t i = 0; i < c->layers; ++i) sliding[i] = default_sliding(i);
  }
  const bool any = std::find(sliding.begin(), sliding.end(), true) != sliding.end();
  if (any && window == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(),
                     ": sliding_attention layers without a sliding window (use_sliding_window "
                     "false or sliding_window null)"));
  }
  c->sliding_window = any ? window : 0;
  c->layer_sliding = any ? std::move(sliding) : std::vector<bool>();
  return absl::OkStatus();
}

// Qwen2 and Qwen3: with use_sliding_window, the layers from
// max_window_layers (default 28) on slide over sliding_window (default 4096).
absl::Status ReadQwenWindows(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const int64_t window,
                          ReadWindow(cfg, cfg.Flag("use_sliding_window", false), 4096));
  const int64_t first = static_cast<int64_t>(cfg.Num({"max_window_layers"}).value_or(28));
  return SetLayerWindows(
      cfg, window, [&](int64_t i) { return window > 0 && i >= first; }, c);
}

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
  // Sliding windows: Mistral's on every layer (4096 when the key is absent,
  // as MistralConfig's default), Qwen2's per layer; Llama has none.
  if (c->model_type == "mistral") {
    LASERD_ASSIGN_OR_RETURN(const int64_t window, ReadWindow(cfg, true, 4096));
    SetUniformWindow(window, c);
  } else if (c->model_type == "qwen2") {
    LASERD_RETURN_IF_ERROR(ReadQwenWindows(cfg, c));
  }
  return cfg.ReadRopeScaling(c);
}

// The rope scaling keys llama.cpp writes ({arch}.rope.scaling.*) into c->rope;
// needs c->max_positions. Llama 3's llama3 scaling comes as the rope_freqs
// tensor and Phi-3's longrope as rope_factors_long / _short (read by the
// loader); the original context and attention factor keys are kept for them.
absl::Status ReadGgufRopeScaling(const ConfigReader& cfg, ModelConfig* c) {
  RopeScaling& r = c->rope;
  r = RopeScaling();
  const std::string type = cfg.Str("rope.scaling.type", "none");
  r.original_max_positions =
      cfg.Num({"rope.scaling.original_context_length"}).value_or(c->max_positions);
  r.factor = static_cast<double>(c->max_positions) / static_cast<double>(r.original_max_positions);
  if (type == "none" || type.empty()) {
    // longrope's attention factor, should the loader find its factor tensors.
    r.attention_factor =
        cfg.Num({"rope.scaling.attn_factor"})
            .value_or(r.factor <= 1.0
                          ? 1.0
                          : std::sqrt(1.0 + std::log(r.factor) / std::log(static_cast<double>(
                                                                     r.original_max_positions))));
    return absl::OkStatus();
  }
  auto factor = cfg.Num({"rope.scaling.factor"});
  if (!factor || *factor <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(), ": GGUF rope scaling '", type, "' needs rope.scaling.factor"));
  }
  r.factor = *factor;
  if (type == "linear") {
    r.type = RopeType::kLinear;
  } else if (type == "yarn") {
    r.type = RopeType::kYarn;
    if (auto v = cfg.Num({"rope.scaling.yarn_beta_fast"})) r.beta_fast = *v;
    if (auto v = cfg.Num({"rope.scaling.yarn_beta_slow"})) r.beta_slow = *v;
    r.attention_factor =
        cfg.Num({"rope.scaling.attn_factor"}).value_or(0.1 * std::log(r.factor) + 1.0);
  } else {
    return absl::UnimplementedError(absl::StrCat(cfg.where(), ": GGUF rope scaling type '", type,
                                                 "' is not supported (supported: none, linear, "
                                                 "yarn; llama3 and longrope as factor tensors)"));
  }
  return absl::OkStatus();
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
  return ReadGgufRopeScaling(cfg, c);
}

// The token ids and name every exported config.json takes from the GGUF.
void AddGgufIds(const formats::WeightSource& src, const ModelConfig& c, json* cfg) {
  const json& md = src.metadata();
  if (c.bos_id) (*cfg)["bos_token_id"] = *c.bos_id;
  if (c.eos_id) (*cfg)["eos_token_id"] = *c.eos_id;
  // null when the GGUF has none: some classes default to an id (Phi-3: 32000).
  (*cfg)["pad_token_id"] = nullptr;
  if (auto it = md.find("tokenizer.ggml.padding_token_id");
      it != md.end() && it->is_number_integer()) {
    (*cfg)["pad_token_id"] = *it;
  }
  if (auto it = md.find("general.name"); it != md.end() && it->is_string()) {
    (*cfg)["_name_or_path"] = *it;
  }
}

// Whether `src` stores the head (else it is tied to the embeddings).
bool GgufHasHead(const formats::WeightSource& src, const Architecture& a) {
  return src.Has(TensorName(a, formats::FileFormat::kGguf, "", {TensorKind::kHead, -1, {}, false}));
}

// longrope's rope_scaling for per-frequency factors (Phi-3's long / short
// factors, or llama.cpp's rope_freqs divisors as both, which longrope with
// one context length and attention factor 1 computes exactly:
// inv_freq_i = 1 / (factor_i · base^(2i/d))).
json LongRopeScaling(const std::vector<double>& long_factor,
                     const std::vector<double>& short_factor, int64_t original_max,
                     double attention_factor) {
  return {{"rope_type", "longrope"},
          {"long_factor", long_factor},
          {"short_factor", short_factor},
          {"original_max_position_embeddings", original_max},
          {"attention_factor", attention_factor}};
}

// The keys every LlamaConfig-like config.json written from a GGUF has: the
// class and model type, the dimensions, the head's tying, fp32.
json BaseHfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c,
                          const std::string& hf_class, const std::string& model_type) {
  return {{"architectures", {hf_class}},       {"model_type", model_type},
          {"hidden_size", c.hidden},           {"intermediate_size", c.intermediate},
          {"num_hidden_layers", c.layers},     {"num_attention_heads", c.heads},
          {"num_key_value_heads", c.kv_heads}, {"max_position_embeddings", c.max_positions},
          {"vocab_size", c.vocab_size},        {"tie_word_embeddings", !GgufHasHead(src, *c.arch)},
          {"torch_dtype", "float32"},          {"dtype", "float32"}};
}

// A LlamaConfig-style config.json from the GGUF metadata.
absl::StatusOr<json> LlamaHfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  const Architecture& a = *c.arch;
  const ModelType* type = a.FindModelType(formats::FileFormat::kGguf, c.model_type);
  auto has = [&](TensorKind kind, std::vector<std::string> types) {
    return src.Has(TensorName(a, formats::FileFormat::kGguf, "",
                              {kind, 0, std::move(types), kind == TensorKind::kMatrix}));
  };
  json cfg = BaseHfConfigFromGguf(src, c, type->hf_class, type->hf);
  cfg.update({{"head_dim", c.head_dim},
              {"hidden_act", "silu"},
              {"rms_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"attention_bias", has(TensorKind::kMatrix, {"attn.q"})},
              {"mlp_bias", false}});
  if (type->hf == "llama") cfg["pretraining_tp"] = 1;
  // Rope scaling from the GGUF keys; Llama 3's rope_freqs divisors as
  // longrope (alone: with a scaling type too, the file is refused).
  const RopeScaling& r = c.rope;
  if (!r.freq_factors.empty()) {
    if (r.type != RopeType::kDefault) {
      return absl::UnimplementedError(absl::StrCat(src.path(), ": rope_freqs with rope scaling '",
                                                   RopeTypeName(r.type), "' is not exported"));
    }
    cfg["rope_scaling"] = LongRopeScaling(r.freq_factors, r.freq_factors, c.max_positions, 1.0);
  } else if (r.type == RopeType::kLinear) {
    cfg["rope_scaling"] = {{"rope_type", "linear"}, {"factor", r.factor}};
  } else if (r.type == RopeType::kYarn) {
    cfg["rope_scaling"] = {{"rope_type", "yarn"},
                           {"factor", r.factor},
                           {"original_max_position_embeddings", r.original_max_positions},
                           {"attention_factor", r.attention_factor},
                           {"beta_fast", r.beta_fast},
                           {"beta_slow", r.beta_slow}};
  } else if (r.type != RopeType::kDefault) {
    return absl::UnimplementedError(absl::StrCat(
        src.path(), ": rope scaling '", RopeTypeName(r.type), "' of a GGUF is not exported"));
  }
  AddGgufIds(src, c, &cfg);
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
  gg.rope_freqs = "rope_freqs";
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

// gpt2 GGUF: feed_forward_length is the MLP width (llama.cpp's converter
// writes 4 · n_embd, GPT-2's n_inner default); the head is the stored output.
absl::Status ReadGpt2Gguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double h, cfg.Req({"embedding_length"}));
  LASERD_ASSIGN_OR_RETURN(const double l, cfg.Req({"block_count"}));
  LASERD_ASSIGN_OR_RETURN(const double nh, cfg.Req({"attention.head_count"}));
  c->hidden = h;
  c->layers = l;
  c->heads = nh;
  c->kv_heads = c->heads;
  c->head_dim = c->heads ? c->hidden / c->heads : 0;
  c->intermediate = cfg.Num({"feed_forward_length"}).value_or(4 * c->hidden);
  c->max_positions = cfg.Num({"context_length"}).value_or(1024);
  c->norm_eps = cfg.Num({"attention.layer_norm_epsilon"}).value_or(1e-5);
  c->act = kernels::Activation::kGeluTanh;
  c->tied_embeddings = false;
  if (auto v = cfg.Num({"vocab_size"})) {
    c->vocab_size = *v;
  } else if (auto it = cfg.doc().find("tokenizer.ggml.tokens");
             it != cfg.doc().end() && it->is_array()) {
    c->vocab_size = it->size();
  }
  return absl::OkStatus();
}

// GPT2Config from a gpt2 GGUF; the stored output is the head (untied).
absl::StatusOr<json> Gpt2HfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  json cfg = {{"architectures", {"GPT2LMHeadModel"}},
              {"model_type", "gpt2"},
              {"n_embd", c.hidden},
              {"n_layer", c.layers},
              {"n_head", c.heads},
              {"n_inner", c.intermediate},
              {"n_positions", c.max_positions},
              {"n_ctx", c.max_positions},
              {"layer_norm_epsilon", c.norm_eps},
              {"activation_function", "gelu_new"},
              {"vocab_size", c.vocab_size},
              {"tie_word_embeddings", !GgufHasHead(src, *c.arch)},
              {"scale_attn_weights", true},
              {"resid_pdrop", 0.0},
              {"embd_pdrop", 0.0},
              {"attn_pdrop", 0.0},
              {"torch_dtype", "float32"},
              {"dtype", "float32"}};
  AddGgufIds(src, c, &cfg);
  return cfg;
}

Architecture MakeGpt2() {
  Architecture a;
  a.name = "gpt2";
  a.model_types = {{"gpt2", "gpt2", "GPT2LMHeadModel"}};
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
  // GGUF (llama.cpp's gpt2): the Conv1D weights transposed to [out, in];
  // output.weight is a copy of token_embd.
  TensorNaming& gg = a.gguf;
  gg.embed = "token_embd";
  gg.pos_embed = "position_embd";
  gg.final_norm = {"output_norm", true};
  gg.head = "output";
  gg.attn_norm = {"blk.{L}.attn_norm", true};
  gg.mlp_norm = {"blk.{L}.ffn_norm", true};
  constexpr MatrixLayout kLin = MatrixLayout::kLinear;
  gg.matrices = {
      {{"attn.q", "attn.k", "attn.v"}, "blk.{L}.attn_qkv", kLin, FusedSplit::kStacked, true},
      {{"attn.o"}, "blk.{L}.attn_output", kLin, FusedSplit::kStacked, true},
      {{"mlp.in"}, "blk.{L}.ffn_up", kLin, FusedSplit::kStacked, true},
      {{"mlp.out"}, "blk.{L}.ffn_down", kLin, FusedSplit::kStacked, true}};
  a.norm = NormKind::kLayer;
  a.position = PositionKind::kLearned;
  a.config_ties_head = true;
  a.read_hf = ReadGpt2Hf;
  a.read_gguf = ReadGpt2Gguf;
  a.hf_config_from_gguf = Gpt2HfConfigFromGguf;
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

// ------------------------------------------- Qwen3, Phi-1.5/Phi-2, Phi-3 ---
// Families added with the scaled rotary embeddings (rope_scaling.h).

// partial_rotary_factor, top-level or in rope_parameters (transformers >= 5).
double PartialRotaryFactor(const ConfigReader& cfg) {
  double pct = cfg.Num({"partial_rotary_factor"}).value_or(1.0);
  if (auto it = cfg.doc().find("rope_parameters"); it != cfg.doc().end() && it->is_object()) {
    pct = ConfigReader(*it, cfg.where()).Num({"partial_rotary_factor"}).value_or(pct);
  }
  return pct;
}

// Qwen3 configs: Llama's keys and Qwen2's per-layer sliding windows.
absl::Status ReadQwen3Hf(const ConfigReader& cfg, ModelConfig* c) {
  c->qk_norm = true;
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  return ReadQwenWindows(cfg, c);
}

absl::Status ReadQwen3Gguf(const ConfigReader& cfg, ModelConfig* c) {
  c->qk_norm = true;
  return ReadLlamaGguf(cfg, c);
}

// Qwen3: Llama's layout plus an RMSNorm over each head of q and of k before
// the rotary embedding; head_dim is its own key (not hidden / heads).
Architecture MakeQwen3() {
  Architecture a = MakeLlama();
  a.name = "qwen3";
  a.model_types = {{"qwen3", "qwen3", "Qwen3ForCausalLM"}};
  a.safetensors.q_norm = {"layers.{L}.self_attn.q_norm"};
  a.safetensors.k_norm = {"layers.{L}.self_attn.k_norm"};
  a.gguf.q_norm = {"blk.{L}.attn_q_norm"};
  a.gguf.k_norm = {"blk.{L}.attn_k_norm"};
  a.read_hf = ReadQwen3Hf;
  a.read_gguf = ReadQwen3Gguf;
  return a;
}

// Phi-1.5 / Phi-2: one LayerNorm feeding attention and MLP in parallel,
// partial rotary, biases on every projection and on the LM head.
absl::Status ReadPhiHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"intermediate_size"}));
  c->intermediate = im;
  c->kv_heads = cfg.Num({"num_key_value_heads"}).value_or(c->heads);
  c->max_positions = cfg.Num({"max_position_embeddings"}).value_or(2048);
  c->norm_eps = cfg.Num({"layer_norm_eps"}).value_or(1e-5);
  c->rotary_dim = static_cast<int64_t>(c->head_dim * PartialRotaryFactor(cfg));
  c->rope_theta = cfg.RopeTheta(10000.0);
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", false);
  if (cfg.Flag("qk_layernorm", false)) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": phi option qk_layernorm=true is not supported"));
  }
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("hidden_act", "gelu_new")));
  return cfg.ReadRopeScaling(c);
}

// The dimensions llama.cpp writes for every architecture ({arch}.*).
absl::Status ReadGgufDimensions(const ConfigReader& cfg, ModelConfig* c) {
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
  c->rope_theta = cfg.Num({"rope.freq_base"}).value_or(10000.0);
  c->rotary_dim = cfg.Num({"rope.dimension_count"}).value_or(c->head_dim);
  if (auto v = cfg.Num({"vocab_size"})) {
    c->vocab_size = *v;
  } else if (auto it = cfg.doc().find("tokenizer.ggml.tokens");
             it != cfg.doc().end() && it->is_array()) {
    c->vocab_size = it->size();
  }
  return ReadGgufRopeScaling(cfg, c);
}

// phi2 GGUF (Phi-1.5 and Phi-2): llama.cpp writes feed_forward_length as
// 4 · hidden, which is their intermediate size.
absl::Status ReadPhiGguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadGgufDimensions(cfg, c));
  c->norm_eps = cfg.Num({"attention.layer_norm_epsilon"}).value_or(1e-5);
  c->act = kernels::Activation::kGeluTanh;
  return absl::OkStatus();
}

// PhiConfig from a phi2 GGUF.
absl::StatusOr<json> PhiHfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  json cfg = BaseHfConfigFromGguf(src, c, "PhiForCausalLM", "phi");
  cfg.update({{"partial_rotary_factor",
               static_cast<double>(c.rotary_dim) / static_cast<double>(c.head_dim)},
              {"layer_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"hidden_act", "gelu_new"},
              {"qk_layernorm", false},
              {"resid_pdrop", 0.0},
              {"embd_pdrop", 0.0},
              {"attention_dropout", 0.0}});
  if (c.rope.type != RopeType::kDefault || !c.rope.freq_factors.empty()) {
    return absl::UnimplementedError(absl::StrCat(src.path(), ": rope scaling '",
                                                 RopeTypeName(c.rope.type),
                                                 "' of a phi2 GGUF is not exported"));
  }
  AddGgufIds(src, c, &cfg);
  return cfg;
}

Architecture MakePhi() {
  Architecture a;
  a.name = "phi";
  a.model_types = {{"phi", "phi2", "PhiForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"model."};
  st.embed = "embed_tokens";
  st.final_norm = {"final_layernorm", true};
  st.head = "lm_head";
  st.head_bias = true;
  st.attn_norm = {"layers.{L}.input_layernorm", true};  // the MLP reads it too
  constexpr MatrixLayout kLin = MatrixLayout::kLinear;
  constexpr FusedSplit kOne = FusedSplit::kStacked;
  st.matrices = {{{"attn.q"}, "layers.{L}.self_attn.q_proj", kLin, kOne, true},
                 {{"attn.k"}, "layers.{L}.self_attn.k_proj", kLin, kOne, true},
                 {{"attn.v"}, "layers.{L}.self_attn.v_proj", kLin, kOne, true},
                 {{"attn.o"}, "layers.{L}.self_attn.dense", kLin, kOne, true},
                 {{"mlp.in"}, "layers.{L}.mlp.fc1", kLin, kOne, true},
                 {{"mlp.out"}, "layers.{L}.mlp.fc2", kLin, kOne, true}};
  a.norm = NormKind::kLayer;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kNeox;
  TensorNaming& gg = a.gguf;
  gg.embed = "token_embd";
  gg.final_norm = {"output_norm", true};
  gg.head = "output";
  gg.head_bias = true;
  gg.attn_norm = {"blk.{L}.attn_norm", true};
  gg.matrices = {{{"attn.q"}, "blk.{L}.attn_q", kLin, kOne, true},
                 {{"attn.k"}, "blk.{L}.attn_k", kLin, kOne, true},
                 {{"attn.v"}, "blk.{L}.attn_v", kLin, kOne, true},
                 {{"attn.o"}, "blk.{L}.attn_output", kLin, kOne, true},
                 {{"mlp.in"}, "blk.{L}.ffn_up", kLin, kOne, true},
                 {{"mlp.out"}, "blk.{L}.ffn_down", kLin, kOne, true}};
  a.parallel_residual = true;
  a.read_hf = ReadPhiHf;
  a.read_gguf = ReadPhiGguf;
  a.hf_config_from_gguf = PhiHfConfigFromGguf;
  return a;
}

// Phi-3 / Phi-3.5 / Phi-4-mini: Llama's blocks with q/k/v fused in qkv_proj
// and gate/up fused in gate_up_proj (split into the canonical matrices, fused
// again on export), partial rotary and longrope ("su") scaling.
absl::Status ReadPhi3Hf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"intermediate_size"}));
  c->kv_heads = cfg.Num({"num_key_value_heads"}).value_or(c->heads);
  c->head_dim = cfg.Num({"head_dim"}).value_or(c->head_dim);
  c->intermediate = im;
  c->max_positions = cfg.Num({"max_position_embeddings"}).value_or(4096);
  c->norm_eps = cfg.Num({"rms_norm_eps"}).value_or(1e-5);
  c->rope_theta = cfg.RopeTheta(10000.0);
  c->rotary_dim = static_cast<int64_t>(c->head_dim * PartialRotaryFactor(cfg));
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", false);
  LASERD_ASSIGN_OR_RETURN(c->act, ParseActivation(cfg.Str("hidden_act", "silu")));
  LASERD_RETURN_IF_ERROR(cfg.ReadRopeScaling(c, {{"su", "longrope"}, {"yarn", "longrope"}}));
  // Sliding-window attention (Phi-3-mini-4k: 2047) equals full attention on
  // sequences no longer than the window: the context is capped there.
  if (auto sw = cfg.Num({"sliding_window"}); sw && *sw > 0 && *sw < c->max_positions) {
    c->max_positions = static_cast<int64_t>(*sw);
  }
  return absl::OkStatus();
}

// phi3 GGUF: longrope comes as the rope_factors_long / _short tensors with
// rope.scaling.original_context_length and rope.scaling.attn_factor.
absl::Status ReadPhi3Gguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadGgufDimensions(cfg, c));
  c->norm_eps = cfg.Num({"attention.layer_norm_rms_epsilon"}).value_or(1e-5);
  c->act = kernels::Activation::kSilu;
  return absl::OkStatus();
}

// Phi3Config from a phi3 GGUF: longrope from the factor tensors (read into
// c.rope by the loader), with the GGUF's original context and attention factor.
absl::StatusOr<json> Phi3HfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  json cfg = BaseHfConfigFromGguf(src, c, "Phi3ForCausalLM", "phi3");
  cfg.update({{"partial_rotary_factor",
               static_cast<double>(c.rotary_dim) / static_cast<double>(c.head_dim)},
              {"rms_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"original_max_position_embeddings", c.max_positions},
              {"hidden_act", "silu"},
              {"sliding_window", nullptr},
              {"resid_pdrop", 0.0},
              {"embd_pdrop", 0.0},
              {"attention_dropout", 0.0}});
  const RopeScaling& r = c.rope;
  if (r.type == RopeType::kLongRope) {
    cfg["original_max_position_embeddings"] = r.original_max_positions;
    cfg["rope_scaling"] = LongRopeScaling(r.long_factor, r.short_factor, r.original_max_positions,
                                          r.attention_factor);
  } else if (r.type != RopeType::kDefault || !r.freq_factors.empty()) {
    return absl::UnimplementedError(absl::StrCat(
        src.path(), ": rope scaling '", RopeTypeName(r.type), "' of a phi3 GGUF is not exported"));
  }
  AddGgufIds(src, c, &cfg);
  return cfg;
}

Architecture MakePhi3() {
  Architecture a;
  a.name = "phi3";
  a.model_types = {{"phi3", "phi3", "Phi3ForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"model."};
  st.embed = "embed_tokens";
  st.final_norm = {"norm"};
  st.head = "lm_head";
  st.attn_norm = {"layers.{L}.input_layernorm"};
  st.mlp_norm = {"layers.{L}.post_attention_layernorm"};
  st.matrices = {{{"attn.q", "attn.k", "attn.v"}, "layers.{L}.self_attn.qkv_proj"},
                 {{"attn.o"}, "layers.{L}.self_attn.o_proj"},
                 {{"mlp.in", "mlp.up"}, "layers.{L}.mlp.gate_up_proj"},
                 {{"mlp.out"}, "layers.{L}.mlp.down_proj"}};
  a.norm = NormKind::kRms;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kNeox;
  TensorNaming& gg = a.gguf;
  gg.embed = "token_embd";
  gg.final_norm = {"output_norm"};
  gg.head = "output";
  gg.attn_norm = {"blk.{L}.attn_norm"};
  gg.mlp_norm = {"blk.{L}.ffn_norm"};
  gg.rope_factors_long = "rope_factors_long";
  gg.rope_factors_short = "rope_factors_short";
  gg.matrices = {{{"attn.q", "attn.k", "attn.v"}, "blk.{L}.attn_qkv"},
                 {{"attn.o"}, "blk.{L}.attn_output"},
                 {{"mlp.in", "mlp.up"}, "blk.{L}.ffn_up"},  // [gate; up]
                 {{"mlp.out"}, "blk.{L}.ffn_down"}};
  a.gated_mlp = true;
  a.read_hf = ReadPhi3Hf;
  a.read_gguf = ReadPhi3Gguf;
  a.hf_config_from_gguf = Phi3HfConfigFromGguf;
  return a;
}

// ------------------------------------------------------------------ Gemma ---
// Gemma 2 and Gemma 3 (text): (1 + w) RMSNorms, four norms per layer (plus
// per-head q/k norms in Gemma 3), GeGLU, embeddings × sqrt(hidden), sliding
// windows on local layers, soft-capping. Options laserd does not implement
// are refused by name.

bool IsGemma3(const ModelConfig& c) {
  return c.model_type == "gemma3_text" || c.model_type == "gemma3";
}

// One rope parameter object: its type must be default (or linear where
// `linear_ok`); returns its theta (or `dflt`) and its linear factor.
absl::Status ReadGemmaRope(const ConfigReader& cfg, const json& p, const std::string& what,
                           bool linear_ok, double dflt, double* theta, double* factor) {
  *theta = dflt;
  *factor = 1.0;
  if (!p.is_object()) return absl::OkStatus();
  const ConfigReader r(p, cfg.where());
  *theta = r.Num({"rope_theta"}).value_or(dflt);
  std::string type = r.Str("rope_type", r.Str("type", "default"));
  if (type == "linear" && linear_ok) {
    LASERD_ASSIGN_OR_RETURN(*factor, r.Req({"factor"}));
    if (*factor <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg.where(), ": ", what, " factor must be > 0"));
    }
  } else if (type != "default") {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": ", what, " rope type '", type, "' is not supported"));
  }
  return absl::OkStatus();
}

// Gemma 2: UNIMPLEMENTED for a rope_scaling / rope_parameters type other
// than "default".
absl::Status CheckNoRopeScaling(const ConfigReader& cfg) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto s = cfg.doc().find(key);
    if (s == cfg.doc().end() || !s->is_object()) continue;
    auto t = s->find("rope_type");
    if (t == s->end()) t = s->find("type");
    if (t != s->end() && t->is_string() && *t != "default") {
      return absl::UnimplementedError(absl::StrCat(cfg.where(), ": rope scaling type '",
                                                   t->get<std::string>(), "' is not supported"));
    }
  }
  return absl::OkStatus();
}

// Gemma 3's linear scaling of its global (full-attention) layers, as
// c->rope: the sliding layers take rope_local_theta unscaled.
void SetGemmaGlobalScaling(double factor, ModelConfig* c) {
  c->rope = RopeScaling();
  if (factor == 1.0) return;
  c->rope.type = RopeType::kLinear;
  c->rope.factor = factor;
}

absl::Status ReadGemmaHf(const ConfigReader& cfg, ModelConfig* c) {
  const bool g3 = IsGemma3(*c);
  c->qk_norm = g3;
  const json& doc = cfg.doc();
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"intermediate_size"}));
  c->kv_heads = cfg.Num({"num_key_value_heads"}).value_or(c->heads);
  c->head_dim = cfg.Num({"head_dim"}).value_or(256);
  c->intermediate = im;
  c->max_positions = cfg.Num({"max_position_embeddings"}).value_or(8192);
  c->norm_eps = cfg.Num({"rms_norm_eps"}).value_or(1e-6);
  c->rotary_dim = c->head_dim;
  c->tied_embeddings = cfg.Flag("tie_word_embeddings", true);
  LASERD_ASSIGN_OR_RETURN(
      c->act,
      ParseActivation(cfg.Str("hidden_activation", cfg.Str("hidden_act", "gelu_pytorch_tanh"))));
  // Refused options.
  for (const char* flag : {"attention_bias", "use_bidirectional_attention"}) {
    if (cfg.Flag(flag, false)) {
      return absl::UnimplementedError(absl::StrCat(cfg.where(), ": ", c->model_type, " option ",
                                                   flag, "=true is not supported"));
    }
  }
  for (const char* key : {"altup_num_inputs", "laurel_rank", "hidden_size_per_layer_input",
                          "num_kv_shared_layers", "activation_sparsity_pattern"}) {
    if (doc.contains(key)) {
      return absl::UnimplementedError(absl::StrCat(cfg.where(), ": ", c->model_type, " option ",
                                                   key, " is not supported (Gemma 3n)"));
    }
  }
  const double qpas = cfg.Num({"query_pre_attn_scalar"}).value_or(256);
  if (qpas <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(), ": query_pre_attn_scalar must be > 0"));
  }
  c->attn_scale = std::pow(qpas, -0.5);
  bool present = false;
  // Soft-capping: Gemma 2's defaults are 50 (attention) and 30 (final); null: off.
  auto attn_cap = NullableNum(cfg, "attn_logit_softcapping", &present);
  c->attn_softcap = attn_cap.value_or(present || g3 ? 0.0 : 50.0);
  auto final_cap = NullableNum(cfg, "final_logit_softcapping", &present);
  c->final_softcap = final_cap.value_or(present || g3 ? 0.0 : 30.0);
  if (c->attn_softcap < 0 || c->final_softcap < 0) {
    return absl::InvalidArgumentError(absl::StrCat(cfg.where(), ": soft-capping must be >= 0"));
  }
  auto window = NullableNum(cfg, "sliding_window", &present);
  c->sliding_window = static_cast<int64_t>(window.value_or(present ? 0 : 4096));
  if (c->sliding_window < 0) {
    return absl::InvalidArgumentError(absl::StrCat(cfg.where(), ": sliding_window must be >= 0"));
  }
  // Which layers are local: layer_types, else every layer but each
  // sliding_window_pattern-th (Gemma 3, default 6) or every other one (Gemma 2).
  c->layer_sliding.assign(c->layers, false);
  if (auto it = doc.find("layer_types"); it != doc.end() && !it->is_null()) {
    if (!it->is_array() || static_cast<int64_t>(it->size()) != c->layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg.where(), ": layer_types must list one type per layer"));
    }
    for (int64_t i = 0; i < c->layers; ++i) {
      const json& t = (*it)[i];
      if (t == "sliding_attention") {
        c->layer_sliding[i] = true;
      } else if (t != "full_attention") {
        return absl::UnimplementedError(
            absl::StrCat(cfg.where(), ": layer type ", t.dump(), " is not supported"));
      }
    }
  } else {
    const double pattern =
        g3 ? cfg.Num({"sliding_window_pattern", "_sliding_window_pattern"}).value_or(6) : 2;
    if (pattern < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg.where(), ": sliding_window_pattern must be >= 1"));
    }
    const int64_t pat = static_cast<int64_t>(pattern);
    for (int64_t i = 0; i < c->layers; ++i) c->layer_sliding[i] = (i + 1) % pat != 0;
  }
  if (c->sliding_window == 0) c->layer_sliding.assign(c->layers, false);
  // Rotary bases: Gemma 2 one (no scaling); Gemma 3 local (rope_local_base_freq,
  // 10k) and global (rope_theta, 1M, with linear scaling where configured),
  // flat or nested by layer type as transformers >= 5 writes rope_parameters.
  if (!g3) {
    c->rope_theta = cfg.RopeTheta(10000.0);
    return CheckNoRopeScaling(cfg);
  }
  const json* rp = nullptr;
  if (auto it = doc.find("rope_parameters"); it != doc.end() && it->is_object()) rp = &*it;
  double local_factor = 1.0, global_factor = 1.0;
  if (rp != nullptr && (rp->contains("full_attention") || rp->contains("sliding_attention"))) {
    LASERD_RETURN_IF_ERROR(ReadGemmaRope(cfg, rp->value("full_attention", json()), "full_attention",
                                         true, 1e6, &c->rope_theta, &global_factor));
    LASERD_RETURN_IF_ERROR(ReadGemmaRope(cfg, rp->value("sliding_attention", json()),
                                         "sliding_attention", false, 1e4, &c->rope_local_theta,
                                         &local_factor));
  } else {
    const double theta = cfg.Num({"rope_theta"}).value_or(1e6);
    const json scaling = doc.contains("rope_scaling") ? doc["rope_scaling"]
                         : rp != nullptr              ? *rp
                                                      : json();
    LASERD_RETURN_IF_ERROR(
        ReadGemmaRope(cfg, scaling, "rope_scaling", true, theta, &c->rope_theta, &global_factor));
    c->rope_local_theta = cfg.Num({"rope_local_base_freq"}).value_or(1e4);
  }
  SetGemmaGlobalScaling(global_factor, c);
  return absl::OkStatus();
}

absl::Status ReadGemmaGguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double h, cfg.Req({"embedding_length"}));
  LASERD_ASSIGN_OR_RETURN(const double l, cfg.Req({"block_count"}));
  LASERD_ASSIGN_OR_RETURN(const double nh, cfg.Req({"attention.head_count"}));
  LASERD_ASSIGN_OR_RETURN(const double im, cfg.Req({"feed_forward_length"}));
  c->hidden = h;
  c->layers = l;
  c->heads = nh;
  c->kv_heads = cfg.Num({"attention.head_count_kv"}).value_or(c->heads);
  c->head_dim = cfg.Num({"attention.key_length"}).value_or(c->heads ? c->hidden / c->heads : 0);
  if (auto vl = cfg.Num({"attention.value_length"}); vl && *vl != c->head_dim) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": attention.value_length differing from key_length"));
  }
  c->intermediate = im;
  c->max_positions = cfg.Num({"context_length"}).value_or(8192);
  c->rope_theta = cfg.Num({"rope.freq_base"}).value_or(IsGemma3(*c) ? 1e6 : 1e4);
  c->rotary_dim = c->head_dim;
  if (auto it = cfg.doc().find("tokenizer.ggml.tokens"); it != cfg.doc().end() && it->is_array()) {
    c->vocab_size = it->size();
  }
  if (auto v = cfg.Num({"vocab_size"})) c->vocab_size = *v;
  const bool g3 = IsGemma3(*c);
  c->qk_norm = g3;
  c->act = kernels::Activation::kGeluTanh;
  c->norm_eps = cfg.Num({"attention.layer_norm_rms_epsilon"}).value_or(1e-6);
  if (std::string s = cfg.Str("rope.scaling.type", "none"); s != "none" && !(g3 && s == "linear")) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": rope scaling '", s, "' is not supported"));
  }
  // llama.cpp: 1/sqrt(head_dim), but 1/sqrt(hidden / heads) for the 27B
  // models (46 layers of Gemma 2, 62 of Gemma 3), as their
  // query_pre_attn_scalar is.
  const bool is27b = c->layers == (g3 ? 62 : 46);
  c->attn_scale = 1.0 / std::sqrt(is27b ? static_cast<double>(c->hidden / c->heads)
                                        : static_cast<double>(c->head_dim));
  c->final_softcap = cfg.Num({"final_logit_softcapping"}).value_or(0.0);
  if (!g3) c->attn_softcap = cfg.Num({"attn_logit_softcapping"}).value_or(0.0);
  c->sliding_window = cfg.Num({"attention.sliding_window"}).value_or(g3 ? 0 : 4096);
  c->layer_sliding.assign(c->layers, false);
  if (c->sliding_window > 0) {
    const int64_t pat = g3 ? 6 : 2;  // llama.cpp's fixed patterns
    for (int64_t i = 0; i < c->layers; ++i) c->layer_sliding[i] = (i + 1) % pat != 0;
  }
  if (g3) {
    c->rope_local_theta = 10000.0;  // llama.cpp's fixed local base
    if (std::string s = cfg.Str("rope.scaling.type", "none"); s == "linear") {
      SetGemmaGlobalScaling(cfg.Num({"rope.scaling.factor"}).value_or(1.0), c);
    }
  }
  return absl::OkStatus();
}

// Gemma2Config / Gemma3TextConfig from the GGUF: query_pre_attn_scalar
// is the one giving llama.cpp's attention scale, layer_types the sliding
// pattern, soft-caps of 0 are null (off), Gemma 3's rotary bases per layer
// type (its global linear scaling included).
absl::StatusOr<json> GemmaHfConfigFromGguf(const formats::WeightSource& src, const ModelConfig& c) {
  const bool g3 = IsGemma3(c);
  auto cap = [](double v) { return v > 0 ? json(v) : json(nullptr); };
  json layer_types = json::array();
  for (bool s : c.layer_sliding) layer_types.push_back(s ? "sliding_attention" : "full_attention");
  const double qpas = 1.0 / (c.attn_scale * c.attn_scale);
  json cfg = BaseHfConfigFromGguf(src, c, g3 ? "Gemma3ForCausalLM" : "Gemma2ForCausalLM",
                                  g3 ? "gemma3_text" : "gemma2");
  cfg.update({{"head_dim", c.head_dim},
              {"rms_norm_eps", c.norm_eps},
              {"hidden_activation", "gelu_pytorch_tanh"},
              {"query_pre_attn_scalar", std::round(qpas) == std::round(qpas * 1e6) / 1e6
                                            ? json(static_cast<int64_t>(std::round(qpas)))
                                            : json(qpas)},
              {"attn_logit_softcapping", cap(c.attn_softcap)},
              {"final_logit_softcapping", cap(c.final_softcap)},
              {"sliding_window", c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr)},
              {"layer_types", layer_types},
              {"attention_bias", false},
              {"attention_dropout", 0.0}});
  if (g3) {
    json full = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
    if (c.rope.type == RopeType::kLinear) {
      full = {{"rope_type", "linear"}, {"factor", c.rope.factor}, {"rope_theta", c.rope_theta}};
    }
    cfg["rope_parameters"] = {
        {"full_attention", full},
        {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", c.rope_local_theta}}}};
  } else {
    cfg["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
  }
  AddGgufIds(src, c, &cfg);
  return cfg;
}

Architecture MakeGemma() {
  Architecture a;
  a.name = "gemma";
  a.model_types = {{"gemma2", "gemma2", "Gemma2ForCausalLM"},
                   {"gemma3_text", "gemma3", "Gemma3ForCausalLM"}};
  TensorNaming& st = a.safetensors;
  st.prefixes = {"model."};
  st.embed = "embed_tokens";
  st.final_norm = {"norm"};
  st.head = "lm_head";
  st.attn_norm = {"layers.{L}.input_layernorm"};
  st.mlp_norm = {"layers.{L}.pre_feedforward_layernorm"};
  st.post_attn_norm = {"layers.{L}.post_attention_layernorm"};
  st.post_mlp_norm = {"layers.{L}.post_feedforward_layernorm"};
  st.q_norm = {"layers.{L}.self_attn.q_norm"};
  st.k_norm = {"layers.{L}.self_attn.k_norm"};
  st.norm_weight_offset = 1.0f;
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
  gg.post_attn_norm = {"blk.{L}.post_attention_norm"};
  gg.post_mlp_norm = {"blk.{L}.post_ffw_norm"};
  gg.q_norm = {"blk.{L}.attn_q_norm"};
  gg.k_norm = {"blk.{L}.attn_k_norm"};
  gg.norm_weight_offset = 0.0f;  // llama.cpp's converter stores 1 + w
  gg.matrices = {{{"attn.q"}, "blk.{L}.attn_q"},   {{"attn.k"}, "blk.{L}.attn_k"},
                 {{"attn.v"}, "blk.{L}.attn_v"},   {{"attn.o"}, "blk.{L}.attn_output"},
                 {{"mlp.in"}, "blk.{L}.ffn_gate"}, {{"mlp.up"}, "blk.{L}.ffn_up"},
                 {{"mlp.out"}, "blk.{L}.ffn_down"}};
  a.norm = NormKind::kRms;
  a.position = PositionKind::kRotary;
  a.rope_style = kernels::RopeStyle::kNeox;
  a.gated_mlp = true;
  a.embed_scaled = true;
  a.read_hf = ReadGemmaHf;
  a.read_gguf = ReadGemmaGguf;
  a.hf_config_from_gguf = GemmaHfConfigFromGguf;
  return a;
}

// ---------------------------------------------------------------- Mixtral ---
// Llama attention with a mixture-of-experts MLP: a router (block_sparse_moe.
// gate) and per-expert gated MLPs w1 (gate, moe.in), w3 (up, moe.up), w2
// (down, moe.out), as transformers saves MixtralForCausalLM.

// The mixture-of-experts keys every MoE config.json has (the expert count
// under `experts_key`, or `alt_key` where transformers saves it so: its
// Qwen3-MoE config writes num_local_experts, published checkpoints
// num_experts); INVALID_ARGUMENT naming the key for a count out of range.
absl::Status ReadExpertCounts(const ConfigReader& cfg, const char* experts_key, ModelConfig* c,
                              const char* alt_key = nullptr) {
  LASERD_ASSIGN_OR_RETURN(const double e, alt_key != nullptr ? cfg.Req({experts_key, alt_key})
                                                             : cfg.Req({experts_key}));
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
  // Mistral's window on every layer (none when the key is absent, as
  // MixtralConfig's default).
  LASERD_ASSIGN_OR_RETURN(const int64_t window, ReadWindow(cfg, true, 0));
  SetUniformWindow(window, c);
  return absl::OkStatus();
}

// The mixture-of-experts keys llama.cpp writes ({arch}.expert_count,
// .expert_used_count); INVALID_ARGUMENT for a count out of range.
absl::Status ReadGgufExpertCounts(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double e, cfg.Req({"expert_count"}));
  LASERD_ASSIGN_OR_RETURN(const double k, cfg.Req({"expert_used_count"}));
  c->experts = e;
  c->experts_per_token = k;
  if (c->experts < 1 || c->experts_per_token < 1 || c->experts_per_token > c->experts) {
    return absl::InvalidArgumentError(absl::StrCat(cfg.where(), ": expert_used_count ",
                                                   c->experts_per_token, " is outside [1, ",
                                                   "expert_count = ", c->experts, "]"));
  }
  return absl::OkStatus();
}

// Mixtral GGUF: general.architecture llama with llama.expert_count; the
// experts' width is feed_forward_length (expert_feed_forward_length where
// written); the top-k weights are renormalised, as llama.cpp does for llama.
absl::Status ReadMixtralGguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadLlamaGguf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadGgufExpertCounts(cfg, c));
  c->moe_intermediate = cfg.Num({"expert_feed_forward_length"}).value_or(c->intermediate);
  c->norm_topk_prob = true;
  return absl::OkStatus();
}

// MixtralConfig from a Mixtral GGUF (llama with experts).
absl::StatusOr<json> MixtralHfConfigFromGguf(const formats::WeightSource& src,
                                             const ModelConfig& c) {
  LASERD_ASSIGN_OR_RETURN(json cfg, LlamaHfConfigFromGguf(src, c));
  cfg["num_local_experts"] = c.experts;
  cfg["num_experts_per_tok"] = c.experts_per_token;
  cfg["intermediate_size"] = c.moe_intermediate;
  cfg["sliding_window"] = nullptr;
  cfg["router_jitter_noise"] = 0.0;
  cfg.erase("attention_bias");
  cfg.erase("mlp_bias");
  return cfg;
}

// llama.cpp's GGUF names of a Llama-attention mixture of experts: the router
// ffn_gate_inp, each expert matrix stacked over the experts in ffn_*_exps.
TensorNaming MoeGgufNaming() {
  TensorNaming gg = MakeLlama().gguf;
  gg.matrices = {{{"attn.q"}, "blk.{L}.attn_q"},
                 {{"attn.k"}, "blk.{L}.attn_k"},
                 {{"attn.v"}, "blk.{L}.attn_v"},
                 {{"attn.o"}, "blk.{L}.attn_output"},
                 {{kRouterMatrixType}, "blk.{L}.ffn_gate_inp"}};
  gg.expert_matrices = {{{"moe.in"}, "blk.{L}.ffn_gate_exps"},
                        {{"moe.up"}, "blk.{L}.ffn_up_exps"},
                        {{"moe.out"}, "blk.{L}.ffn_down_exps"}};
  return gg;
}

Architecture MakeMixtral() {
  Architecture a = MakeLlama();
  a.name = "mixtral";
  a.model_types = {{"mixtral", "llama", "MixtralForCausalLM", /*gguf_rotary_permuted=*/true,
                    /*gguf_experts=*/true}};
  a.gguf = MoeGgufNaming();
  a.read_gguf = ReadMixtralGguf;
  a.hf_config_from_gguf = MixtralHfConfigFromGguf;
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

// Qwen2-MoE and Qwen3-MoE: every layer must be a mixture-of-experts layer
// (UNIMPLEMENTED naming decoder_sparse_step or mlp_only_layers otherwise).
absl::Status CheckEveryLayerSparse(const ConfigReader& cfg) {
  if (auto step = cfg.Num({"decoder_sparse_step"}); step && *step != 1) {
    return absl::UnimplementedError(absl::StrCat(cfg.where(), ": decoder_sparse_step ", *step,
                                                 " (dense MLP layers) is not supported"));
  }
  if (auto it = cfg.doc().find("mlp_only_layers");
      it != cfg.doc().end() && it->is_array() && !it->empty()) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": mlp_only_layers ", it->dump(), " is not supported"));
  }
  return absl::OkStatus();
}

absl::Status ReadQwen2MoeHf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadExpertCounts(cfg, "num_experts", c));
  LASERD_ASSIGN_OR_RETURN(const double mi, cfg.Req({"moe_intermediate_size"}));
  LASERD_ASSIGN_OR_RETURN(const double si, cfg.Req({"shared_expert_intermediate_size"}));
  c->moe_intermediate = mi;
  c->intermediate = si;  // the shared expert's mlp.* matrices
  c->norm_topk_prob = cfg.Flag("norm_topk_prob", false);
  LASERD_RETURN_IF_ERROR(CheckEveryLayerSparse(cfg));
  // With use_sliding_window, the even-indexed layers below max_window_layers
  // (default 28) slide over sliding_window (default 4096), as
  // Qwen2MoeConfig lays them out when layer_types is not listed.
  const bool use = cfg.Flag("use_sliding_window", false);
  LASERD_ASSIGN_OR_RETURN(const int64_t window, ReadWindow(cfg, use, 4096));
  const int64_t below = static_cast<int64_t>(cfg.Num({"max_window_layers"}).value_or(28));
  return SetLayerWindows(
      cfg, window, [&](int64_t i) { return use && (i + 1) % 2 != 0 && i < below; }, c);
}

// qwen2moe GGUF: expert_feed_forward_length (the experts) and
// expert_shared_feed_forward_length (the shared expert); llama.cpp never
// renormalises the top-k weights of qwen2moe.
absl::Status ReadQwen2MoeGguf(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_RETURN_IF_ERROR(ReadLlamaGguf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadGgufExpertCounts(cfg, c));
  LASERD_ASSIGN_OR_RETURN(const double mi, cfg.Req({"expert_feed_forward_length"}));
  LASERD_ASSIGN_OR_RETURN(const double si, cfg.Req({"expert_shared_feed_forward_length"}));
  c->moe_intermediate = mi;
  c->intermediate = si;
  c->norm_topk_prob = false;
  return absl::OkStatus();
}

// Qwen2MoeConfig from a qwen2moe GGUF.
absl::StatusOr<json> Qwen2MoeHfConfigFromGguf(const formats::WeightSource& src,
                                              const ModelConfig& c) {
  LASERD_ASSIGN_OR_RETURN(json cfg, LlamaHfConfigFromGguf(src, c));
  cfg["num_experts"] = c.experts;
  cfg["num_experts_per_tok"] = c.experts_per_token;
  cfg["moe_intermediate_size"] = c.moe_intermediate;
  cfg["shared_expert_intermediate_size"] = c.intermediate;
  cfg["norm_topk_prob"] = c.norm_topk_prob;
  cfg["decoder_sparse_step"] = 1;
  cfg["mlp_only_layers"] = json::array();
  cfg["use_sliding_window"] = false;
  cfg["qkv_bias"] = cfg["attention_bias"];
  cfg.erase("attention_bias");
  cfg.erase("mlp_bias");
  return cfg;
}

// Qwen2-MoE's safetensors names (Qwen3-MoE and OLMoE: the same without the
// shared expert): attention, the router `mlp.gate`, experts under
// `mlp.experts.{E}`, the shared expert's dense MLP as the layer's mlp.*.
void SetQwenMoeSafetensorsNames(bool shared_expert, TensorNaming* st) {
  st->matrices = {{{"attn.q"}, "layers.{L}.self_attn.q_proj"},
                  {{"attn.k"}, "layers.{L}.self_attn.k_proj"},
                  {{"attn.v"}, "layers.{L}.self_attn.v_proj"},
                  {{"attn.o"}, "layers.{L}.self_attn.o_proj"},
                  {{kRouterMatrixType}, "layers.{L}.mlp.gate"}};
  if (shared_expert) {
    st->matrices.insert(st->matrices.end(),
                        {{{"mlp.in"}, "layers.{L}.mlp.shared_expert.gate_proj"},
                         {{"mlp.up"}, "layers.{L}.mlp.shared_expert.up_proj"},
                         {{"mlp.out"}, "layers.{L}.mlp.shared_expert.down_proj"},
                         {{kSharedExpertGateType}, "layers.{L}.mlp.shared_expert_gate"}});
  }
  st->expert_matrices = {{{"moe.in"}, "layers.{L}.mlp.experts.{E}.gate_proj"},
                         {{"moe.up"}, "layers.{L}.mlp.experts.{E}.up_proj"},
                         {{"moe.out"}, "layers.{L}.mlp.experts.{E}.down_proj"}};
}

Architecture MakeQwen2Moe() {
  Architecture a = MakeMixtral();
  a.name = "qwen2_moe";
  a.model_types = {{"qwen2_moe", "qwen2moe", "Qwen2MoeForCausalLM"}};
  a.gguf = MoeGgufNaming();
  a.gguf.matrices.insert(a.gguf.matrices.end(),
                         {{{"mlp.in"}, "blk.{L}.ffn_gate_shexp"},
                          {{"mlp.up"}, "blk.{L}.ffn_up_shexp"},
                          {{"mlp.out"}, "blk.{L}.ffn_down_shexp"},
                          {{kSharedExpertGateType}, "blk.{L}.ffn_gate_inp_shexp"}});
  a.read_gguf = ReadQwen2MoeGguf;
  a.hf_config_from_gguf = Qwen2MoeHfConfigFromGguf;
  SetQwenMoeSafetensorsNames(/*shared_expert=*/true, &a.safetensors);
  a.read_hf = ReadQwen2MoeHf;
  return a;
}

// -------------------------------------------------------------- Qwen3-MoE ---
// Qwen3 attention (per-head q/k RMSNorms, head_dim its own key) with a
// mixture of experts and no shared expert: Qwen2-MoE's tensor names without
// the shared expert. intermediate_size (the dense MLP of layers that
// decoder_sparse_step / mlp_only_layers would make dense) is read but unused.

absl::Status ReadQwen3MoeHf(const ConfigReader& cfg, ModelConfig* c) {
  c->qk_norm = true;
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadExpertCounts(cfg, "num_experts", c, "num_local_experts"));
  LASERD_ASSIGN_OR_RETURN(const double mi, cfg.Req({"moe_intermediate_size"}));
  c->moe_intermediate = mi;
  c->norm_topk_prob = cfg.Flag("norm_topk_prob", false);
  LASERD_RETURN_IF_ERROR(CheckEveryLayerSparse(cfg));
  // With use_sliding_window, sliding_window (default 4096) on every layer:
  // Qwen3MoeConfig keeps no layer_types and its attention takes the one window.
  LASERD_ASSIGN_OR_RETURN(const int64_t window,
                          ReadWindow(cfg, cfg.Flag("use_sliding_window", false), 4096));
  SetUniformWindow(window, c);
  return absl::OkStatus();
}

Architecture MakeQwen3Moe() {
  Architecture a = MakeMixtral();
  a.name = "qwen3_moe";
  a.model_types = {{"qwen3_moe", "", "Qwen3MoeForCausalLM"}};
  // No GGUF reading (nor OLMoE's, which copies this): drop Mixtral's.
  a.gguf = TensorNaming{};
  a.read_gguf = nullptr;
  a.hf_config_from_gguf = nullptr;
  SetQwenMoeSafetensorsNames(/*shared_expert=*/false, &a.safetensors);
  a.safetensors.q_norm = {"layers.{L}.self_attn.q_norm"};
  a.safetensors.k_norm = {"layers.{L}.self_attn.k_norm"};
  a.read_hf = ReadQwen3MoeHf;
  return a;
}

// ------------------------------------------------------------------ OLMoE ---
// Llama blocks with RMSNorms over the whole q and k projections (weights
// [hidden] and [kv_heads * head_dim], before the rotary embedding) and a
// mixture of experts of intermediate_size each, no shared expert; Qwen3-MoE's
// tensor names. clip_qkv (clamping q, k and v) is refused by name.

absl::Status ReadOlmoeHf(const ConfigReader& cfg, ModelConfig* c) {
  c->qk_norm = true;
  LASERD_RETURN_IF_ERROR(ReadLlamaHf(cfg, c));
  LASERD_RETURN_IF_ERROR(ReadExpertCounts(cfg, "num_experts", c, "num_local_experts"));
  c->moe_intermediate = c->intermediate;
  c->norm_topk_prob = cfg.Flag("norm_topk_prob", false);
  if (auto clip = cfg.Num({"clip_qkv"})) {
    return absl::UnimplementedError(
        absl::StrCat(cfg.where(), ": olmoe option clip_qkv ", *clip, " is not supported"));
  }
  // The q norm's weight is [hidden]: transformers builds it so, whatever head_dim is.
  if (c->heads * c->head_dim != c->hidden) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg.where(), ": olmoe needs num_attention_heads x head_dim = hidden_size"));
  }
  return absl::OkStatus();
}

Architecture MakeOlmoe() {
  Architecture a = MakeQwen3Moe();
  a.name = "olmoe";
  a.model_types = {{"olmoe", "", "OlmoeForCausalLM"}};
  a.qk_norm_whole = true;
  a.read_hf = ReadOlmoeHf;
  return a;
}

}  // namespace

const std::vector<const Architecture*>& Architectures() {
  static const auto* kAll = new std::vector<const Architecture*>{
      new Architecture(MakeLlama()),    new Architecture(MakeGpt2()),
      new Architecture(MakeGptJ()),     new Architecture(MakeGptNeoX()),
      new Architecture(MakeQwen3()),    new Architecture(MakePhi()),
      new Architecture(MakePhi3()),     new Architecture(MakeGemma()),
      new Architecture(MakeMixtral()),  new Architecture(MakeQwen2Moe()),
      new Architecture(MakeQwen3Moe()), new Architecture(MakeOlmoe())};
  return *kAll;
}

}  // namespace laserd::model
