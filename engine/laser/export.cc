#include "engine/laser/export.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/laser/paper_svd.h"
#include "engine/laser/rank.h"
#include "engine/model/matrix_layout.h"
#include "engine/tokenizer/gguf_pre_tokenizer.h"

namespace laserd::laser {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot create ", path));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("error writing ", path));
  return absl::OkStatus();
}

// Collects the output tensors of one model.
class Collector {
 public:
  Collector(const formats::WeightSource& src, model::Model* model,
            const std::vector<AppliedEdit>& applied, ExportFormat format)
      : src_(src), model_(model), factored_(format == ExportFormat::kFactored) {
    for (const AppliedEdit& e : applied) edits_[{e.spec.type, e.spec.layer}] = &e;
  }

  // Source tensors that the matrices replace.
  void Consume(const std::string& name) { consumed_.insert(name); }

  absl::StatusOr<std::vector<float>> Host(const std::string& type, int64_t layer) {
    return MatrixToHost(model_, type, layer);
  }

  const AppliedEdit* Edit(const std::string& type, int64_t layer) const {
    auto it = edits_.find({type, layer});
    return it == edits_.end() ? nullptr : it->second;
  }

  // The stored tensor `name` holding the one matrix of `t`, in t's layout
  // ([out, in] nn.Linear, [in, out] Conv1D). Factored: `name`.laser_a
  // [rows, k] and `name`.laser_b [cols, k] with the stored tensor = a · bᵀ.
  absl::Status Matrix(const model::MatrixTensor& t, int64_t layer, const std::string& name) {
    const model::ModelConfig& cfg = model_->config();
    const std::string& type = t.types[0];
    if (const AppliedEdit* e = Edit(type, layer); e && factored_) {
      const bool conv1d = t.layout == model::MatrixLayout::kConv1D;
      const std::vector<float>& a = conv1d ? e->v : e->us;
      const std::vector<float>& b = conv1d ? e->us : e->v;
      const int64_t ra = conv1d ? e->in : e->out, rb = conv1d ? e->out : e->in;
      Add({name + ".laser_a", {ra, e->k}, a});
      Add({name + ".laser_b", {rb, e->k}, b});
      ++factored_count_;
      return absl::OkStatus();
    }
    LASERD_ASSIGN_OR_RETURN(std::vector<float> h, Host(type, layer));
    Add({name, model::StoredShape(cfg, t), model::JoinStored(cfg, t, {std::move(h)})});
    return absl::OkStatus();
  }

  // Counts the edited matrices of a fused tensor (stored dense in both formats).
  void NoteFused(const std::vector<std::string>& types, int64_t layer) {
    if (!factored_) return;
    for (const std::string& t : types)
      if (Edit(t, layer)) ++kept_dense_;
  }

  void Add(StTensor t) { out_.push_back(std::move(t)); }

  // Copies every source tensor not consumed, renamed by `rename`, which may
  // also change its values; an empty name drops the tensor.
  absl::Status CopyRest(
      const std::function<absl::StatusOr<std::string>(const std::string&, formats::TensorF32*)>&
          rename) {
    for (const formats::TensorInfo& ti : src_.tensors()) {
      if (consumed_.count(ti.name)) continue;
      LASERD_ASSIGN_OR_RETURN(auto t, src_.LoadF32(ti.name));
      LASERD_ASSIGN_OR_RETURN(auto name, rename(ti.name, &t));
      if (name.empty()) continue;
      Add({name, t.shape, std::move(t.data)});
    }
    return absl::OkStatus();
  }

  std::vector<StTensor>& tensors() { return out_; }
  int64_t factored_count() const { return factored_count_; }
  int64_t kept_dense() const { return kept_dense_; }

 private:
  const formats::WeightSource& src_;
  model::Model* model_;
  bool factored_;
  std::map<std::pair<std::string, int64_t>, const AppliedEdit*> edits_;
  std::set<std::string> consumed_;
  std::vector<StTensor> out_;
  int64_t factored_count_ = 0, kept_dense_ = 0;
};

// Hugging Face name of a tensor of a GGUF source that is not one of the
// model's matrices, by its role in the architecture; empty for the rotary
// factor tensors, which the config writer puts into config.json. A norm
// weight is converted between the formats' norm styles (Gemma: GGUF 1 + w,
// Hugging Face w).
absl::StatusOr<std::string> GgufToHf(const model::ModelConfig& cfg, const std::string& name,
                                     const std::string& hf_prefix, const std::string& where,
                                     formats::TensorF32* t) {
  const model::Architecture& arch = *cfg.arch;
  auto role = model::RoleOfTensor(arch, formats::FileFormat::kGguf, "", name);
  using model::TensorKind;
  if (role && (role->kind == TensorKind::kRopeFreqs || role->kind == TensorKind::kRopeFactorsLong ||
               role->kind == TensorKind::kRopeFactorsShort)) {
    return std::string();
  }
  const float offset = arch.safetensors.norm_weight_offset - arch.gguf.norm_weight_offset;
  if (role && !role->bias && offset != 0.0f &&
      (role->kind == TensorKind::kFinalNorm || role->kind == TensorKind::kAttnNorm ||
       role->kind == TensorKind::kMlpNorm || role->kind == TensorKind::kPostAttnNorm ||
       role->kind == TensorKind::kPostMlpNorm || role->kind == TensorKind::kQNorm ||
       role->kind == TensorKind::kKNorm)) {
    for (float& x : t->data) x -= offset;
  }
  if (role && role->kind == model::TensorKind::kMatrix && role->bias) {
    // llama.cpp permutes Q/K rows (and their biases) of some architectures.
    const model::ModelType* t = arch.FindModelType(formats::FileFormat::kGguf, cfg.model_type);
    for (const std::string& type : role->types) {
      if (t != nullptr && t->gguf_rotary_permuted && (type == "attn.q" || type == "attn.k")) {
        return absl::UnimplementedError(absl::StrCat(where, ": tensor ", name, ": Q/K biases of ",
                                                     cfg.model_type, " GGUF are not exported"));
      }
    }
  }
  std::string hf;
  if (role) hf = model::TensorName(arch, formats::FileFormat::kSafetensors, hf_prefix, *role);
  if (hf.empty()) {
    return absl::UnimplementedError(absl::StrCat(
        where, ": GGUF tensor ", name, " has no Hugging Face counterpart known to laserd export"));
  }
  return hf;
}

// Every matrix under its safetensors name and layout (the source's own names
// for safetensors sources), then every other source tensor, renamed from GGUF
// to Hugging Face names for GGUF sources.
absl::Status CollectTensors(const formats::WeightSource& src, model::Model* model, Collector* c) {
  const model::ModelConfig& cfg = model->config();
  const model::Architecture& arch = *cfg.arch;
  const bool gguf = src.format() == formats::FileFormat::kGguf;
  const std::string src_prefix = model::BodyPrefix(arch, src);
  const std::string prefix = gguf ? arch.safetensors.prefixes.front() : src_prefix;
  for (int64_t i = 0; i < cfg.layers; ++i) {
    for (const model::MatrixTensor& t : arch.safetensors.matrices) {
      const std::string name = absl::StrCat(prefix, model::ExpandLayer(t.name, i), ".weight");
      for (const std::string& type : t.types) {
        c->Consume(model::TensorName(arch, src.format(), src_prefix,
                                     {model::TensorKind::kMatrix, i, {type}, false}));
      }
      if (t.types.size() == 1) {
        LASERD_RETURN_IF_ERROR(c->Matrix(t, i, name));
        continue;
      }
      // A fused tensor is written dense in both formats.
      std::vector<std::vector<float>> ms;
      for (const std::string& type : t.types) {
        LASERD_ASSIGN_OR_RETURN(std::vector<float> m, c->Host(type, i));
        ms.push_back(std::move(m));
      }
      c->Add({name, model::StoredShape(cfg, t), model::JoinStored(cfg, t, ms)});
      c->NoteFused(t.types, i);
    }
    // Mixture of experts: every expert's matrices, one tensor each.
    for (int64_t e = 0; e < cfg.experts; ++e) {
      for (const model::MatrixTensor& t : arch.safetensors.expert_matrices) {
        model::MatrixTensor one = t;
        one.types = {model::ExpertMatrixType(t.types[0], e)};
        const model::TensorRole role{model::TensorKind::kMatrix, i, one.types, false};
        c->Consume(model::TensorName(arch, src.format(), src_prefix, role));
        LASERD_RETURN_IF_ERROR(c->Matrix(
            one, i, model::TensorName(arch, formats::FileFormat::kSafetensors, prefix, role)));
      }
    }
  }
  if (!gguf) return c->CopyRest([](const std::string& n, formats::TensorF32*) { return n; });
  const std::string where = src.path();
  return c->CopyRest([&](const std::string& n, formats::TensorF32* t) {
    return GgufToHf(cfg, n, prefix, where, t);
  });
}

// Files beside a safetensors model that describe the model or its tokenizer.
constexpr const char* kSideFiles[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
};

// tokenizer.json + tokenizer_config.json for a GGUF byte-level BPE vocabulary
// (tokenizer.ggml.model "gpt2"): the vocabulary and merges as they are, the
// pre-tokenizer llama.cpp uses for tokenizer.ggml.pre as a sequence of
// isolating regex splits followed by the byte-level mapping, and control /
// user-defined tokens as added tokens. Empty for other vocabularies.
absl::StatusOr<std::vector<std::string>> WriteGgufTokenizer(const formats::WeightSource& src,
                                                            const std::string& out_dir) {
  const json& md = src.metadata();
  auto str = [&](const char* k) -> std::string {
    auto it = md.find(k);
    return it != md.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (str("tokenizer.ggml.model") != "gpt2") return std::vector<std::string>();
  const std::string where = src.path();
  auto tokens_it = md.find("tokenizer.ggml.tokens");
  auto merges_it = md.find("tokenizer.ggml.merges");
  if (tokens_it == md.end() || !tokens_it->is_array() || merges_it == md.end() ||
      !merges_it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": GGUF BPE vocabulary without tokenizer.ggml.tokens/merges"));
  }
  LASERD_ASSIGN_OR_RETURN(auto pre, tokenizer::GgufPreTokenizerRulesFor(str("tokenizer.ggml.pre")));
  const json& tokens = *tokens_it;
  json types = md.value("tokenizer.ggml.token_type", json::array());
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tokenizer.ggml.tokens[", i, "] is not a string"));
    }
    const std::string t = tokens[i].get<std::string>();
    if (!vocab.contains(t)) vocab[t] = i;
    const int type = i < types.size() && types[i].is_number_integer() ? types[i].get<int>() : 1;
    if (type == 3 || type == 4) {  // CONTROL, USER_DEFINED
      added.push_back({{"id", i},
                       {"content", t},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type == 4},
                       {"special", type == 3}});
    }
  }
  json merges = json::array();
  for (const json& m : *merges_it) {
    if (!m.is_string()) continue;
    const std::string s = m.get<std::string>();
    // llama.cpp splits a merge at the first space after position 0.
    const size_t pos = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
    if (pos == std::string::npos) continue;
    merges.push_back({s.substr(0, pos), s.substr(pos + 1)});
  }
  json pretoks = json::array();
  for (const std::string& r : pre.regexes) {
    pretoks.push_back({{"type", "Split"},
                       {"pattern", {{"Regex", r}}},
                       {"behavior", "Isolated"},
                       {"invert", false}});
  }
  pretoks.push_back({{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", false}});
  auto id = [&](const char* k) -> std::optional<int64_t> {
    auto it = md.find(k);
    if (it != md.end() && it->is_number_integer() && it->get<int64_t>() >= 0 &&
        it->get<int64_t>() < static_cast<int64_t>(tokens.size()))
      return it->get<int64_t>();
    return std::nullopt;
  };
  auto bos = id("tokenizer.ggml.bos_token_id"), eos = id("tokenizer.ggml.eos_token_id"),
       unk = id("tokenizer.ggml.unknown_token_id"), pad = id("tokenizer.ggml.padding_token_id");
  bool add_bos = pre.add_bos_default;
  if (auto it = md.find("tokenizer.ggml.add_bos_token"); it != md.end() && it->is_boolean())
    add_bos = it->get<bool>();
  json post = {{"type", "ByteLevel"},
               {"add_prefix_space", true},
               {"trim_offsets", false},
               {"use_regex", true}};
  if (add_bos && bos) {
    const std::string b = tokens[*bos].get<std::string>();
    post = {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", b}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{b, {{"id", b}, {"ids", {*bos}}, {"tokens", {b}}}}}}};
  }
  json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pretoks}}},
      {"post_processor", post},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", unk ? json(tokens[*unk]) : json(nullptr)},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", pre.ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"add_bos_token", add_bos},
              {"add_eos_token", false},
              {"clean_up_tokenization_spaces", false},
              {"model_max_length",
               src.metadata().value(absl::StrCat(str("general.architecture"), ".context_length"),
                                    json(2048))}};
  if (bos) cfg["bos_token"] = tokens[*bos];
  if (eos) cfg["eos_token"] = tokens[*eos];
  if (unk) cfg["unk_token"] = tokens[*unk];
  if (pad) cfg["pad_token"] = tokens[*pad];
  if (std::string ct = str("tokenizer.chat_template"); !ct.empty()) cfg["chat_template"] = ct;
  const std::string tp = (fs::path(out_dir) / "tokenizer.json").string(),
                    cp = (fs::path(out_dir) / "tokenizer_config.json").string();
  LASERD_RETURN_IF_ERROR(WriteFile(tp, tj.dump(1) + "\n"));
  LASERD_RETURN_IF_ERROR(WriteFile(cp, cfg.dump(2) + "\n"));
  return std::vector<std::string>{tp, cp};
}

}  // namespace

absl::StatusOr<std::vector<EditSpec>> ParseEdits(const std::string& spec,
                                                 const std::vector<std::string>& available,
                                                 int64_t layers) {
  std::vector<EditSpec> out;
  std::set<std::pair<std::string, int64_t>> seen;
  if (spec.empty()) return absl::InvalidArgumentError("--edit: no edit given (T:layer:rho)");
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    std::vector<std::string> f = absl::StrSplit(item, ':');
    if (f.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("edit '", item, "': expected T:layer:rho (e.g. mlp.in:5:0.1)"));
    }
    auto type = CanonicalMatrixType(f[0]);
    if (!type.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("edit '", item, "': ", type.status().message()));
    }
    if (std::find(available.begin(), available.end(), *type) == available.end()) {
      std::string have;
      for (const auto& t : available) absl::StrAppend(&have, have.empty() ? "" : ", ", t);
      return absl::InvalidArgumentError(absl::StrCat("edit '", item, "': the model has no ", *type,
                                                     " matrices (it has ", have, ")"));
    }
    EditSpec e;
    e.type = *type;
    if (!absl::SimpleAtoi(f[1], &e.layer) || e.layer < 0 || e.layer >= layers) {
      return absl::InvalidArgumentError(absl::StrCat("edit '", item, "': layer '", f[1],
                                                     "' is not an integer in [0, ", layers, ")"));
    }
    if (!absl::SimpleAtod(f[2], &e.rho) || !(e.rho > 0.0 && e.rho <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("edit '", item, "': rho '", f[2], "' is not a number in (0, 1]"));
    }
    if (!seen.insert({e.type, e.layer}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("edit '", item, "': ", e.type, " of layer ", e.layer, " is edited twice"));
    }
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<AppliedEdit>> ApplyEdits(model::Model* model,
                                                    const std::vector<EditSpec>& edits,
                                                    const kernels::SvdOptions& svd,
                                                    Editor* editor) {
  std::vector<AppliedEdit> out;
  for (const EditSpec& e : edits) {
    LASERD_ASSIGN_OR_RETURN(auto w, model->Matrix(e.type, e.layer));
    AppliedEdit a;
    a.spec = e;
    a.out = w->rows();
    a.in = w->cols();
    a.max_rank = std::min(a.out, a.in);
    LASERD_ASSIGN_OR_RETURN(auto k, KeptRankFromRho(a.out, a.in, e.rho));
    a.k = k;
    LASERD_ASSIGN_OR_RETURN(auto host, MatrixToHost(model, e.type, e.layer));
    // The paper method's seed for this matrix and rank, as a sweep uses it.
    auto d = kernels::ComputeTruncatedSvd(host.data(), a.out, a.in, a.k,
                                          OptionsForRank(svd, e.type, e.layer, a.k));
    if (!d.ok()) {
      return absl::Status(d.status().code(),
                          absl::StrCat(e.type, " of layer ", e.layer, ": ", d.status().message()));
    }
    LASERD_ASSIGN_OR_RETURN(auto err, kernels::TruncationErrors(host.data(), *d, {a.k}));
    a.rel_error = err[0];
    a.us.resize(a.out * a.k);
    a.v.resize(a.in * a.k);
    for (int64_t i = 0; i < a.out; ++i)
      for (int64_t j = 0; j < a.k; ++j) a.us[i * a.k + j] = d->u[i * d->k + j] * d->s[j];
    for (int64_t i = 0; i < a.in; ++i)
      for (int64_t j = 0; j < a.k; ++j) a.v[i * a.k + j] = d->v[i * d->k + j];
    LASERD_RETURN_IF_ERROR(editor->ApplyDense(e.type, e.layer, *d, a.k));
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<ExportFormat> ParseExportFormat(const std::string& name) {
  if (name == "merged") return ExportFormat::kMerged;
  if (name == "factored") return ExportFormat::kFactored;
  return absl::InvalidArgumentError(
      absl::StrCat("export format '", name, "' is not one of merged, factored"));
}

const char* ExportFormatName(ExportFormat f) {
  return f == ExportFormat::kMerged ? "merged" : "factored";
}

absl::Status WriteSafetensorsF32(const std::string& path, const std::vector<StTensor>& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  static_assert(std::endian::native == std::endian::little, "safetensors is little-endian");
  std::vector<const StTensor*> order;
  for (const StTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const StTensor* a, const StTensor* b) { return a->name < b->name; });
  json header = json::object();
  int64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const StTensor& t = *order[i];
    if (t.name.empty() || t.name == "__metadata__" || (i && order[i - 1]->name == t.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": invalid or duplicate tensor name '", t.name, "'"));
    }
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    if (n != static_cast<int64_t>(t.data.size())) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", t.name, " has ",
                                                     t.data.size(), " values for shape ",
                                                     model::ShapeString(t.shape)));
    }
    const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  const uint64_t hl = h.size();
  std::memcpy(bytes.data(), &hl, 8);
  bytes += h;
  bytes.reserve(bytes.size() + offset);
  for (const StTensor* t : order) {
    bytes.append(reinterpret_cast<const char*>(t->data.data()), t->data.size() * sizeof(float));
  }
  return WriteFile(path, bytes);
}

absl::StatusOr<json> HfConfigFromGguf(const formats::WeightSource& src,
                                      const model::ModelConfig& c) {
  if (c.arch == nullptr || c.arch->hf_config_from_gguf == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(src.path(), ": GGUF architecture ", c.model_type, " cannot be exported"));
  }
  return c.arch->hf_config_from_gguf(src, c);
}

absl::StatusOr<ExportResult> WriteExport(const formats::WeightSource& src, model::Model* model,
                                         const std::vector<AppliedEdit>& applied,
                                         ExportFormat format, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir)) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create output directory ", out_dir, ": ", ec.message()));
  }
  const bool gguf = src.format() == formats::FileFormat::kGguf;
  ExportResult r;

  // config.json first, so that an unsupported source fails before the big write.
  json config;
  if (gguf) {
    LASERD_ASSIGN_OR_RETURN(auto c, HfConfigFromGguf(src, model->config()));
    config = std::move(c);
  }

  Collector c(src, model, applied, format);
  LASERD_RETURN_IF_ERROR(CollectTensors(src, model, &c));
  json edits = json::array();
  for (const AppliedEdit& e : applied) {
    edits.push_back({{"type", e.spec.type},
                     {"layer", e.spec.layer},
                     {"rho", e.spec.rho},
                     {"k", e.k},
                     {"max_rank", e.max_rank},
                     {"rel_error", e.rel_error}});
  }
  std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {"laserd_export", ExportFormatName(format)},
      {"laserd_edits", edits.dump()},
      {"laserd_source", fs::path(src.path()).filename().string()},
  };
  r.weights_path = (fs::path(out_dir) / "model.safetensors").string();
  LASERD_RETURN_IF_ERROR(WriteSafetensorsF32(r.weights_path, c.tensors(), meta));
  r.weights_bytes = static_cast<int64_t>(fs::file_size(r.weights_path, ec));
  r.files.push_back(r.weights_path);
  r.dense_tensors_factored = c.factored_count();
  r.edits_kept_dense = c.kept_dense();

  const std::string cfg_out = (fs::path(out_dir) / "config.json").string();
  if (gguf) {
    LASERD_RETURN_IF_ERROR(WriteFile(cfg_out, config.dump(2) + "\n"));
    r.files.push_back(cfg_out);
    LASERD_ASSIGN_OR_RETURN(auto tok, WriteGgufTokenizer(src, out_dir));
    r.files.insert(r.files.end(), tok.begin(), tok.end());
  } else {
    fs::path dir =
        fs::is_directory(src.path()) ? fs::path(src.path()) : fs::path(src.path()).parent_path();
    // The source's config.json, with the dtype of the written weights.
    json cfg = src.metadata();
    for (const char* key : {"torch_dtype", "dtype"})
      if (cfg.contains(key)) cfg[key] = "float32";
    LASERD_RETURN_IF_ERROR(WriteFile(cfg_out, cfg.dump(2) + "\n"));
    r.files.push_back(cfg_out);
    for (const char* n : kSideFiles) {
      const fs::path from = dir / n, to = fs::path(out_dir) / n;
      if (!fs::exists(from)) continue;
      if (fs::exists(to) && fs::equivalent(from, to)) continue;
      fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        return absl::PermissionDeniedError(
            absl::StrCat("cannot copy ", from.string(), " to ", to.string(), ": ", ec.message()));
      }
      r.files.push_back(to.string());
    }
  }
  return r;
}

}  // namespace laserd::laser
