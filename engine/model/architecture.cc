#include "engine/model/architecture.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "engine/model/config.h"
#include "engine/model/matrix_layout.h"

namespace laserd::model {

using formats::FileFormat;

const std::vector<std::string>& CanonicalMatrixTypes() {
  static const std::vector<std::string> kTypes = {"attn.q", "attn.k", "attn.v", "attn.o",
                                                  "mlp.in", "mlp.up", "mlp.out"};
  return kTypes;
}

const std::vector<std::string>& ExpertMatrixBaseTypes() {
  static const std::vector<std::string> kTypes = {"moe.in", "moe.up", "moe.out"};
  return kTypes;
}

std::string ExpertMatrixType(const std::string& base, int64_t expert) {
  return absl::StrCat(base, "[", expert, "]");
}

std::optional<std::pair<std::string, int64_t>> ParseExpertMatrixType(const std::string& type) {
  const size_t open = type.find('[');
  if (open == std::string::npos || type.size() < open + 3 || type.back() != ']') {
    return std::nullopt;
  }
  const std::string base = type.substr(0, open);
  const std::string digits = type.substr(open + 1, type.size() - open - 2);
  const auto& bases = ExpertMatrixBaseTypes();
  int64_t e = -1;
  if (std::find(bases.begin(), bases.end(), base) == bases.end() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(digits, &e)) {
    return std::nullopt;
  }
  return std::make_pair(base, e);
}

std::vector<std::string> Architecture::MatrixTypes() const {
  std::vector<std::string> r;
  for (const std::string& t : CanonicalMatrixTypes()) {
    if (FindMatrixTensor(*this, FileFormat::kSafetensors, t) != nullptr) r.push_back(t);
  }
  if (FindMatrixTensor(*this, FileFormat::kSafetensors, kRouterMatrixType) != nullptr) {
    r.push_back(kRouterMatrixType);
  }
  return r;
}

const ModelType* Architecture::FindModelType(FileFormat f, const std::string& type) const {
  for (const ModelType& m : model_types) {
    const std::string& name = f == FileFormat::kGguf ? m.gguf : m.hf;
    if (!name.empty() && name == type) return &m;
  }
  return nullptr;
}

const Architecture* FindArchitecture(const std::string& name) {
  for (const Architecture* a : Architectures())
    if (a->name == name) return a;
  return nullptr;
}

const char* ArchName(const Architecture* a) { return a == nullptr ? "?" : a->name.c_str(); }

absl::StatusOr<const Architecture*> ArchitectureOf(const formats::WeightSource& src) {
  const nlohmann::json& md = src.metadata();
  const bool gguf = src.format() == FileFormat::kGguf;
  const char* key = gguf ? "general.architecture" : "model_type";
  if (!md.is_object() || !md.contains(key) || !md[key].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(src.path(), gguf ? ": GGUF has no general.architecture"
                                      : ": config.json is missing or has no model_type"));
  }
  const std::string type = md[key].get<std::string>();
  // GGUF: a family whose entry for this name asks for experts wins when the
  // file has them; otherwise such entries are skipped.
  bool experts = false;
  if (auto it = md.find(type + ".expert_count"); gguf && it != md.end() && it->is_number()) {
    experts = it->get<double>() > 0;
  }
  auto matches = [&](const Architecture* a, bool want_experts) {
    const ModelType* m = a->FindModelType(src.format(), type);
    return m != nullptr && (!gguf || m->gguf_experts == want_experts);
  };
  if (gguf && experts) {
    for (const Architecture* a : Architectures()) {
      if (a->read_gguf != nullptr && matches(a, true)) return a;
    }
  }
  std::vector<std::string> supported;
  for (const Architecture* a : Architectures()) {
    if (gguf && a->read_gguf == nullptr) continue;
    if (matches(a, false)) return a;
    for (const ModelType& m : a->model_types) {
      const std::string& n = gguf ? m.gguf : m.hf;
      if (!n.empty()) supported.push_back(n);
    }
  }
  return absl::UnimplementedError(absl::StrCat(
      src.path(), gguf ? ": unsupported GGUF architecture '" : ": unsupported model_type '", type,
      "' (supported: ", absl::StrJoin(supported, ", "), ")"));
}

std::string ExpandLayer(const std::string& tmpl, int64_t layer) {
  return absl::StrReplaceAll(tmpl, {{"{L}", absl::StrCat(layer)}});
}

std::string BodyPrefix(const Architecture& a, const formats::WeightSource& src) {
  const TensorNaming& n = a.naming(src.format());
  for (const std::string& p : n.prefixes) {
    if (src.Has(absl::StrCat(p, n.embed, ".weight"))) return p;
  }
  return n.prefixes.empty() ? std::string() : n.prefixes.back();
}

const MatrixTensor* FindMatrixTensor(const Architecture& a, FileFormat f, const std::string& type) {
  for (const MatrixTensor& t : a.naming(f).matrices) {
    if (std::find(t.types.begin(), t.types.end(), type) != t.types.end()) return &t;
  }
  // An expert's matrix: the per-expert (or stacked) tensor of its base type;
  // a base type alone names a stacked tensor.
  if (auto ex = ParseExpertMatrixType(type)) {
    for (const MatrixTensor& t : a.naming(f).expert_matrices) {
      if (t.types.size() == 1 && t.types[0] == ex->first) return &t;
    }
  }
  for (const MatrixTensor& t : a.naming(f).expert_matrices) {
    if (StacksExperts(t) && t.types.size() == 1 && t.types[0] == type) return &t;
  }
  return nullptr;
}

bool StacksExperts(const MatrixTensor& t) { return t.name.find("{E}") == std::string::npos; }

std::string TensorName(const Architecture& a, FileFormat f, const std::string& prefix,
                       const TensorRole& role) {
  const TensorNaming& n = a.naming(f);
  std::string base;
  bool bias_ok = false, prefixed = true;
  int64_t expert = -1;
  switch (role.kind) {
    case TensorKind::kEmbed:
      base = n.embed;
      break;
    case TensorKind::kPosEmbed:
      base = n.pos_embed;
      break;
    case TensorKind::kFinalNorm:
      base = n.final_norm.name;
      bias_ok = n.final_norm.bias;
      break;
    case TensorKind::kHead:
      base = n.head;
      bias_ok = n.head_bias;
      prefixed = false;
      break;
    case TensorKind::kAttnNorm:
      base = n.attn_norm.name;
      bias_ok = n.attn_norm.bias;
      break;
    case TensorKind::kMlpNorm:
      base = n.mlp_norm.name;
      bias_ok = n.mlp_norm.bias;
      break;
    case TensorKind::kPostAttnNorm:
      base = n.post_attn_norm.name;
      break;
    case TensorKind::kPostMlpNorm:
      base = n.post_mlp_norm.name;
      break;
    case TensorKind::kQNorm:
      base = n.q_norm.name;
      break;
    case TensorKind::kKNorm:
      base = n.k_norm.name;
      break;
    case TensorKind::kRopeFreqs:
      base = n.rope_freqs;
      break;
    case TensorKind::kRopeFactorsLong:
      base = n.rope_factors_long;
      break;
    case TensorKind::kRopeFactorsShort:
      base = n.rope_factors_short;
      break;
    case TensorKind::kMatrix:
      if (const MatrixTensor* t =
              role.types.empty() ? nullptr : FindMatrixTensor(a, f, role.types[0])) {
        base = t->name;
        if (auto ex = ParseExpertMatrixType(role.types[0])) expert = ex->second;
      }
      bias_ok = true;
      break;
  }
  if (base.empty() || (role.bias && !bias_ok)) return "";
  if (expert >= 0) base = absl::StrReplaceAll(base, {{"{E}", absl::StrCat(expert)}});
  return absl::StrCat(prefixed ? prefix : "", ExpandLayer(base, role.layer),
                      role.bias ? ".bias" : ".weight");
}

namespace {

// Whether `name` is `tmpl` with "{L}" replaced by a layer number (stored in *layer).
bool MatchLayer(const std::string& tmpl, absl::string_view name, int64_t* layer) {
  const size_t at = tmpl.find("{L}");
  if (at == std::string::npos) return false;
  absl::string_view before(tmpl.data(), at), after(tmpl.data() + at + 3, tmpl.size() - at - 3);
  if (name.size() <= before.size() + after.size() || !absl::StartsWith(name, before) ||
      !absl::EndsWith(name, after)) {
    return false;
  }
  absl::string_view digits = name.substr(before.size(), name.size() - before.size() - after.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return false;
  }
  return absl::SimpleAtoi(digits, layer);
}

}  // namespace

std::optional<TensorRole> RoleOfTensor(const Architecture& a, FileFormat f,
                                       const std::string& prefix, const std::string& name) {
  absl::string_view base = name;
  TensorRole r;
  if (absl::ConsumeSuffix(&base, ".bias")) {
    r.bias = true;
  } else if (!absl::ConsumeSuffix(&base, ".weight")) {
    return std::nullopt;
  }
  const TensorNaming& n = a.naming(f);
  auto known = [&](TensorKind kind, int64_t layer,
                   std::vector<std::string> types) -> std::optional<TensorRole> {
    r.kind = kind;
    r.layer = layer;
    r.types = std::move(types);
    // The role is real only when the architecture names that tensor.
    if (TensorName(a, f, prefix, r) != name) return std::nullopt;
    return r;
  };
  if (!n.head.empty() && base == n.head) return known(TensorKind::kHead, -1, {});
  if (!absl::ConsumePrefix(&base, prefix)) return std::nullopt;
  if (!n.embed.empty() && base == n.embed) return known(TensorKind::kEmbed, -1, {});
  if (!n.pos_embed.empty() && base == n.pos_embed) return known(TensorKind::kPosEmbed, -1, {});
  for (auto [t, kind] : {std::pair{&n.rope_freqs, TensorKind::kRopeFreqs},
                         std::pair{&n.rope_factors_long, TensorKind::kRopeFactorsLong},
                         std::pair{&n.rope_factors_short, TensorKind::kRopeFactorsShort}}) {
    if (!t->empty() && base == *t) return known(kind, -1, {});
  }
  if (!n.final_norm.name.empty() && base == n.final_norm.name) {
    return known(TensorKind::kFinalNorm, -1, {});
  }
  int64_t layer = -1;
  if (MatchLayer(n.attn_norm.name, base, &layer)) return known(TensorKind::kAttnNorm, layer, {});
  if (MatchLayer(n.mlp_norm.name, base, &layer)) return known(TensorKind::kMlpNorm, layer, {});
  for (const auto& [t, kind] :
       {std::pair{&n.post_attn_norm, TensorKind::kPostAttnNorm},
        std::pair{&n.post_mlp_norm, TensorKind::kPostMlpNorm},
        std::pair{&n.q_norm, TensorKind::kQNorm}, std::pair{&n.k_norm, TensorKind::kKNorm}}) {
    if (MatchLayer(t->name, base, &layer)) return known(kind, layer, {});
  }
  for (const MatrixTensor& t : n.matrices) {
    if (MatchLayer(t.name, base, &layer)) return known(TensorKind::kMatrix, layer, t.types);
  }
  // Expert tensors: "{E}" is the first number after the layer's part.
  for (const MatrixTensor& t : n.expert_matrices) {
    const size_t at = t.name.find("{E}");
    if (at == std::string::npos) {  // every expert stacked: the base type
      if (MatchLayer(t.name, base, &layer)) return known(TensorKind::kMatrix, layer, t.types);
      continue;
    }
    const std::string head = t.name.substr(0, at), tail = t.name.substr(at + 3);
    // Try every split of `base` into head-with-layer, expert digits, tail.
    if (!absl::EndsWith(base, tail) || base.size() <= tail.size()) continue;
    absl::string_view rest = base.substr(0, base.size() - tail.size());
    size_t d = rest.size();
    while (d > 0 && absl::ascii_isdigit(rest[d - 1])) --d;
    if (d == rest.size()) continue;
    int64_t e = -1;
    if (!MatchLayer(head, rest.substr(0, d), &layer) || rest.size() - d > 9 ||
        !absl::SimpleAtoi(rest.substr(d), &e)) {
      continue;
    }
    return known(TensorKind::kMatrix, layer, {ExpertMatrixType(t.types[0], e)});
  }
  return std::nullopt;
}

std::optional<TensorRole> RoleOfTensor(const Architecture& a, const formats::WeightSource& src,
                                       const std::string& name) {
  return RoleOfTensor(a, src.format(), BodyPrefix(a, src), name);
}

absl::StatusOr<MatrixSource> FindMatrixSource(const formats::WeightSource& src,
                                              const ModelConfig& c, const std::string& type,
                                              int64_t layer) {
  const MatrixTensor* t =
      c.arch == nullptr ? nullptr : FindMatrixTensor(*c.arch, src.format(), type);
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("matrix type '", type, "' does not exist in a ", c.model_type, " model"));
  }
  MatrixSource s;
  s.tensor = TensorName(*c.arch, src.format(), BodyPrefix(*c.arch, src),
                        {TensorKind::kMatrix, layer, {type}, false});
  for (const formats::TensorInfo& ti : src.tensors()) {
    if (ti.name == s.tensor) s.dtype = formats::DTypeName(ti.dtype);
  }
  if (auto ex = ParseExpertMatrixType(type); ex && StacksExperts(*t)) {
    const auto [out, in] = MatrixShape(c, type);
    s.fused_block = absl::StrCat("expert ", ex->second, " of the stacked [", c.experts, ", ", out,
                                 ", ", in, "] tensor");
  }
  if (t->types.size() > 1) {
    const FusedRows fr = FusedRowsOf(c, *t);
    const size_t j = std::find(t->types.begin(), t->types.end(), type) - t->types.begin();
    const int64_t a = fr.offset[j], b = fr.offset[j] + fr.rows[j];
    if (fr.blocks > 1) {
      s.fused_block =
          absl::StrCat("rows h*", fr.stride, "+", a, ":h*", fr.stride, "+", b, " of every head h");
    } else if (t->layout == MatrixLayout::kConv1D) {
      s.fused_block = absl::StrCat("rows ", a, ":", b, " (of the transposed [", fr.total, ", ",
                                   MatrixShape(c, type).second, "] weight)");
    } else {
      s.fused_block = absl::StrCat("rows ", a, ":", b);
    }
  }
  return s;
}

}  // namespace laserd::model
