// Tokenizers from GGUF metadata (tokenizer.ggml.*), following llama.cpp's
// llama-vocab: model "gpt2" (byte-level BPE with tokenizer.ggml.pre regexes)
// and model "llama" (SentencePiece-style score merging with byte fallback).
#include <algorithm>
#include <cctype>
#include <queue>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer {
namespace {

using internal::BpeModel;
using internal::Regex;
using json = nlohmann::json;

constexpr int kTypeNormal = 1, kTypeUserDefined = 4, kTypeUnused = 5, kTypeByte = 6;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("GGUF tokenizer metadata: ", what));
}

absl::StatusOr<std::vector<std::string>> StringArray(const json& md, const std::string& key,
                                                     bool required) {
  std::vector<std::string> out;
  auto it = md.find(key);
  if (it == md.end()) {
    if (required) return Bad(absl::StrCat("missing ", key));
    return out;
  }
  if (!it->is_array()) return Bad(absl::StrCat(key, " is not an array"));
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string()) return Bad(absl::StrCat(key, "[", i, "] is not a string"));
    out.push_back(v.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> OptInt(const json& md, const std::string& key) {
  auto it = md.find(key);
  if (it == md.end()) return std::optional<int64_t>();
  if (!it->is_number_integer()) return Bad(absl::StrCat(key, " is not an integer"));
  return std::optional<int64_t>(it->get<int64_t>());
}

absl::StatusOr<std::optional<bool>> OptBool(const json& md, const std::string& key) {
  auto it = md.find(key);
  if (it == md.end()) return std::optional<bool>();
  if (!it->is_boolean()) return Bad(absl::StrCat(key, " is not a boolean"));
  return std::optional<bool>(it->get<bool>());
}

// Text fragments and user-defined tokens, as llama.cpp's tokenizer_st_partition
// with parse_special=false (control and unknown tokens stay plain text;
// user-defined tokens are matched, longest first).
struct Fragment {
  int32_t token = -1;  // >= 0: a matched user-defined token
  std::string_view text;
};

std::vector<Fragment> Partition(std::string_view text, const std::vector<int32_t>& user_tokens,
                                const std::vector<std::string>& vocab) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  for (int32_t id : user_tokens) {
    const std::string& t = vocab[id];
    if (t.empty()) continue;
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = 0;
      while (true) {
        const size_t m = f.text.find(t, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back({-1, f.text.substr(pos, m - pos)});
        next.push_back({id, {}});
        pos = m + t.size();
      }
      if (pos < f.text.size()) next.push_back({-1, f.text.substr(pos)});
    }
    frags = std::move(next);
  }
  return frags;
}

struct Common {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<int32_t> user_tokens;  // sorted longest first
  std::optional<int32_t> bos, eos;
  bool add_bos = false, add_eos = false;
};

class GgufBpeTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const override {
    if (!internal::IsValidUtf8(text)) {
      return absl::InvalidArgumentError("input text is not valid UTF-8");
    }
    std::vector<int32_t> ids;
    if (add_special && c_.add_bos) ids.push_back(*c_.bos);
    for (const Fragment& f : Partition(text, c_.user_tokens, c_.tokens)) {
      if (f.token >= 0) {
        ids.push_back(f.token);
        continue;
      }
      std::vector<std::string> pieces{std::string(f.text)};
      for (const auto& re : regexes_) {
        std::vector<std::string> next;
        for (const std::string& p : pieces) {
          LASERD_ASSIGN_OR_RETURN(const auto m, re->FindAll(p));
          for (auto& s :
               internal::SplitByMatches(p, m, internal::SplitBehavior::kIsolated, false)) {
            next.push_back(std::move(s));
          }
        }
        pieces = std::move(next);
      }
      for (const std::string& p : pieces) {
        LASERD_RETURN_IF_ERROR(model_.TokenizeWord(internal::ByteLevelEncode(p), &ids));
      }
    }
    if (add_special && c_.add_eos) ids.push_back(*c_.eos);
    return ids;
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || id >= static_cast<int32_t>(c_.tokens.size())) continue;
      out += internal::ByteLevelDecode(c_.tokens[id]);
    }
    return out;
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(c_.tokens.size()); }
  bool adds_bos() const override { return c_.add_bos; }
  std::optional<int32_t> bos_id() const override { return c_.bos; }
  std::optional<int32_t> eos_id() const override { return c_.eos; }

  Common c_;
  BpeModel model_;
  std::vector<std::shared_ptr<const Regex>> regexes_;
};

class GgufSpmTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special) const override {
    if (!internal::IsValidUtf8(text)) {
      return absl::InvalidArgumentError("input text is not valid UTF-8");
    }
    std::vector<int32_t> ids;
    if (add_special && c_.add_bos) ids.push_back(*c_.bos);
    bool prev_special = true;
    for (const Fragment& f : Partition(text, c_.user_tokens, c_.tokens)) {
      if (f.token >= 0) {
        ids.push_back(f.token);
        prev_special = true;
        continue;
      }
      std::string t;
      if (add_space_prefix_ && prev_special) t = " ";
      t.append(f.text);
      std::string escaped;
      for (char ch : t) {
        if (ch == ' ') {
          escaped += "\xE2\x96\x81";
        } else {
          escaped.push_back(ch);
        }
      }
      LASERD_RETURN_IF_ERROR(TokenizeSpm(escaped, &ids));
      prev_special = false;
    }
    if (add_special && c_.add_eos) ids.push_back(*c_.eos);
    return ids;
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    bool first = true;
    for (int32_t id : ids) {
      if (id < 0 || id >= static_cast<int32_t>(c_.tokens.size())) continue;
      const std::string& t = c_.tokens[id];
      std::string piece;
      if (c_.types[id] == kTypeByte && t.size() == 6 && t.compare(0, 3, "<0x") == 0 &&
          std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4]))) {
        piece.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
      } else if (c_.types[id] == kTypeNormal || c_.types[id] == kTypeUnused) {
        size_t p = 0;
        while (p < t.size()) {
          if (t.compare(p, 3, "\xE2\x96\x81") == 0) {
            piece.push_back(' ');
            p += 3;
          } else {
            piece.push_back(t[p++]);
          }
        }
      } else {
        piece = t;
      }
      if (first && add_space_prefix_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
      first = false;
      out += piece;
    }
    return out;
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(c_.tokens.size()); }
  bool adds_bos() const override { return c_.add_bos; }
  std::optional<int32_t> bos_id() const override { return c_.bos; }
  std::optional<int32_t> eos_id() const override { return c_.eos; }

  // llama.cpp llm_tokenizer_spm_session::tokenize.
  absl::Status TokenizeSpm(const std::string& text, std::vector<int32_t>* out) const {
    struct Sym {
      size_t off, n;
      int prev, next;
    };
    std::vector<Sym> syms;
    size_t offs = 0;
    while (offs < text.size()) {
      size_t len = std::min<size_t>(internal::Utf8Len(text[offs]), text.size() - offs);
      const int idx = static_cast<int>(syms.size());
      syms.push_back({offs, len, idx - 1, offs + len == text.size() ? -1 : idx + 1});
      offs += len;
    }
    struct Bigram {
      int left, right;
      float score;
      size_t size;
      bool operator<(const Bigram& o) const {  // top: highest score, then leftmost
        return score < o.score || (score == o.score && left > o.left);
      }
    };
    std::priority_queue<Bigram> queue;
    auto try_add = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      const std::string s = text.substr(syms[left].off, syms[left].n + syms[right].n);
      auto it = token_to_id_.find(s);
      if (it == token_to_id_.end()) return;
      queue.push({left, right, scores_[it->second], s.size()});
    };
    for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Sym& l = syms[b.left];
      Sym& r = syms[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    // Every merged symbol is a vocabulary token (pairs are queued only when their
    // concatenation is one), so a final symbol is either a token or a single
    // character that falls back to its bytes (llama.cpp's resegment()).
    auto reseg = [&](const Sym& s) -> absl::Status {
      const std::string t = text.substr(s.off, s.n);
      auto it = token_to_id_.find(t);
      if (it != token_to_id_.end()) {
        out->push_back(it->second);
        return absl::OkStatus();
      }
      for (unsigned char ch : t) {
        auto b = token_to_id_.find(absl::StrFormat("<0x%02X>", ch));
        if (b == token_to_id_.end()) b = token_to_id_.find(std::string(1, static_cast<char>(ch)));
        if (b == token_to_id_.end()) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "GGUF SPM vocabulary has no byte token <0x%02X> for byte fallback", ch));
        }
        out->push_back(b->second);
      }
      return absl::OkStatus();
    };
    if (syms.empty()) return absl::OkStatus();
    for (int i = 0; i != -1; i = syms[i].next) LASERD_RETURN_IF_ERROR(reseg(syms[i]));
    return absl::OkStatus();
  }

  Common c_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<float> scores_;
  bool add_space_prefix_ = true;
};

absl::Status LoadCommon(const json& md, Common* c, std::optional<int64_t> default_bos,
                        std::optional<int64_t> default_eos, bool default_add_bos) {
  LASERD_ASSIGN_OR_RETURN(c->tokens, StringArray(md, "tokenizer.ggml.tokens", true));
  if (c->tokens.empty()) return Bad("tokenizer.ggml.tokens is empty");
  if (c->tokens.size() > (1u << 24)) return Bad("tokenizer.ggml.tokens has too many entries");
  for (size_t i = 0; i < c->tokens.size(); ++i) {
    if (!internal::IsValidUtf8(c->tokens[i])) {
      return Bad(absl::StrCat("tokenizer.ggml.tokens[", i, "] is not valid UTF-8"));
    }
  }
  c->types.assign(c->tokens.size(), kTypeNormal);
  if (auto it = md.find("tokenizer.ggml.token_type"); it != md.end()) {
    if (!it->is_array()) return Bad("tokenizer.ggml.token_type is not an array");
    if (it->size() < c->tokens.size()) {
      return Bad(absl::StrCat("tokenizer.ggml.token_type has ", it->size(), " entries for ",
                              c->tokens.size(), " tokens"));
    }
    for (size_t i = 0; i < c->tokens.size(); ++i) {
      if (!(*it)[i].is_number_integer()) {
        return Bad(absl::StrCat("tokenizer.ggml.token_type[", i, "] is not an integer"));
      }
      c->types[i] = (*it)[i].get<int32_t>();
    }
  }
  for (size_t i = 0; i < c->tokens.size(); ++i) {
    if (c->types[i] == kTypeUserDefined) c->user_tokens.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(c->user_tokens.begin(), c->user_tokens.end(),
                   [&](int32_t a, int32_t b) { return c->tokens[a].size() > c->tokens[b].size(); });
  const int64_t n = static_cast<int64_t>(c->tokens.size());
  auto id_or = [&](const char* key,
                   std::optional<int64_t> dflt) -> absl::StatusOr<std::optional<int32_t>> {
    LASERD_ASSIGN_OR_RETURN(const std::optional<int64_t> v, OptInt(md, key));
    std::optional<int64_t> id = v.has_value() ? v : dflt;
    if (v.has_value() && (*v < 0 || *v >= n)) {
      return Bad(absl::StrCat(key, " = ", *v, " is outside the vocabulary of ", n, " tokens"));
    }
    if (!id.has_value() || *id < 0 || *id >= n) return std::optional<int32_t>();
    return std::optional<int32_t>(static_cast<int32_t>(*id));
  };
  LASERD_ASSIGN_OR_RETURN(c->bos, id_or("tokenizer.ggml.bos_token_id", default_bos));
  LASERD_ASSIGN_OR_RETURN(c->eos, id_or("tokenizer.ggml.eos_token_id", default_eos));
  LASERD_ASSIGN_OR_RETURN(const std::optional<bool> ab,
                          OptBool(md, "tokenizer.ggml.add_bos_token"));
  LASERD_ASSIGN_OR_RETURN(const std::optional<bool> ae,
                          OptBool(md, "tokenizer.ggml.add_eos_token"));
  c->add_bos = ab.value_or(default_add_bos);
  c->add_eos = ae.value_or(false);
  if (c->add_bos && !c->bos.has_value()) return Bad("add_bos_token is set but there is no BOS id");
  if (c->add_eos && !c->eos.has_value()) return Bad("add_eos_token is set but there is no EOS id");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBpe(const json& md) {
  auto tok = std::make_unique<GgufBpeTokenizer>();
  std::string pre;
  if (auto it = md.find("tokenizer.ggml.pre"); it != md.end()) {
    if (!it->is_string()) return Bad("tokenizer.ggml.pre is not a string");
    pre = it->get<std::string>();
  }
  LASERD_ASSIGN_OR_RETURN(const internal::GgufPreTokenizer p, internal::GgufPreTokenizerFor(pre));
  // llama.cpp's defaults for BPE vocabularies: BOS = EOS = 11 unless given.
  LASERD_RETURN_IF_ERROR(LoadCommon(md, &tok->c_, 11, 11, p.add_bos_default));
  LASERD_ASSIGN_OR_RETURN(const std::vector<std::string> merges_s,
                          StringArray(md, "tokenizer.ggml.merges", true));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_s.size());
  for (const std::string& m : merges_s) {
    // llama.cpp splits at the first space after position 0.
    const size_t pos = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (pos == std::string::npos) {
      merges.emplace_back(std::string(), std::string());
    } else {
      merges.emplace_back(m.substr(0, pos), m.substr(pos + 1));
    }
  }
  BpeModel::Options opt;
  opt.ignore_merges = p.ignore_merges;
  auto model = BpeModel::Create(tok->c_.tokens, merges, opt, /*skip_bad_merges=*/true,
                                /*first_merge_wins=*/true);
  if (!model.ok()) return Bad(std::string(model.status().message()));
  tok->model_ = std::move(*model);
  for (const std::string& r : p.regexes) {
    LASERD_ASSIGN_OR_RETURN(auto re, Regex::Compile(r));
    tok->regexes_.push_back(std::move(re));
  }
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSpm(const json& md) {
  auto tok = std::make_unique<GgufSpmTokenizer>();
  LASERD_RETURN_IF_ERROR(LoadCommon(md, &tok->c_, 1, 2, /*default_add_bos=*/true));
  LASERD_ASSIGN_OR_RETURN(const std::optional<bool> asp,
                          OptBool(md, "tokenizer.ggml.add_space_prefix"));
  tok->add_space_prefix_ = asp.value_or(true);
  const size_t n = tok->c_.tokens.size();
  tok->scores_.assign(n, 0.0f);
  if (auto it = md.find("tokenizer.ggml.scores"); it != md.end()) {
    if (!it->is_array() || it->size() < n) {
      return Bad("tokenizer.ggml.scores is not an array with one score per token");
    }
    for (size_t i = 0; i < n; ++i) {
      if (!(*it)[i].is_number())
        return Bad(absl::StrCat("tokenizer.ggml.scores[", i, "] is not a number"));
      tok->scores_[i] = (*it)[i].get<float>();
    }
  }
  tok->token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) tok->token_to_id_[tok->c_.tokens[i]] = static_cast<int32_t>(i);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const nlohmann::json& metadata) {
  if (!metadata.is_object()) return Bad("metadata is not an object");
  auto it = metadata.find("tokenizer.ggml.model");
  if (it == metadata.end()) return Bad("missing tokenizer.ggml.model");
  if (!it->is_string()) return Bad("tokenizer.ggml.model is not a string");
  const std::string model = it->get<std::string>();
  try {
    if (model == "gpt2") return LoadBpe(metadata);
    if (model == "llama") return LoadSpm(metadata);
  } catch (const std::exception& e) {
    return Bad(e.what());
  }
  return absl::UnimplementedError(absl::StrCat("GGUF tokenizer.ggml.model=\"", model,
                                               "\" is not supported (supported: gpt2, llama)"));
}

}  // namespace laserd::tokenizer
