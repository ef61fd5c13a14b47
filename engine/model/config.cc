#include "engine/model/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::model {

using nlohmann::json;

const json* ConfigReader::Find(const char* key) const {
  auto it = cfg_.find(absl::StrCat(prefix_, key));
  return it == cfg_.end() ? nullptr : &*it;
}

std::optional<double> ConfigReader::Num(std::initializer_list<const char*> keys) const {
  for (const char* k : keys) {
    const json* v = Find(k);
    if (v != nullptr && v->is_number()) return v->get<double>();
  }
  return std::nullopt;
}

absl::StatusOr<double> ConfigReader::Req(std::initializer_list<const char*> keys) const {
  if (auto v = Num(keys)) return *v;
  if (prefix_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where_, ": config is missing '", *keys.begin(), "'"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where_, ": GGUF is missing ", prefix_, *keys.begin()));
}

std::string ConfigReader::Str(const char* key, const std::string& dflt) const {
  const json* v = Find(key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : dflt;
}

bool ConfigReader::Flag(const char* key, bool dflt) const {
  const json* v = Find(key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : dflt;
}

std::optional<int32_t> ConfigReader::Id(const char* key) const {
  auto it = cfg_.find(key);
  if (it != cfg_.end() && it->is_number_integer()) return it->get<int32_t>();
  return std::nullopt;
}

double ConfigReader::RopeTheta(double dflt) const {
  if (auto v = Num({"rope_theta", "rotary_emb_base"})) return *v;
  const json* p = Find("rope_parameters");
  if (p != nullptr && p->is_object()) {
    if (auto v = ConfigReader(*p, where_).Num({"rope_theta"})) return *v;
  }
  return dflt;
}

absl::Status ConfigReader::ReadRopeScaling(
    ModelConfig* c, std::initializer_list<std::pair<const char*, const char*>> aliases) const {
  // transformers >= 5 writes rope_parameters (with rope_type "default" when
  // unscaled); older configs a rope_scaling object (null when unscaled).
  const json* p = nullptr;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* s = Find(key);
    if (s != nullptr && s->is_object() && (s->contains("rope_type") || s->contains("type"))) {
      p = s;
      break;
    }
  }
  RopeScaling& r = c->rope;
  r = RopeScaling();
  if (p == nullptr) return absl::OkStatus();
  auto t = p->find("rope_type");
  if (t == p->end()) t = p->find("type");
  if (!t->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": rope scaling type is not a string"));
  }
  std::string type = t->get<std::string>();
  for (const auto& [from, to] : aliases) {
    if (type == from) type = to;
  }
  const ConfigReader rp(*p, where_);
  auto need = [&](const char* key) -> absl::StatusOr<double> {
    if (auto v = rp.Num({key})) return *v;
    return absl::InvalidArgumentError(
        absl::StrCat(where_, ": rope scaling '", type, "' needs a numeric '", key, "'"));
  };
  // Pretraining context: a top-level original_max_position_embeddings
  // (Phi-3) first, then the scaling's own, then max_position_embeddings.
  auto original_max = [&]() -> int64_t {
    if (auto v = Num({"original_max_position_embeddings"})) return static_cast<int64_t>(*v);
    if (auto v = rp.Num({"original_max_position_embeddings"})) return static_cast<int64_t>(*v);
    return c->max_positions;
  };
  if (type == "default") {
    r.type = RopeType::kDefault;
  } else if (type == "linear") {
    r.type = RopeType::kLinear;
    LASERD_ASSIGN_OR_RETURN(r.factor, need("factor"));
  } else if (type == "dynamic") {
    r.type = RopeType::kDynamic;
    LASERD_ASSIGN_OR_RETURN(r.factor, need("factor"));
    r.original_max_positions = c->max_positions;
    c->max_positions = static_cast<int64_t>(r.factor * static_cast<double>(c->max_positions));
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    LASERD_ASSIGN_OR_RETURN(r.factor, need("factor"));
    LASERD_ASSIGN_OR_RETURN(r.low_freq_factor, need("low_freq_factor"));
    LASERD_ASSIGN_OR_RETURN(r.high_freq_factor, need("high_freq_factor"));
    r.original_max_positions = original_max();
    if (r.high_freq_factor <= r.low_freq_factor) {
      return absl::InvalidArgumentError(
          absl::StrCat(where_, ": rope scaling 'llama3' needs high_freq_factor > low_freq_factor"));
    }
  } else if (type == "yarn") {
    r.type = RopeType::kYarn;
    r.original_max_positions = original_max();
    r.factor = rp.Num({"factor"})
                   .value_or(static_cast<double>(c->max_positions) /
                             static_cast<double>(r.original_max_positions));
    if (auto v = rp.Num({"beta_fast"}); v && *v != 0) r.beta_fast = *v;
    if (auto v = rp.Num({"beta_slow"}); v && *v != 0) r.beta_slow = *v;
    r.truncate = rp.Flag("truncate", true);
    // yarn_get_mscale(scale, mscale) = 0.1 · mscale · ln(scale) + 1 (1 for scale <= 1).
    auto get_mscale = [&](double m) {
      return r.factor <= 1 ? 1.0 : 0.1 * m * std::log(r.factor) + 1.0;
    };
    const double mscale = rp.Num({"mscale"}).value_or(0);
    const double mscale_all = rp.Num({"mscale_all_dim"}).value_or(0);
    if (auto v = rp.Num({"attention_factor"})) {
      r.attention_factor = *v;
    } else if (mscale != 0 && mscale_all != 0) {
      r.attention_factor = get_mscale(mscale) / get_mscale(mscale_all);
    } else {
      r.attention_factor = get_mscale(1.0);
    }
  } else if (type == "longrope") {
    r.type = RopeType::kLongRope;
    r.original_max_positions = original_max();
    r.factor = rp.Num({"factor"})
                   .value_or(static_cast<double>(c->max_positions) /
                             static_cast<double>(r.original_max_positions));
    if (auto v = rp.Num({"attention_factor"})) {
      r.attention_factor = *v;
    } else {
      r.attention_factor =
          r.factor <= 1.0
              ? 1.0
              : std::sqrt(1.0 + std::log(r.factor) /
                                    std::log(static_cast<double>(r.original_max_positions)));
    }
    for (auto [key, out] :
         {std::pair{"short_factor", &r.short_factor}, std::pair{"long_factor", &r.long_factor}}) {
      auto it = p->find(key);
      if (it == p->end() || !it->is_array() ||
          static_cast<int64_t>(it->size()) != c->rotary_dim / 2) {
        return absl::InvalidArgumentError(absl::StrCat(where_, ": rope scaling 'longrope' needs '",
                                                       key, "' with ", c->rotary_dim / 2,
                                                       " numbers (rotary dims / 2)"));
      }
      for (const json& x : *it) {
        if (!x.is_number()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where_, ": rope scaling 'longrope': '", key, "' holds a non-number"));
        }
        out->push_back(x.get<double>());
      }
    }
  } else {
    return absl::UnimplementedError(absl::StrCat(
        where_, ": rope scaling type '", type,
        "' is not supported (supported: default, linear, dynamic, yarn, llama3, longrope)"));
  }
  if ((r.type != RopeType::kDefault && r.factor <= 0) ||
      (r.type != RopeType::kDefault && r.type != RopeType::kLinear &&
       r.original_max_positions <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where_, ": rope scaling '", type, "' has a non-positive factor or context"));
  }
  return absl::OkStatus();
}

absl::StatusOr<kernels::Activation> ParseActivation(const std::string& name) {
  if (name == "silu" || name == "swish") return kernels::Activation::kSilu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return kernels::Activation::kGeluTanh;
  if (name == "gelu") return kernels::Activation::kGeluErf;
  if (name == "relu") return kernels::Activation::kRelu;
  return absl::InvalidArgumentError(absl::StrCat("unsupported activation '", name, "'"));
}

namespace {

// The dimensions every config.json has, under either naming convention.
absl::Status ReadHfDimensions(const ConfigReader& cfg, ModelConfig* c) {
  LASERD_ASSIGN_OR_RETURN(const double h, cfg.Req({"hidden_size", "n_embd"}));
  LASERD_ASSIGN_OR_RETURN(const double l, cfg.Req({"num_hidden_layers", "n_layer"}));
  LASERD_ASSIGN_OR_RETURN(const double nh, cfg.Req({"num_attention_heads", "n_head"}));
  LASERD_ASSIGN_OR_RETURN(const double v, cfg.Req({"vocab_size"}));
  c->hidden = h;
  c->layers = l;
  c->heads = nh;
  c->kv_heads = c->heads;
  c->head_dim = c->heads ? c->hidden / c->heads : 0;
  c->vocab_size = v;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ReadModelConfig(const formats::WeightSource& src) {
  LASERD_ASSIGN_OR_RETURN(const Architecture* a, ArchitectureOf(src));
  const bool gguf = src.format() == formats::FileFormat::kGguf;
  const std::string& where = src.path();
  ModelConfig c;
  c.arch = a;
  c.model_type = src.metadata().at(gguf ? "general.architecture" : "model_type").get<std::string>();
  c.parallel_residual = a->parallel_residual;
  if (gguf) {
    LASERD_RETURN_IF_ERROR(
        a->read_gguf(ConfigReader(src.metadata(), where, c.model_type + "."), &c));
    const ConfigReader cfg(src.metadata(), where);
    c.bos_id = cfg.Id("tokenizer.ggml.bos_token_id");
    c.eos_id = cfg.Id("tokenizer.ggml.eos_token_id");
  } else {
    const ConfigReader cfg(src.metadata(), where);
    LASERD_RETURN_IF_ERROR(ReadHfDimensions(cfg, &c));
    LASERD_RETURN_IF_ERROR(a->read_hf(cfg, &c));
    c.bos_id = cfg.Id("bos_token_id");
    c.eos_id = cfg.Id("eos_token_id");
  }
  if (c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
      c.heads % c.kv_heads != 0 || c.vocab_size <= 0 || c.intermediate <= 0 ||
      c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": inconsistent model dimensions"));
  }
  return c;
}

}  // namespace laserd::model
