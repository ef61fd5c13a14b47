#include "engine/model/config.h"

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

absl::Status ConfigReader::CheckNoRopeScaling() const {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* s = Find(key);
    if (s == nullptr || !s->is_object()) continue;
    auto t = s->find("rope_type");
    if (t == s->end()) t = s->find("type");
    if (t != s->end() && t->is_string() && *t != "default") {
      return absl::UnimplementedError(absl::StrCat(where_, ": rope scaling type '",
                                                   t->get<std::string>(), "' is not supported"));
    }
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
