#include "engine/model/model.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/model/laser_factors.h"

namespace laserd::model {
namespace {

using kernels::Tensor;
using nlohmann::json;

// Reads the first present key (as a number) from a config object.
std::optional<double> Num(const json& cfg, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = cfg.find(k);
    if (it != cfg.end() && it->is_number()) return it->get<double>();
  }
  return std::nullopt;
}

absl::StatusOr<double> ReqNum(const json& cfg, std::initializer_list<const char*> keys,
                              const std::string& where) {
  auto v = Num(cfg, keys);
  if (!v) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": config is missing '", *keys.begin(), "'"));
  }
  return *v;
}

absl::StatusOr<kernels::Activation> ParseAct(const std::string& name) {
  if (name == "silu" || name == "swish") return kernels::Activation::kSilu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return kernels::Activation::kGeluTanh;
  if (name == "gelu") return kernels::Activation::kGeluErf;
  if (name == "relu") return kernels::Activation::kRelu;
  return absl::InvalidArgumentError(absl::StrCat("unsupported activation '", name, "'"));
}

// transformers >= 5 nests rope settings under rope_parameters.
double RopeTheta(const json& cfg, double dflt) {
  if (auto v = Num(cfg, {"rope_theta", "rotary_emb_base"})) return *v;
  auto it = cfg.find("rope_parameters");
  if (it != cfg.end() && it->is_object()) {
    if (auto v = Num(*it, {"rope_theta"})) return *v;
  }
  return dflt;
}

absl::Status CheckRopeScaling(const json& cfg, const std::string& where) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) continue;
    if (!it->is_object()) continue;
    auto t = it->find("rope_type");
    if (t == it->end()) t = it->find("type");
    if (t != it->end() && t->is_string() && *t != "default") {
      return absl::UnimplementedError(absl::StrCat(where, ": rope scaling type '",
                                                   t->get<std::string>(), "' is not supported"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromHf(const json& cfg, const std::string& where) {
  ModelConfig c;
  if (!cfg.is_object() || !cfg.contains("model_type") || !cfg["model_type"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": config.json is missing or has no model_type"));
  }
  c.model_type = cfg["model_type"].get<std::string>();
  auto get = [&](std::initializer_list<const char*> keys) { return ReqNum(cfg, keys, where); };
  auto str = [&](const char* key, const std::string& dflt) {
    auto it = cfg.find(key);
    return it != cfg.end() && it->is_string() ? it->get<std::string>() : dflt;
  };
  auto flag = [&](const char* key, bool dflt) {
    auto it = cfg.find(key);
    return it != cfg.end() && it->is_boolean() ? it->get<bool>() : dflt;
  };
  const std::string& t = c.model_type;
  if (t != "llama" && t != "mistral" && t != "qwen2" && t != "gpt2" && t != "gptj" &&
      t != "gpt_neox") {
    return absl::UnimplementedError(
        absl::StrCat(where, ": unsupported model_type '", t,
                     "' (supported: llama, mistral, qwen2, gpt2, gptj, gpt_neox)"));
  }
  // Dimensions every architecture has, under either naming convention.
  auto h = get({"hidden_size", "n_embd"});
  auto l = get({"num_hidden_layers", "n_layer"});
  auto nh = get({"num_attention_heads", "n_head"});
  auto v = get({"vocab_size"});
  for (auto* s : {&h, &l, &nh, &v})
    if (!s->ok()) return s->status();
  c.hidden = *h;
  c.layers = *l;
  c.heads = *nh;
  c.kv_heads = c.heads;
  c.head_dim = c.heads ? c.hidden / c.heads : 0;
  c.vocab_size = *v;
  if (t == "llama" || t == "mistral" || t == "qwen2") {
    c.arch = Arch::kLlama;
    auto im = get({"intermediate_size"});
    if (!im.ok()) return im.status();
    c.kv_heads = Num(cfg, {"num_key_value_heads"}).value_or(c.heads);
    c.head_dim = Num(cfg, {"head_dim"}).value_or(c.head_dim);
    c.intermediate = *im;
    c.max_positions = Num(cfg, {"max_position_embeddings"}).value_or(2048);
    c.norm_eps = Num(cfg, {"rms_norm_eps"}).value_or(1e-6);
    c.rope_theta = RopeTheta(cfg, 10000.0);
    c.rotary_dim = c.head_dim;
    c.rope_style = kernels::RopeStyle::kNeox;
    c.tied_embeddings = flag("tie_word_embeddings", false);
    c.gated_mlp = true;
    auto act = ParseAct(str("hidden_act", "silu"));
    if (!act.ok()) return act.status();
    c.act = *act;
    if (auto s = CheckRopeScaling(cfg, where); !s.ok()) return s;
  } else if (t == "gpt2") {
    c.arch = Arch::kGpt2;
    c.intermediate = Num(cfg, {"n_inner"}).value_or(4 * c.hidden);
    c.max_positions = Num(cfg, {"n_positions", "max_position_embeddings"}).value_or(1024);
    c.norm_eps = Num(cfg, {"layer_norm_epsilon"}).value_or(1e-5);
    c.tied_embeddings = flag("tie_word_embeddings", true);
    auto act = ParseAct(str("activation_function", "gelu_new"));
    if (!act.ok()) return act.status();
    c.act = *act;
  } else if (t == "gptj") {
    c.arch = Arch::kGptJ;
    c.intermediate = Num(cfg, {"n_inner"}).value_or(4 * c.hidden);
    c.max_positions = Num(cfg, {"n_positions", "max_position_embeddings"}).value_or(2048);
    c.norm_eps = Num(cfg, {"layer_norm_epsilon"}).value_or(1e-5);
    c.rotary_dim = Num(cfg, {"rotary_dim"}).value_or(c.head_dim);
    c.rope_theta = RopeTheta(cfg, 10000.0);
    c.rope_style = kernels::RopeStyle::kGptj;
    c.parallel_residual = true;
    c.tied_embeddings = flag("tie_word_embeddings", false);
    auto act = ParseAct(str("activation_function", "gelu_new"));
    if (!act.ok()) return act.status();
    c.act = *act;
  } else {  // gpt_neox
    c.arch = Arch::kGptNeoX;
    auto im = get({"intermediate_size"});
    if (!im.ok()) return im.status();
    c.intermediate = *im;
    c.max_positions = Num(cfg, {"max_position_embeddings"}).value_or(2048);
    c.norm_eps = Num(cfg, {"layer_norm_eps"}).value_or(1e-5);
    double pct = Num(cfg, {"rotary_pct", "partial_rotary_factor"}).value_or(1.0);
    if (auto it = cfg.find("rope_parameters"); it != cfg.end() && it->is_object()) {
      pct = Num(*it, {"partial_rotary_factor"}).value_or(pct);
    }
    c.rotary_dim = static_cast<int64_t>(c.head_dim * pct);
    c.rope_theta = RopeTheta(cfg, 10000.0);
    c.rope_style = kernels::RopeStyle::kNeox;
    c.parallel_residual = flag("use_parallel_residual", true);
    c.tied_embeddings = flag("tie_word_embeddings", false);
    auto act = ParseAct(str("hidden_act", "gelu"));
    if (!act.ok()) return act.status();
    c.act = *act;
  }
  auto id = [&](const char* key) -> std::optional<int32_t> {
    auto it = cfg.find(key);
    if (it != cfg.end() && it->is_number_integer()) return it->get<int32_t>();
    return std::nullopt;
  };
  c.bos_id = id("bos_token_id");
  c.eos_id = id("eos_token_id");
  return c;
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const json& md, const std::string& where) {
  auto arch_it = md.find("general.architecture");
  if (arch_it == md.end() || !arch_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": GGUF has no general.architecture"));
  }
  const std::string a = arch_it->get<std::string>();
  if (a != "llama" && a != "qwen2" && a != "mistral") {
    return absl::UnimplementedError(absl::StrCat(where, ": unsupported GGUF architecture '", a,
                                                 "' (supported: llama, mistral, qwen2)"));
  }
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.model_type = a;
  auto key = [&](const char* k) { return absl::StrCat(a, ".", k); };
  auto num = [&](const char* k) -> std::optional<double> {
    auto it = md.find(key(k));
    if (it != md.end() && it->is_number()) return it->get<double>();
    return std::nullopt;
  };
  auto req = [&](const char* k) -> absl::StatusOr<double> {
    auto v = num(k);
    if (!v) return absl::InvalidArgumentError(absl::StrCat(where, ": GGUF is missing ", key(k)));
    return *v;
  };
  auto h = req("embedding_length");
  auto l = req("block_count");
  auto nh = req("attention.head_count");
  auto im = req("feed_forward_length");
  for (auto* s : {&h, &l, &nh, &im})
    if (!s->ok()) return s->status();
  c.hidden = *h;
  c.layers = *l;
  c.heads = *nh;
  c.kv_heads = num("attention.head_count_kv").value_or(c.heads);
  c.head_dim = num("attention.key_length").value_or(c.heads ? c.hidden / c.heads : 0);
  c.intermediate = *im;
  c.max_positions = num("context_length").value_or(2048);
  c.norm_eps = num("attention.layer_norm_rms_epsilon").value_or(1e-5);
  c.rope_theta = num("rope.freq_base").value_or(10000.0);
  c.rotary_dim = num("rope.dimension_count").value_or(c.head_dim);
  c.rope_style = kernels::RopeStyle::kNeox;
  c.gated_mlp = true;
  c.act = kernels::Activation::kSilu;
  if (auto v = num("vocab_size")) {
    c.vocab_size = *v;
  } else if (auto it = md.find("tokenizer.ggml.tokens"); it != md.end() && it->is_array()) {
    c.vocab_size = it->size();
  }
  if (auto it = md.find(key("rope.scaling.type"));
      it != md.end() && it->is_string() && *it != "none") {
    return absl::UnimplementedError(
        absl::StrCat(where, ": rope scaling '", it->get<std::string>(), "' is not supported"));
  }
  auto id = [&](const char* k) -> std::optional<int32_t> {
    auto it = md.find(k);
    if (it != md.end() && it->is_number_integer()) return it->get<int32_t>();
    return std::nullopt;
  };
  c.bos_id = id("tokenizer.ggml.bos_token_id");
  c.eos_id = id("tokenizer.ggml.eos_token_id");
  return c;
}

}  // namespace

const char* ArchName(Arch a) {
  switch (a) {
    case Arch::kLlama:
      return "llama";
    case Arch::kGpt2:
      return "gpt2";
    case Arch::kGptJ:
      return "gptj";
    case Arch::kGptNeoX:
      return "gpt_neox";
  }
  return "?";
}

const std::vector<std::string>& CanonicalMatrixTypes() {
  static const std::vector<std::string> kTypes = {"attn.q", "attn.k", "attn.v", "attn.o",
                                                  "mlp.in", "mlp.up", "mlp.out"};
  return kTypes;
}

struct Model::Layer {
  // Canonical matrices W [out, in] and their biases (empty when absent).
  std::map<std::string, Tensor> w, b;
  // Low-rank overrides {us [out, k], v [in, k]} (Model::SetLowRank).
  std::map<std::string, std::pair<Tensor, Tensor>> lowrank;
  Tensor ln1_w, ln1_b, ln2_w, ln2_b;  // ln2 empty for GPT-J (shares ln1)
};

struct Model::Weights {
  Tensor embed;      // [vocab, d]
  Tensor pos_embed;  // [positions, d] (GPT-2)
  std::vector<Layer> layers;
  Tensor norm_w, norm_b;
  Tensor lm_head;  // [vocab, d]; shares embed when tied
  Tensor lm_head_b;
  std::vector<float> inv_freq;
};

Model::~Model() = default;

namespace {

// Loads tensors by name, converting layouts and checking shapes.
class Loader {
 public:
  Loader(const formats::WeightSource& src, kernels::Backend* be) : src_(src), be_(be) {}

  absl::StatusOr<formats::TensorF32> Raw(const std::string& name) { return src_.LoadF32(name); }

  absl::StatusOr<Tensor> Load(const std::string& name, std::vector<int64_t> want) {
    auto t = src_.LoadF32(name);
    if (!t.ok()) return t.status();
    return Finish(name, *std::move(t), want);
  }

  absl::StatusOr<Tensor> Finish(const std::string& name, formats::TensorF32 t,
                                std::vector<int64_t> want) {
    // 1-D tensors are treated as [1, n].
    if (t.shape != want &&
        !(want.size() == 2 && want[0] == 1 && t.shape.size() == 1 && t.shape[0] == want[1])) {
      return absl::InvalidArgumentError(absl::StrCat(src_.path(), ": tensor ", name, " has shape ",
                                                     ShapeStr(t.shape), ", expected ",
                                                     ShapeStr(want)));
    }
    const int64_t rows = want.size() == 2 ? want[0] : 1;
    const int64_t cols = want.size() == 2 ? want[1] : want[0];
    return be_->FromHost(t.data.data(), rows, cols);
  }

  Tensor FromHost(const std::vector<float>& v, int64_t rows, int64_t cols) {
    return be_->FromHost(v.data(), rows, cols);
  }

  static std::string ShapeStr(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&r, i ? ", " : "", s[i]);
    return r + "]";
  }

  bool Has(const std::string& n) const { return src_.Has(n); }
  const std::string& path() const { return src_.path(); }

 private:
  const formats::WeightSource& src_;
  kernels::Backend* be_;
};

// Transposes a [rows, cols] host matrix.
std::vector<float> Transpose(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

// llama.cpp's converter permutes the rows of Q and K for its rotary layout;
// undo it so the matrices are exactly the Hugging Face ones.
std::vector<float> UnpermuteGgufQk(const std::vector<float>& w, int64_t heads, int64_t out,
                                   int64_t in) {
  const int64_t hd = out / heads, half = hd / 2;
  std::vector<float> r(w.size());
  // GGUF row (h, i, j) with i in [0, half), j in {0,1} came from HF row (h, j, i).
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t src = h * hd + i * 2 + j, dst = h * hd + j * half + i;
        std::copy(w.begin() + src * in, w.begin() + (src + 1) * in, r.begin() + dst * in);
      }
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const formats::WeightSource& src,
                                                   kernels::Backend* backend) {
  // Factored LASER exports: load the dense tensors their factors stand for.
  auto expanded = ExpandLaserFactors(src);
  if (!expanded.ok()) return expanded.status();
  if (*expanded) return Load(**expanded, backend);
  std::unique_ptr<Model> m(new Model());
  m->backend_ = backend;
  const std::string& where = src.path();
  const bool gguf = src.format() == formats::FileFormat::kGguf;
  auto cfg = gguf ? ConfigFromGguf(src.metadata(), where) : ConfigFromHf(src.metadata(), where);
  if (!cfg.ok()) return cfg.status();
  ModelConfig& c = m->config_ = *cfg;
  if (c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
      c.heads % c.kv_heads != 0 || c.vocab_size <= 0 || c.intermediate <= 0 ||
      c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": inconsistent model dimensions"));
  }
  m->w_ = std::make_unique<Weights>();
  Weights& W = *m->w_;
  Loader L(src, backend);
  const int64_t d = c.hidden, q_out = c.heads * c.head_dim, kv_out = c.kv_heads * c.head_dim;
  const int64_t ff = c.intermediate, V = c.vocab_size;

#define LASERD_ASSIGN(lhs, expr)      \
  do {                                \
    auto _r = (expr);                 \
    if (!_r.ok()) return _r.status(); \
    lhs = *std::move(_r);             \
  } while (0)

  W.layers.resize(c.layers);
  if (c.arch == Arch::kLlama) {
    const std::string pre = gguf ? "" : "model.";
    LASERD_ASSIGN(W.embed,
                  L.Load(gguf ? "token_embd.weight" : "model.embed_tokens.weight", {V, d}));
    LASERD_ASSIGN(W.norm_w, L.Load(gguf ? "output_norm.weight" : "model.norm.weight", {1, d}));
    const std::string head = gguf ? "output.weight" : "lm_head.weight";
    if (L.Has(head)) {
      LASERD_ASSIGN(W.lm_head, L.Load(head, {V, d}));
      c.tied_embeddings = false;
    } else {
      W.lm_head = W.embed;
      c.tied_embeddings = true;
    }
    for (int64_t i = 0; i < c.layers; ++i) {
      Layer& ly = W.layers[i];
      struct Item {
        const char* type;
        const char* hf;
        const char* gg;
        int64_t out, in;
      };
      const Item items[] = {{"attn.q", "self_attn.q_proj", "attn_q", q_out, d},
                            {"attn.k", "self_attn.k_proj", "attn_k", kv_out, d},
                            {"attn.v", "self_attn.v_proj", "attn_v", kv_out, d},
                            {"attn.o", "self_attn.o_proj", "attn_output", d, q_out},
                            {"mlp.in", "mlp.gate_proj", "ffn_gate", ff, d},
                            {"mlp.up", "mlp.up_proj", "ffn_up", ff, d},
                            {"mlp.out", "mlp.down_proj", "ffn_down", d, ff}};
      for (const Item& it : items) {
        const std::string base = gguf ? absl::StrCat("blk.", i, ".", it.gg)
                                      : absl::StrCat(pre, "layers.", i, ".", it.hf);
        const std::string type = it.type;
        if (gguf && c.model_type == "llama" && (type == "attn.q" || type == "attn.k")) {
          auto raw = L.Raw(base + ".weight");
          if (!raw.ok()) return raw.status();
          if (raw->shape != std::vector<int64_t>{it.out, it.in}) {
            return absl::InvalidArgumentError(absl::StrCat(
                where, ": tensor ", base, ".weight has shape ", Loader::ShapeStr(raw->shape),
                ", expected ", Loader::ShapeStr({it.out, it.in})));
          }
          raw->data =
              UnpermuteGgufQk(raw->data, type == "attn.q" ? c.heads : c.kv_heads, it.out, it.in);
          LASERD_ASSIGN(ly.w[type], L.Finish(base + ".weight", *std::move(raw), {it.out, it.in}));
        } else {
          LASERD_ASSIGN(ly.w[type], L.Load(base + ".weight", {it.out, it.in}));
        }
        if (L.Has(base + ".bias")) {
          LASERD_ASSIGN(ly.b[type], L.Load(base + ".bias", {1, it.out}));
        }
      }
      const std::string n1 = gguf ? absl::StrCat("blk.", i, ".attn_norm.weight")
                                  : absl::StrCat(pre, "layers.", i, ".input_layernorm.weight");
      const std::string n2 =
          gguf ? absl::StrCat("blk.", i, ".ffn_norm.weight")
               : absl::StrCat(pre, "layers.", i, ".post_attention_layernorm.weight");
      LASERD_ASSIGN(ly.ln1_w, L.Load(n1, {1, d}));
      LASERD_ASSIGN(ly.ln2_w, L.Load(n2, {1, d}));
    }
  } else if (c.arch == Arch::kGpt2) {
    const std::string pre = L.Has("transformer.wte.weight") ? "transformer." : "";
    LASERD_ASSIGN(W.embed, L.Load(pre + "wte.weight", {V, d}));
    LASERD_ASSIGN(W.pos_embed, L.Load(pre + "wpe.weight", {c.max_positions, d}));
    LASERD_ASSIGN(W.norm_w, L.Load(pre + "ln_f.weight", {1, d}));
    LASERD_ASSIGN(W.norm_b, L.Load(pre + "ln_f.bias", {1, d}));
    if (L.Has("lm_head.weight") && !c.tied_embeddings) {
      LASERD_ASSIGN(W.lm_head, L.Load("lm_head.weight", {V, d}));
    } else {
      W.lm_head = W.embed;
      c.tied_embeddings = true;
    }
    for (int64_t i = 0; i < c.layers; ++i) {
      Layer& ly = W.layers[i];
      const std::string p = absl::StrCat(pre, "h.", i, ".");
      // Conv1D stores [in, out]; c_attn holds q, k, v side by side.
      auto qkv = L.Raw(p + "attn.c_attn.weight");
      if (!qkv.ok()) return qkv.status();
      if (qkv->shape != std::vector<int64_t>{d, 3 * d}) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": tensor ", p, "attn.c_attn.weight has shape ", Loader::ShapeStr(qkv->shape)));
      }
      std::vector<float> t = Transpose(qkv->data, d, 3 * d);  // [3d, d]
      auto qkv_b = L.Raw(p + "attn.c_attn.bias");
      if (!qkv_b.ok()) return qkv_b.status();
      if (qkv_b->NumElements() != 3 * d) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": tensor ", p, "attn.c_attn.bias has the wrong size"));
      }
      const char* names[3] = {"attn.q", "attn.k", "attn.v"};
      for (int j = 0; j < 3; ++j) {
        ly.w[names[j]] = backend->FromHost(t.data() + j * d * d, d, d);
        ly.b[names[j]] = backend->FromHost(qkv_b->data.data() + j * d, 1, d);
      }
      struct Conv {
        const char* type;
        const char* name;
        int64_t in, out;
      };
      for (const Conv& cv : {Conv{"attn.o", "attn.c_proj", d, d}, Conv{"mlp.in", "mlp.c_fc", d, ff},
                             Conv{"mlp.out", "mlp.c_proj", ff, d}}) {
        auto raw = L.Raw(p + cv.name + ".weight");
        if (!raw.ok()) return raw.status();
        if (raw->shape != std::vector<int64_t>{cv.in, cv.out}) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": tensor ", p, cv.name, ".weight has shape ", Loader::ShapeStr(raw->shape)));
        }
        auto tr = Transpose(raw->data, cv.in, cv.out);
        ly.w[cv.type] = backend->FromHost(tr.data(), cv.out, cv.in);
        LASERD_ASSIGN(ly.b[cv.type], L.Load(p + cv.name + ".bias", {1, cv.out}));
      }
      LASERD_ASSIGN(ly.ln1_w, L.Load(p + "ln_1.weight", {1, d}));
      LASERD_ASSIGN(ly.ln1_b, L.Load(p + "ln_1.bias", {1, d}));
      LASERD_ASSIGN(ly.ln2_w, L.Load(p + "ln_2.weight", {1, d}));
      LASERD_ASSIGN(ly.ln2_b, L.Load(p + "ln_2.bias", {1, d}));
    }
  } else if (c.arch == Arch::kGptJ) {
    const std::string pre = "transformer.";
    LASERD_ASSIGN(W.embed, L.Load(pre + "wte.weight", {V, d}));
    LASERD_ASSIGN(W.norm_w, L.Load(pre + "ln_f.weight", {1, d}));
    LASERD_ASSIGN(W.norm_b, L.Load(pre + "ln_f.bias", {1, d}));
    if (L.Has("lm_head.weight")) {
      LASERD_ASSIGN(W.lm_head, L.Load("lm_head.weight", {V, d}));
      if (L.Has("lm_head.bias")) LASERD_ASSIGN(W.lm_head_b, L.Load("lm_head.bias", {1, V}));
    } else {
      W.lm_head = W.embed;
      c.tied_embeddings = true;
    }
    for (int64_t i = 0; i < c.layers; ++i) {
      Layer& ly = W.layers[i];
      const std::string p = absl::StrCat(pre, "h.", i, ".");
      struct Item {
        const char* type;
        const char* name;
        int64_t out, in;
      };
      for (const Item& it :
           {Item{"attn.q", "attn.q_proj", d, d}, Item{"attn.k", "attn.k_proj", d, d},
            Item{"attn.v", "attn.v_proj", d, d}, Item{"attn.o", "attn.out_proj", d, d},
            Item{"mlp.in", "mlp.fc_in", ff, d}, Item{"mlp.out", "mlp.fc_out", d, ff}}) {
        LASERD_ASSIGN(ly.w[it.type], L.Load(p + it.name + ".weight", {it.out, it.in}));
        if (L.Has(p + it.name + ".bias")) {
          LASERD_ASSIGN(ly.b[it.type], L.Load(p + it.name + ".bias", {1, it.out}));
        }
      }
      LASERD_ASSIGN(ly.ln1_w, L.Load(p + "ln_1.weight", {1, d}));
      LASERD_ASSIGN(ly.ln1_b, L.Load(p + "ln_1.bias", {1, d}));
    }
  } else {  // GPT-NeoX
    const std::string pre = "gpt_neox.";
    LASERD_ASSIGN(W.embed, L.Load(pre + "embed_in.weight", {V, d}));
    LASERD_ASSIGN(W.norm_w, L.Load(pre + "final_layer_norm.weight", {1, d}));
    LASERD_ASSIGN(W.norm_b, L.Load(pre + "final_layer_norm.bias", {1, d}));
    if (L.Has("embed_out.weight")) {
      LASERD_ASSIGN(W.lm_head, L.Load("embed_out.weight", {V, d}));
    } else {
      W.lm_head = W.embed;
      c.tied_embeddings = true;
    }
    const int64_t hd = c.head_dim, H = c.heads;
    for (int64_t i = 0; i < c.layers; ++i) {
      Layer& ly = W.layers[i];
      const std::string p = absl::StrCat(pre, "layers.", i, ".");
      // query_key_value rows are laid out [heads, 3, head_dim]: split into q, k, v.
      auto qkv = L.Raw(p + "attention.query_key_value.weight");
      if (!qkv.ok()) return qkv.status();
      auto qkv_b = L.Raw(p + "attention.query_key_value.bias");
      if (!qkv_b.ok()) return qkv_b.status();
      if (qkv->shape != std::vector<int64_t>{3 * d, d} || qkv_b->NumElements() != 3 * d) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": tensor ", p, "attention.query_key_value has shape ",
            Loader::ShapeStr(qkv->shape), ", expected ", Loader::ShapeStr({3 * d, d})));
      }
      const char* names[3] = {"attn.q", "attn.k", "attn.v"};
      for (int j = 0; j < 3; ++j) {
        std::vector<float> w(d * d), b(d);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t src_row = (h * 3 + j) * hd;
          std::copy(qkv->data.begin() + src_row * d, qkv->data.begin() + (src_row + hd) * d,
                    w.begin() + h * hd * d);
          std::copy(qkv_b->data.begin() + src_row, qkv_b->data.begin() + src_row + hd,
                    b.begin() + h * hd);
        }
        ly.w[names[j]] = backend->FromHost(w.data(), d, d);
        ly.b[names[j]] = backend->FromHost(b.data(), 1, d);
      }
      struct Item {
        const char* type;
        const char* name;
        int64_t out, in;
      };
      for (const Item& it :
           {Item{"attn.o", "attention.dense", d, d}, Item{"mlp.in", "mlp.dense_h_to_4h", ff, d},
            Item{"mlp.out", "mlp.dense_4h_to_h", d, ff}}) {
        LASERD_ASSIGN(ly.w[it.type], L.Load(p + it.name + ".weight", {it.out, it.in}));
        if (L.Has(p + it.name + ".bias")) {
          LASERD_ASSIGN(ly.b[it.type], L.Load(p + it.name + ".bias", {1, it.out}));
        }
      }
      LASERD_ASSIGN(ly.ln1_w, L.Load(p + "input_layernorm.weight", {1, d}));
      LASERD_ASSIGN(ly.ln1_b, L.Load(p + "input_layernorm.bias", {1, d}));
      LASERD_ASSIGN(ly.ln2_w, L.Load(p + "post_attention_layernorm.weight", {1, d}));
      LASERD_ASSIGN(ly.ln2_b, L.Load(p + "post_attention_layernorm.bias", {1, d}));
    }
  }
#undef LASERD_ASSIGN

  // Rotary inverse frequencies, in fp32 as torch computes them.
  if (c.rotary_dim > 0 && c.arch != Arch::kGpt2) {
    const int half = c.rotary_dim / 2;
    W.inv_freq.resize(half);
    for (int f = 0; f < half; ++f) {
      const float expo = static_cast<float>(2 * f) / static_cast<float>(c.rotary_dim);
      W.inv_freq[f] = 1.0f / std::pow(static_cast<float>(c.rope_theta), expo);
    }
  }
  return m;
}

std::vector<std::string> Model::MatrixTypes() const {
  std::vector<std::string> r;
  for (const std::string& t : CanonicalMatrixTypes()) {
    if (!w_->layers.empty() && w_->layers[0].w.count(t)) r.push_back(t);
  }
  return r;
}

absl::StatusOr<Tensor*> Model::Matrix(const std::string& type, int64_t layer) {
  if (layer < 0 || layer >= config_.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " is out of range [0, ", config_.layers, ")"));
  }
  auto& ws = w_->layers[layer].w;
  auto it = ws.find(type);
  if (it == ws.end()) {
    return absl::NotFoundError(absl::StrCat("matrix type '", type, "' does not exist in a ",
                                            config_.model_type, " model"));
  }
  return &it->second;
}

absl::Status Model::SetLowRank(const std::string& type, int64_t layer, Tensor us, Tensor v) {
  auto w = Matrix(type, layer);
  if (!w.ok()) return w.status();
  if (us.rows() != (*w)->rows() || v.rows() != (*w)->cols() || us.cols() != v.cols() ||
      us.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "low-rank factors [", us.rows(), ", ", us.cols(), "] and [", v.rows(), ", ", v.cols(),
        "] do not fit ", type, " of layer ", layer, " [", (*w)->rows(), ", ", (*w)->cols(), "]"));
  }
  w_->layers[layer].lowrank[type] = {std::move(us), std::move(v)};
  return absl::OkStatus();
}

void Model::ClearLowRank(const std::string& type, int64_t layer) {
  if (layer >= 0 && layer < static_cast<int64_t>(w_->layers.size())) {
    w_->layers[layer].lowrank.erase(type);
  }
}

bool Model::HasLowRank(const std::string& type, int64_t layer) const {
  return layer >= 0 && layer < static_cast<int64_t>(w_->layers.size()) &&
         w_->layers[layer].lowrank.count(type) > 0;
}

int64_t Model::ParameterCount() const {
  int64_t n = w_->embed.size() + w_->pos_embed.size() + w_->norm_w.size() + w_->norm_b.size();
  if (!config_.tied_embeddings) n += w_->lm_head.size() + w_->lm_head_b.size();
  for (const Layer& ly : w_->layers) {
    for (const auto& [k, t] : ly.w) n += t.size();
    for (const auto& [k, t] : ly.b) n += t.size();
    n += ly.ln1_w.size() + ly.ln1_b.size() + ly.ln2_w.size() + ly.ln2_b.size();
  }
  return n;
}

absl::StatusOr<Tensor> Model::Embed(const std::vector<std::vector<int32_t>>& seqs,
                                    kernels::SeqLayout* layout) {
  std::vector<int64_t> lengths, ids, pos;
  for (const auto& s : seqs) {
    if (static_cast<int64_t>(s.size()) > config_.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence of ", s.size(),
                                                     " tokens exceeds the model's context of ",
                                                     config_.max_positions));
    }
    lengths.push_back(s.size());
    for (size_t p = 0; p < s.size(); ++p) {
      if (s[p] < 0 || s[p] >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", s[p], " is outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
      ids.push_back(s[p]);
      pos.push_back(p);
    }
  }
  *layout = kernels::SeqLayout::FromLengths(lengths);
  return EmbedRows(ids, pos);
}

Tensor Model::EmbedRows(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos) {
  Tensor h = backend_->Empty(ids.size(), config_.hidden);
  backend_->GatherRows(w_->embed, ids, &h);
  if (!w_->pos_embed.empty()) {
    Tensor p = backend_->Empty(ids.size(), config_.hidden);
    backend_->GatherRows(w_->pos_embed, pos, &p);
    backend_->Add(p, &h);
  }
  return h;
}

Tensor Model::EmbedScore(const ScoreLayout& p) {
  std::vector<int64_t> ids(p.tokens.begin(), p.tokens.end()), pos;
  if (p.layout.is_tree()) {
    pos = p.layout.position;
  } else {
    for (int64_t len : p.layout.lengths)
      for (int64_t i = 0; i < len; ++i) pos.push_back(i);
  }
  return EmbedRows(ids, pos);
}

void Model::RunLayers(Tensor* h, const kernels::SeqLayout& layout, int64_t from, int64_t to,
                      const std::vector<int64_t>* keep) {
  const ModelConfig& c = config_;
  kernels::Backend* be = backend_;
  const int64_t n = h->rows(), d = c.hidden;
  if (n == 0 || from >= to) {
    if (keep != nullptr) {
      Tensor hk = be->Empty(keep->size(), d);
      be->GatherRows(*h, *keep, &hk);
      *h = std::move(hk);
    }
    return;
  }
  const int64_t q_out = c.heads * c.head_dim, kv_out = c.kv_heads * c.head_dim;
  Tensor a = be->Empty(n, d), q = be->Empty(n, q_out), k = be->Empty(n, kv_out),
         v = be->Empty(n, kv_out), ctx = be->Empty(n, q_out);
  // MLP scratch, sized for every row (or for the kept rows only when every
  // layer that runs here is the last one).
  const bool only_kept = keep != nullptr && from == to - 1;
  const int64_t mlp_rows = only_kept ? static_cast<int64_t>(keep->size()) : n;
  Tensor g = be->Empty(mlp_rows, c.intermediate);
  Tensor u = c.gated_mlp ? be->Empty(mlp_rows, c.intermediate) : Tensor();
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  auto norm = [&](const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
    if (c.arch == Arch::kLlama) {
      be->RmsNorm(x, w, c.norm_eps, y);
    } else {
      be->LayerNorm(x, w, b.empty() ? nullptr : &b, c.norm_eps, y);
    }
  };
  auto bias = [](const Layer& ly, const char* t) -> const Tensor* {
    auto it = ly.b.find(t);
    return it == ly.b.end() ? nullptr : &it->second;
  };
  // y (+)= x · Wᵀ + b, or (x · v) · usᵀ + b under a low-rank override.
  auto linear = [&](const Layer& ly, const char* t, const Tensor& x, Tensor* y, bool acc) {
    auto lr = ly.lowrank.find(t);
    if (lr == ly.lowrank.end()) {
      be->Linear(x, ly.w.at(t), bias(ly, t), y, acc);
      return;
    }
    const auto& [us, v] = lr->second;
    Tensor xv = be->Empty(x.rows(), v.cols());
    be->MatMul(x, v, &xv);
    be->Linear(xv, us, bias(ly, t), y, acc);
  };
  // The rest of a layer once its attention context is known, on the rows of
  // `res` (the residual stream, updated in place). `ln1` holds those rows'
  // input-norm output, which only GPT-J's MLP reads again; otherwise it is
  // overwritten with the MLP's input norm.
  auto finish = [&](const Layer& ly, const Tensor& ctx_rows, Tensor* ln1, Tensor* res) {
    // MLP input: sequential blocks normalise the updated residual; parallel
    // blocks normalise the same input (GPT-J reuses ln_1).
    const Tensor* mlp_in = ln1;
    if (c.parallel_residual) {
      if (!ly.ln2_w.empty()) norm(*res, ly.ln2_w, ly.ln2_b, ln1);
      linear(ly, "attn.o", ctx_rows, res, /*acc=*/true);
    } else {
      linear(ly, "attn.o", ctx_rows, res, /*acc=*/true);
      norm(*res, ly.ln2_w, ly.ln2_b, ln1);
    }
    Tensor gg = g.rows() == res->rows() ? g : be->Empty(res->rows(), c.intermediate);
    linear(ly, "mlp.in", *mlp_in, &gg, false);
    if (c.gated_mlp) {
      Tensor uu = u.rows() == res->rows() ? u : be->Empty(res->rows(), c.intermediate);
      linear(ly, "mlp.up", *mlp_in, &uu, false);
      be->GatedActivate(&gg, uu, c.act);
    } else {
      be->Activate(&gg, c.act);
    }
    linear(ly, "mlp.out", gg, res, /*acc=*/true);
  };
  for (int64_t i = from; i < to; ++i) {
    const Layer& ly = w_->layers[i];
    norm(*h, ly.ln1_w, ly.ln1_b, &a);
    // Attention, over every row (the kept rows attend to all of them).
    linear(ly, "attn.q", a, &q, false);
    linear(ly, "attn.k", a, &k, false);
    linear(ly, "attn.v", a, &v, false);
    if (c.rotary_dim > 0 && !w_->inv_freq.empty()) {
      be->Rope(&q, layout, c.heads, c.head_dim, c.rotary_dim, w_->inv_freq, c.rope_style);
      be->Rope(&k, layout, c.kv_heads, c.head_dim, c.rotary_dim, w_->inv_freq, c.rope_style);
    }
    be->Attention(q, k, v, layout, c.heads, c.kv_heads, c.head_dim, scale, &ctx);
    if (keep != nullptr && i == to - 1) {
      // Last layer: nothing after it reads the other rows.
      const int64_t m = static_cast<int64_t>(keep->size());
      Tensor hk = be->Empty(m, d), ck = be->Empty(m, q_out), ak = be->Empty(m, d);
      be->GatherRows(*h, *keep, &hk);
      be->GatherRows(ctx, *keep, &ck);
      be->GatherRows(a, *keep, &ak);
      finish(ly, ck, &ak, &hk);
      *h = std::move(hk);
    } else {
      finish(ly, ctx, &a, h);
    }
  }
}

Tensor Model::Head(const Tensor& h, const std::vector<int64_t>& rows) {
  kernels::Backend* be = backend_;
  const int64_t d = config_.hidden;
  Tensor sel = be->Empty(rows.size(), d);
  be->GatherRows(h, rows, &sel);
  Tensor normed = be->Empty(rows.size(), d);
  if (config_.arch == Arch::kLlama) {
    be->RmsNorm(sel, w_->norm_w, config_.norm_eps, &normed);
  } else {
    be->LayerNorm(sel, w_->norm_w, w_->norm_b.empty() ? nullptr : &w_->norm_b, config_.norm_eps,
                  &normed);
  }
  Tensor logits = be->Empty(rows.size(), config_.vocab_size);
  be->Linear(normed, w_->lm_head, w_->lm_head_b.empty() ? nullptr : &w_->lm_head_b, &logits);
  return logits;
}

absl::StatusOr<Model::ScoreLayout> Model::PrepareScore(const std::vector<ScoreRequest>& batch,
                                                       bool share_prefixes) const {
  for (size_t i = 0; i < batch.size(); ++i) {
    const ScoreRequest& r = batch[i];
    if (r.answer_start < 1 || r.answer_start >= static_cast<int64_t>(r.tokens.size())) {
      return absl::InvalidArgumentError(absl::StrCat("score request ", i, ": answer_start ",
                                                     r.answer_start, " must be in [1, ",
                                                     r.tokens.size(), ")"));
    }
    for (int32_t t : r.tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("score request ", i, ": token id ", t, " is outside the vocabulary"));
      }
    }
    // The last token is never an input to a scored prediction, so it is not fed.
    if (static_cast<int64_t>(r.tokens.size()) - 1 > config_.max_positions) {
      return absl::InvalidArgumentError(
          absl::StrCat("score request ", i, ": sequence of ", r.tokens.size() - 1,
                       " input tokens exceeds the model's context of ", config_.max_positions));
    }
  }
  ScoreLayout p;
  // row_of[i][t]: the row holding input token t of request i.
  std::vector<std::vector<int64_t>> row_of(batch.size());
  int64_t packed_rows = 0;
  for (const ScoreRequest& r : batch) packed_rows += static_cast<int64_t>(r.tokens.size()) - 1;
  bool tree = false;
  if (share_prefixes && backend_->SupportsPrefixTree()) {
    // A trie over the inputs: a row per distinct (parent row, token).
    std::vector<int64_t> parent;
    std::map<std::pair<int64_t, int32_t>, int64_t> child;
    for (size_t i = 0; i < batch.size(); ++i) {
      int64_t at = -1;
      for (size_t t = 0; t + 1 < batch[i].tokens.size(); ++t) {
        auto [it, added] =
            child.try_emplace({at, batch[i].tokens[t]}, static_cast<int64_t>(parent.size()));
        if (added) {
          parent.push_back(at);
          p.tokens.push_back(batch[i].tokens[t]);
        }
        at = it->second;
        row_of[i].push_back(at);
      }
    }
    // Worth it only when it saves at least a tenth of the rows.
    tree = 10 * static_cast<int64_t>(parent.size()) <= 9 * packed_rows;
    if (tree) {
      p.layout = kernels::SeqLayout::FromParents(std::move(parent));
    } else {
      p.tokens.clear();
      for (auto& r : row_of) r.clear();
    }
  }
  if (!tree) {
    std::vector<int64_t> lengths;
    for (size_t i = 0; i < batch.size(); ++i) {
      lengths.push_back(static_cast<int64_t>(batch[i].tokens.size()) - 1);
      for (size_t t = 0; t + 1 < batch[i].tokens.size(); ++t) {
        row_of[i].push_back(static_cast<int64_t>(p.tokens.size()));
        p.tokens.push_back(batch[i].tokens[t]);
      }
    }
    p.layout = kernels::SeqLayout::FromLengths(lengths);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const ScoreRequest& r = batch[i];
    for (int64_t q = r.answer_start; q < static_cast<int64_t>(r.tokens.size()); ++q) {
      p.rows.push_back(row_of[i][q - 1]);
      p.gold.push_back(r.tokens[q]);
    }
    p.counts.push_back(static_cast<int64_t>(r.tokens.size()) - r.answer_start);
  }
  p.distinct_rows = p.rows;
  std::sort(p.distinct_rows.begin(), p.distinct_rows.end());
  p.distinct_rows.erase(std::unique(p.distinct_rows.begin(), p.distinct_rows.end()),
                        p.distinct_rows.end());
  return p;
}

std::vector<std::vector<TokenScore>> Model::ScoreFrom(Tensor h, const ScoreLayout& p,
                                                      int64_t from) {
  // After this, h holds the final residual stream of the distinct scored rows.
  RunLayers(&h, p.layout, from, config_.layers, &p.distinct_rows);
  // Index into h of every scored entry.
  std::vector<int64_t> at(p.rows.size());
  for (size_t j = 0; j < p.rows.size(); ++j) {
    at[j] = std::lower_bound(p.distinct_rows.begin(), p.distinct_rows.end(), p.rows[j]) -
            p.distinct_rows.begin();
  }
  // The LM head runs once per distinct row, in chunks whose logits take at
  // most 256 MiB (larger GEMMs run closer to the machine's peak); every entry
  // whose row is in the chunk is scored from its logits.
  const int64_t kChunk = std::max<int64_t>(1, (int64_t{256} << 20) / (4 * config_.vocab_size));
  const int64_t m = static_cast<int64_t>(p.distinct_rows.size());
  std::vector<kernels::Backend::RowScore> scores(p.rows.size());
  std::vector<std::vector<size_t>> entries_of(m);
  for (size_t j = 0; j < at.size(); ++j) entries_of[at[j]].push_back(j);
  for (int64_t s = 0; s < m; s += kChunk) {
    const int64_t e = std::min(m, s + kChunk);
    std::vector<int64_t> r(e - s);
    for (int64_t i = s; i < e; ++i) r[i - s] = i;
    Tensor logits = Head(h, r);
    std::vector<int64_t> lrow;  // logits row of each entry, in entry order
    std::vector<int32_t> g;
    std::vector<size_t> which;
    for (int64_t i = s; i < e; ++i) {
      for (size_t j : entries_of[i]) {
        lrow.push_back(i - s);
        g.push_back(p.gold[j]);
        which.push_back(j);
      }
    }
    if (static_cast<int64_t>(lrow.size()) != e - s) {  // some row scored twice
      Tensor dup = backend_->Empty(lrow.size(), logits.cols());
      backend_->GatherRows(logits, lrow, &dup);
      logits = std::move(dup);
    }
    auto sc = backend_->ScoreRows(logits, g);
    for (size_t k = 0; k < which.size(); ++k) scores[which[k]] = sc[k];
  }
  std::vector<std::vector<TokenScore>> out(p.counts.size());
  size_t j = 0;
  for (size_t i = 0; i < p.counts.size(); ++i) {
    for (int64_t q = 0; q < p.counts[i]; ++q, ++j) {
      out[i].push_back({scores[j].logprob, scores[j].argmax, scores[j].greater});
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<TokenScore>>> Model::Score(
    const std::vector<ScoreRequest>& batch, bool share_prefixes) {
  auto p = PrepareScore(batch, share_prefixes);
  if (!p.ok()) return p.status();
  return ScoreFrom(EmbedScore(*p), *p, 0);
}

absl::StatusOr<std::vector<float>> Model::Logits(const std::vector<std::vector<int32_t>>& seqs) {
  kernels::SeqLayout layout;
  auto h = Embed(seqs, &layout);
  if (!h.ok()) return h.status();
  RunLayers(&*h, layout, 0, config_.layers);
  std::vector<int64_t> rows(h->rows());
  for (int64_t i = 0; i < h->rows(); ++i) rows[i] = i;
  Tensor logits = Head(*h, rows);
  std::vector<float> out(logits.size());
  backend_->ToHost(logits, out.data());
  return out;
}

}  // namespace laserd::model
