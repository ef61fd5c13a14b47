// Hugging Face tokenizer.json (BPE models), following the `tokenizers` crate's
// semantics: the document's components are read by their own files (added
// tokens, normalizers, pre-tokenizers, post-processors, decoders); this file
// holds the tokenizer that runs them around the BPE model, and the loading.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/hf_fields.h"
#include "engine/tokenizer/internal.h"
#include "engine/tokenizer/normalizers.h"
#include "engine/tokenizer/post_processors.h"
#include "engine/tokenizer/pre_tokenizers.h"

namespace laserd::tokenizer {
namespace internal {
namespace {

using json = nlohmann::json;

class HfTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const override {
    if (!IsValidUtf8(text)) return absl::InvalidArgumentError("input text is not valid UTF-8");
    std::vector<int32_t> ids;
    if (add_special) ids = prefix_;
    // Pass 1: non-normalized added tokens on the raw text.
    for (const auto& [tok, span] : raw_matcher_.Split(text)) {
      if (tok != nullptr) {
        ids.push_back(tok->id);
        continue;
      }
      std::string seg(text.substr(span.first, span.second - span.first));
      if (normalizer_ != nullptr) {
        LASERD_ASSIGN_OR_RETURN(seg, normalizer_->Apply(std::move(seg)));
      }
      // Pass 2: normalized added tokens on the normalized segment.
      for (const auto& [tok2, span2] : norm_matcher_.Split(seg)) {
        if (tok2 != nullptr) {
          ids.push_back(tok2->id);
          continue;
        }
        std::vector<Word> words;
        words.push_back({seg.substr(span2.first, span2.second - span2.first),
                         span.first == 0 && span2.first == 0});
        if (pre_ != nullptr) LASERD_RETURN_IF_ERROR(pre_->Apply(&words));
        for (const Word& w : words) LASERD_RETURN_IF_ERROR(model_.TokenizeWord(w.text, &ids));
      }
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> toks;
    toks.reserve(ids.size());
    for (int32_t id : ids) {
      auto it = added_by_id_.find(id);
      if (it != added_by_id_.end()) {
        toks.push_back(it->second);
        continue;
      }
      const std::string& t = model_.IdToToken(id);
      if (!t.empty()) toks.push_back(t);
    }
    if (decoder_ != nullptr) toks = decoder_->Apply(std::move(toks));
    std::string out;
    for (const auto& t : toks) out += t;
    return out;
  }

  int32_t vocab_size() const override { return vocab_size_; }
  bool adds_bos() const override {
    return bos_id_.has_value() && !prefix_.empty() && prefix_.front() == *bos_id_;
  }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }

  BpeModel model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, std::string> added_by_id_;
  AddedMatcher raw_matcher_, norm_matcher_;
  std::vector<int32_t> prefix_, suffix_;
  std::optional<int32_t> bos_id_, eos_id_;
  int32_t vocab_size_ = 0;
};

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseMerges(const json& m) {
  std::vector<std::pair<std::string, std::string>> out;
  if (m.is_null()) return out;
  if (!m.is_array()) return Bad("model.merges", "not an array");
  out.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const json& e = m[i];
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      // HF splits "a b" on the first space (tokens cannot contain a space in this form).
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Bad("model.merges", absl::StrCat("merge #", i, " \"", s,
                                                "\" is not two tokens separated by one space"));
      }
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      out.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return Bad("model.merges", absl::StrCat("merge #", i, " is neither \"a b\" nor [a, b]"));
    }
  }
  return out;
}

// Token content of a tokenizer_config.json entry ("<s>" or {"content": "<s>", ...}).
std::optional<std::string> ConfigToken(const json* config, const char* key) {
  if (config == nullptr || !config->is_object()) return std::nullopt;
  auto it = config->find(key);
  if (it == config->end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const json& doc, const json* config) {
  if (!doc.is_object()) return Bad("tokenizer.json", "top level is not an object");
  auto tok = std::make_unique<HfTokenizer>();

  // Model.
  auto mit = doc.find("model");
  if (mit == doc.end() || !mit->is_object()) return Bad("tokenizer.json", "no \"model\" object");
  const json& model = *mit;
  LASERD_ASSIGN_OR_RETURN(auto mtype, Str(model, "type", "model", std::string("BPE")));
  if (mtype != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("unsupported model type \"", mtype, "\" (only BPE is supported)"));
  }
  auto vit = model.find("vocab");
  if (vit == model.end() || !vit->is_object()) return Bad("model", "no \"vocab\" object");
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vit->size());
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer()) {
      return Bad("model.vocab", absl::StrCat("id of \"", it.key(), "\" is not an integer"));
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (1 << 21)) {
      return Bad("model.vocab", absl::StrCat("id of \"", it.key(), "\" is out of range"));
    }
    vocab.emplace_back(it.key(), static_cast<int32_t>(id));
  }
  LASERD_ASSIGN_OR_RETURN(auto merges,
                          ParseMerges(model.contains("merges") ? model["merges"] : json()));
  BpeModel::Options opt;
  LASERD_ASSIGN_OR_RETURN(auto bf, Bool(model, "byte_fallback", "model", false));
  LASERD_ASSIGN_OR_RETURN(auto fu, Bool(model, "fuse_unk", "model", false));
  LASERD_ASSIGN_OR_RETURN(auto im, Bool(model, "ignore_merges", "model", false));
  LASERD_ASSIGN_OR_RETURN(auto csp,
                          Str(model, "continuing_subword_prefix", "model", std::string()));
  LASERD_ASSIGN_OR_RETURN(auto eow, Str(model, "end_of_word_suffix", "model", std::string()));
  opt.byte_fallback = bf;
  opt.fuse_unk = fu;
  opt.ignore_merges = im;
  opt.continuing_subword_prefix = csp;
  opt.end_of_word_suffix = eow;
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    LASERD_ASSIGN_OR_RETURN(auto unk, Str(model, "unk_token", "model"));
    opt.unk_token = unk;
  }
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    if (!model["dropout"].is_number()) return Bad("model", "\"dropout\" is not a number");
    const double d = model["dropout"].get<double>();
    if (d != 0.0 && d != 1.0) {
      return absl::UnimplementedError("BPE dropout is not supported (non-deterministic)");
    }
  }
  {
    auto m = BpeModel::CreateFromMap(vocab, merges, opt);
    if (!m.ok()) return Bad("model", std::string(m.status().message()));
    tok->model_ = std::move(*m);
  }
  tok->vocab_size_ = tok->model_.size();

  // Added tokens.
  if (auto at = doc.find("added_tokens"); at != doc.end()) {
    LASERD_ASSIGN_OR_RETURN(tok->added_, ParseAddedTokens(*at));
  }
  for (const AddedToken& t : tok->added_) tok->vocab_size_ = std::max(tok->vocab_size_, t.id + 1);
  for (const AddedToken& t : tok->added_) {
    tok->added_by_id_[t.id] = t.content;
    if (t.special) continue;  // special tokens are never parsed out of plain text
    (t.normalized ? tok->norm_matcher_ : tok->raw_matcher_).Add(&t);
  }
  tok->raw_matcher_.Sort();
  tok->norm_matcher_.Sort();

  if (auto n = doc.find("normalizer"); n != doc.end() && !n->is_null()) {
    LASERD_ASSIGN_OR_RETURN(tok->normalizer_, ParseNormalizer(*n, 0));
  }
  if (auto p = doc.find("pre_tokenizer"); p != doc.end() && !p->is_null()) {
    LASERD_ASSIGN_OR_RETURN(tok->pre_, ParsePreTokenizer(*p, 0));
  }
  if (auto d = doc.find("decoder"); d != doc.end() && !d->is_null()) {
    LASERD_ASSIGN_OR_RETURN(tok->decoder_, ParseDecoder(*d, 0));
  }
  if (auto pp = doc.find("post_processor"); pp != doc.end()) {
    LASERD_RETURN_IF_ERROR(
        ParsePostProcessor(*pp, tok->vocab_size_, &tok->prefix_, &tok->suffix_, 0));
  }

  auto id_of = [&](const std::string& content) -> std::optional<int32_t> {
    for (const AddedToken& t : tok->added_) {
      if (t.content == content) return t.id;
    }
    return tok->model_.TokenToId(content);
  };
  // BOS/EOS: tokenizer_config.json, else the post-processor's template, else
  // the conventional names among the tokens.
  if (auto b = ConfigToken(config, "bos_token")) tok->bos_id_ = id_of(*b);
  if (auto e = ConfigToken(config, "eos_token")) tok->eos_id_ = id_of(*e);
  if (!tok->bos_id_.has_value() && !tok->prefix_.empty()) tok->bos_id_ = tok->prefix_.front();
  if (!tok->eos_id_.has_value() && !tok->suffix_.empty()) tok->eos_id_ = tok->suffix_.back();
  for (const char* name : {"<s>", "<|begin_of_text|>", "<bos>"}) {
    if (!tok->bos_id_.has_value()) tok->bos_id_ = id_of(name);
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"}) {
    if (!tok->eos_id_.has_value()) tok->eos_id_ = id_of(name);
  }
  // tokenizer_config.json add_bos_token / add_eos_token override the template
  // the way transformers' Llama-style fast tokenizers rebuild their post-processor.
  if (config != nullptr && config->is_object()) {
    auto ab = config->find("add_bos_token");
    if (ab != config->end() && ab->is_boolean() && tok->bos_id_.has_value()) {
      auto& p = tok->prefix_;
      const bool has = !p.empty() && p.front() == *tok->bos_id_;
      if (ab->get<bool>() && !has) p.insert(p.begin(), *tok->bos_id_);
      if (!ab->get<bool>() && has) p.erase(p.begin());
    }
    auto ae = config->find("add_eos_token");
    if (ae != config->end() && ae->is_boolean() && tok->eos_id_.has_value()) {
      auto& s = tok->suffix_;
      const bool has = !s.empty() && s.back() == *tok->eos_id_;
      if (ae->get<bool>() && !has) s.push_back(*tok->eos_id_);
      if (!ae->get<bool>() && has) s.pop_back();
    }
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJsonString(std::string_view json_text,
                                                                   const nlohmann::json* config,
                                                                   const std::string& origin) {
  json doc = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not valid JSON"));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> r;
  try {
    r = Build(doc, config);
  } catch (const std::exception& e) {  // nlohmann type errors on unexpected shapes
    r = absl::InvalidArgumentError(e.what());
  }
  if (!r.ok()) {
    return absl::Status(r.status().code(), absl::StrCat(origin, ": ", r.status().message()));
  }
  return r;
}

}  // namespace internal

namespace {
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ss.str();
}
}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::string& path) {
  LASERD_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string cfg_path = dir + "/tokenizer_config.json";
  nlohmann::json config;
  bool have_config = false;
  {
    std::ifstream probe(cfg_path);
    if (probe.good()) {
      LASERD_ASSIGN_OR_RETURN(const std::string cfg_text, ReadFile(cfg_path));
      config = nlohmann::json::parse(cfg_text, nullptr, false);
      if (config.is_discarded() || !config.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": not a JSON object"));
      }
      have_config = true;
    }
  }
  return internal::LoadTokenizerJsonString(text, have_config ? &config : nullptr, path);
}

}  // namespace laserd::tokenizer
