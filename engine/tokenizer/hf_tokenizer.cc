// Hugging Face tokenizer.json (BPE models): added tokens, normalizers,
// pre-tokenizers, BPE model, post-processor and decoder, following the
// `tokenizers` crate's semantics.
#include <unicode/uchar.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer {
namespace internal {
namespace {

using json = nlohmann::json;

absl::Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Typed accessors: absent keys give the default, wrong types an error.
absl::StatusOr<std::string> Str(const json& o, const char* key, const std::string& where,
                                std::optional<std::string> dflt = std::nullopt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (dflt.has_value()) return *dflt;
    return Bad(where, absl::StrCat("missing string field \"", key, "\""));
  }
  if (!it->is_string()) return Bad(where, absl::StrCat("field \"", key, "\" is not a string"));
  return it->get<std::string>();
}

absl::StatusOr<bool> Bool(const json& o, const char* key, const std::string& where, bool dflt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return Bad(where, absl::StrCat("field \"", key, "\" is not a boolean"));
  return it->get<bool>();
}

absl::StatusOr<int64_t> Int(const json& o, const char* key, const std::string& where,
                            int64_t dflt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_number_integer()) {
    return Bad(where, absl::StrCat("field \"", key, "\" is not an integer"));
  }
  return it->get<int64_t>();
}

#define ASSIGN_OR_RETURN_TOK(lhs, expr)         \
  auto lhs##_or = (expr);                       \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = std::move(*lhs##_or)

// A "pattern" field: {"String": "..."} (literal) or {"Regex": "..."}.
absl::StatusOr<std::shared_ptr<const Regex>> ParsePattern(const json& o, const std::string& where) {
  auto it = o.find("pattern");
  if (it == o.end() || !it->is_object()) return Bad(where, "missing object field \"pattern\"");
  if (auto s = it->find("String"); s != it->end() && s->is_string()) {
    const std::string lit = s->get<std::string>();
    if (lit.empty()) return std::shared_ptr<const Regex>();  // matches nothing
    return Regex::Compile(Regex::Escape(lit));
  }
  if (auto r = it->find("Regex"); r != it->end() && r->is_string()) {
    auto re = Regex::Compile(r->get<std::string>());
    if (!re.ok()) return Bad(where, std::string(re.status().message()));
    return re;
  }
  return Bad(where, "\"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

absl::StatusOr<std::string> ReplaceAll(std::string_view s, const Regex* re,
                                       const std::string& content) {
  if (re == nullptr) return std::string(s);
  ASSIGN_OR_RETURN_TOK(matches, re->FindAll(s));
  std::string out;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    out.append(s.substr(prev, b - prev));
    out += content;
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

// ------------------------------------------------------------ normalizers ---

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual absl::StatusOr<std::string> Apply(std::string s) const = 0;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    for (const auto& p : parts_) {
      ASSIGN_OR_RETURN_TOK(r, p->Apply(std::move(s)));
      s = std::move(r);
    }
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    if (s.empty()) return s;  // HF prepends only to non-empty strings
    return prepend_ + s;
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::shared_ptr<const Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    return ReplaceAll(s, re_.get(), content_);
  }

 private:
  std::shared_ptr<const Regex> re_;
  std::string content_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormForm f) : form_(f) {}
  absl::StatusOr<std::string> Apply(std::string s) const override { return Normalize(s, form_); }

 private:
  NormForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  absl::StatusOr<std::string> Apply(std::string s) const override { return ToLowerUnicode(s); }
};

class StripAccentsNormalizer : public Normalizer {
 public:
  absl::StatusOr<std::string> Apply(std::string s) const override { return StripMarks(s); }
};

bool IsWhiteSpace(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t p = b;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        b = p;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        e = start;
      }
    }
    return s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const json& j, int depth);

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const json& j, int depth) {
  const std::string where = "normalizer";
  if (depth > 32) return Bad(where, "nesting too deep");
  if (!j.is_object()) return Bad(where, "not an object");
  ASSIGN_OR_RETURN_TOK(type, Str(j, "type", where));
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) return Bad(where, "Sequence without \"normalizers\"");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& e : *it) {
      ASSIGN_OR_RETURN_TOK(p, ParseNormalizer(e, depth + 1));
      parts.push_back(std::move(p));
    }
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(parts)));
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN_TOK(p, Str(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(p));
  }
  if (type == "Replace") {
    ASSIGN_OR_RETURN_TOK(re, ParsePattern(j, "Replace normalizer"));
    ASSIGN_OR_RETURN_TOK(content, Str(j, "content", where));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer(re, content));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFC));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFD));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFKC));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFKD));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccentsNormalizer());
  if (type == "Strip") {
    ASSIGN_OR_RETURN_TOK(l, Bool(j, "strip_left", where, true));
    ASSIGN_OR_RETURN_TOK(r, Bool(j, "strip_right", where, true));
    return std::unique_ptr<Normalizer>(new StripNormalizer(l, r));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported normalizer type \"", type, "\""));
}

// --------------------------------------------------------- pre-tokenizers ---

struct Word {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual absl::Status Apply(std::vector<Word>* words) const = 0;
};

// Splits every word by a regex's matches.
absl::Status SplitWords(std::vector<Word>* words, const Regex* re, SplitBehavior behavior,
                        bool invert) {
  std::vector<Word> out;
  for (Word& w : *words) {
    std::vector<std::pair<size_t, size_t>> matches;
    if (re != nullptr) {
      ASSIGN_OR_RETURN_TOK(m, re->FindAll(w.text));
      matches = std::move(m);
    }
    bool first = true;
    for (std::string& piece : SplitByMatches(w.text, matches, behavior, invert)) {
      out.push_back({std::move(piece), w.at_start && first});
      first = false;
    }
  }
  *words = std::move(out);
  return absl::OkStatus();
}

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> p) : parts_(std::move(p)) {}
  absl::Status Apply(std::vector<Word>* words) const override {
    for (const auto& p : parts_) LASERD_RETURN_IF_ERROR_TOK(p->Apply(words));
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class RegexSplitPre : public PreTokenizer {
 public:
  RegexSplitPre(std::shared_ptr<const Regex> re, SplitBehavior b, bool invert)
      : re_(std::move(re)), behavior_(b), invert_(invert) {}
  absl::Status Apply(std::vector<Word>* words) const override {
    return SplitWords(words, re_.get(), behavior_, invert_);
  }

 private:
  std::shared_ptr<const Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

constexpr const char* kByteLevelRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, std::shared_ptr<const Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  absl::Status Apply(std::vector<Word>* words) const override {
    if (add_prefix_space_) {
      for (Word& w : *words) {
        if (w.text.empty() || w.text[0] != ' ') w.text.insert(w.text.begin(), ' ');
      }
    }
    if (re_ != nullptr) {
      LASERD_RETURN_IF_ERROR_TOK(SplitWords(words, re_.get(), SplitBehavior::kIsolated, false));
    }
    for (Word& w : *words) w.text = ByteLevelEncode(w.text);
    return absl::OkStatus();
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> re_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string rep, PrependScheme scheme, bool split,
               std::shared_ptr<const Regex> rep_re)
      : rep_(std::move(rep)), scheme_(scheme), split_(split), rep_re_(std::move(rep_re)) {}
  absl::Status Apply(std::vector<Word>* words) const override {
    for (Word& w : *words) {
      std::string t;
      for (char c : w.text) {
        if (c == ' ') {
          t += rep_;
        } else {
          t.push_back(c);
        }
      }
      const bool starts = t.compare(0, rep_.size(), rep_) == 0;
      if (!starts &&
          (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && w.at_start))) {
        t = rep_ + t;
      }
      w.text = std::move(t);
    }
    if (split_) return SplitWords(words, rep_re_.get(), SplitBehavior::kMergedWithNext, false);
    return absl::OkStatus();
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
  std::shared_ptr<const Regex> rep_re_;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakeRegexPre(const std::string& pattern,
                                                           SplitBehavior b, bool invert) {
  ASSIGN_OR_RETURN_TOK(re, Regex::Compile(pattern));
  return std::unique_ptr<PreTokenizer>(new RegexSplitPre(re, b, invert));
}

constexpr const char* kAsciiPunct = "!-/:-@\\[-`{-~";

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json& j, int depth) {
  const std::string where = "pre_tokenizer";
  if (depth > 32) return Bad(where, "nesting too deep");
  if (!j.is_object()) return Bad(where, "not an object");
  ASSIGN_OR_RETURN_TOK(type, Str(j, "type", where));
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) return Bad(where, "Sequence without \"pretokenizers\"");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& e : *it) {
      ASSIGN_OR_RETURN_TOK(p, ParsePreTokenizer(e, depth + 1));
      parts.push_back(std::move(p));
    }
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN_TOK(aps, Bool(j, "add_prefix_space", where, true));
    ASSIGN_OR_RETURN_TOK(use_regex, Bool(j, "use_regex", where, true));
    std::shared_ptr<const Regex> re;
    if (use_regex) {
      ASSIGN_OR_RETURN_TOK(r, Regex::Compile(kByteLevelRegex));
      re = r;
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPre(aps, re));
  }
  if (type == "Split") {
    ASSIGN_OR_RETURN_TOK(re, ParsePattern(j, "Split pre_tokenizer"));
    ASSIGN_OR_RETURN_TOK(bname, Str(j, "behavior", where));
    ASSIGN_OR_RETURN_TOK(behavior, ParseSplitBehavior(bname));
    ASSIGN_OR_RETURN_TOK(invert, Bool(j, "invert", where, false));
    return std::unique_ptr<PreTokenizer>(new RegexSplitPre(re, behavior, invert));
  }
  if (type == "Digits") {
    ASSIGN_OR_RETURN_TOK(individual, Bool(j, "individual_digits", where, false));
    return MakeRegexPre(individual ? "\\p{N}" : "\\p{N}+", SplitBehavior::kIsolated, false);
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN_TOK(rep, Str(j, "replacement", where, std::string("\xE2\x96\x81")));
    size_t p = 0;
    if (rep.empty() || !IsValidUtf8(rep) || (NextCodepoint(rep, &p), p != rep.size())) {
      return Bad(where, "Metaspace replacement must be one character");
    }
    PrependScheme scheme = PrependScheme::kAlways;
    if (j.contains("prepend_scheme")) {
      ASSIGN_OR_RETURN_TOK(s, Str(j, "prepend_scheme", where));
      if (s == "always") {
        scheme = PrependScheme::kAlways;
      } else if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else {
        return Bad(where, absl::StrCat("unknown Metaspace prepend_scheme \"", s, "\""));
      }
    } else {
      ASSIGN_OR_RETURN_TOK(aps, Bool(j, "add_prefix_space", where, true));
      scheme = aps ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    ASSIGN_OR_RETURN_TOK(split, Bool(j, "split", where, true));
    ASSIGN_OR_RETURN_TOK(rep_re, Regex::Compile(Regex::Escape(rep)));
    return std::unique_ptr<PreTokenizer>(new MetaspacePre(rep, scheme, split, rep_re));
  }
  if (type == "Whitespace") return MakeRegexPre("\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, true);
  if (type == "WhitespaceSplit") return MakeRegexPre("\\s", SplitBehavior::kRemoved, false);
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN_TOK(bname, Str(j, "behavior", where, std::string("Isolated")));
    ASSIGN_OR_RETURN_TOK(behavior, ParseSplitBehavior(bname));
    return MakeRegexPre(absl::StrCat("[\\p{P}", kAsciiPunct, "]"), behavior, false);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    ASSIGN_OR_RETURN_TOK(a, MakeRegexPre("\\s", SplitBehavior::kRemoved, false));
    ASSIGN_OR_RETURN_TOK(b, MakeRegexPre(absl::StrCat("[\\p{P}", kAsciiPunct, "]"),
                                         SplitBehavior::kIsolated, false));
    parts.push_back(std::move(a));
    parts.push_back(std::move(b));
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  if (type == "CharDelimiterSplit") {
    ASSIGN_OR_RETURN_TOK(d, Str(j, "delimiter", where));
    return MakeRegexPre(Regex::Escape(d), SplitBehavior::kRemoved, false);
  }
  return absl::UnimplementedError(absl::StrCat("unsupported pre_tokenizer type \"", type, "\""));
}

// --------------------------------------------------------------- decoders ---

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> Apply(std::vector<std::string> toks) const = 0;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> p) : parts_(std::move(p)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (const auto& p : parts_) toks = p->Apply(std::move(toks));
    return toks;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::string all;
    for (const auto& t : toks) all += ByteLevelDecode(t);
    return {all};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::shared_ptr<const Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (auto& t : toks) {
      auto r = ReplaceAll(t, re_.get(), content_);
      if (r.ok()) t = std::move(*r);
    }
    return toks;
  }

 private:
  std::shared_ptr<const Regex> re_;
  std::string content_;
};

std::optional<uint8_t> ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') {
    return std::nullopt;
  }
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int h = hex(t[3]), l = hex(t[4]);
  if (h < 0 || l < 0) return std::nullopt;
  return static_cast<uint8_t>(h * 16 + l);
}

class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (nbytes == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < nbytes; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      nbytes = 0;
    };
    for (auto& t : toks) {
      if (auto b = ParseByteToken(t)) {
        bytes.push_back(static_cast<char>(*b));
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::string all;
    for (const auto& t : toks) all += t;
    return {all};
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int64_t start, int64_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (auto& t : toks) {
      size_t b = 0, e = t.size();
      for (int64_t i = 0;
           i < start_ && b + content_.size() <= e && t.compare(b, content_.size(), content_) == 0;
           ++i) {
        b += content_.size();
      }
      for (int64_t i = 0; i < stop_ && e >= b + content_.size() &&
                          t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
    return toks;
  }

 private:
  std::string content_;
  int64_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_(strip_first) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (size_t i = 0; i < toks.size(); ++i) {
      std::string out;
      const std::string& t = toks[i];
      size_t p = 0;
      while (p < t.size()) {
        if (t.compare(p, rep_.size(), rep_) == 0) {
          if (!(i == 0 && strip_)) out.push_back(' ');
          p += rep_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      toks[i] = std::move(out);
    }
    return toks;
  }

 private:
  std::string rep_;
  bool strip_;
};

class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (size_t i = 0; i < toks.size(); ++i) {
      std::string out;
      const std::string& t = toks[i];
      size_t p = 0;
      while (p < t.size()) {
        if (!suffix_.empty() && t.compare(p, suffix_.size(), suffix_) == 0) {
          if (i + 1 != toks.size()) out.push_back(' ');
          p += suffix_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      toks[i] = std::move(out);
    }
    return toks;
  }

 private:
  std::string suffix_;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const json& j, int depth) {
  const std::string where = "decoder";
  if (depth > 32) return Bad(where, "nesting too deep");
  if (!j.is_object()) return Bad(where, "not an object");
  ASSIGN_OR_RETURN_TOK(type, Str(j, "type", where));
  if (type == "Sequence") {
    auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) return Bad(where, "Sequence without \"decoders\"");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& e : *it) {
      ASSIGN_OR_RETURN_TOK(p, ParseDecoder(e, depth + 1));
      parts.push_back(std::move(p));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(parts)));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Replace") {
    ASSIGN_OR_RETURN_TOK(re, ParsePattern(j, "Replace decoder"));
    ASSIGN_OR_RETURN_TOK(content, Str(j, "content", where));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(re, content));
  }
  if (type == "Strip") {
    ASSIGN_OR_RETURN_TOK(content, Str(j, "content", where));
    ASSIGN_OR_RETURN_TOK(start, Int(j, "start", where, 0));
    ASSIGN_OR_RETURN_TOK(stop, Int(j, "stop", where, 0));
    return std::unique_ptr<Decoder>(new StripDecoder(content, start, stop));
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN_TOK(rep, Str(j, "replacement", where, std::string("\xE2\x96\x81")));
    bool strip = true;
    if (j.contains("prepend_scheme")) {
      ASSIGN_OR_RETURN_TOK(s, Str(j, "prepend_scheme", where));
      strip = s != "never";
    } else {
      ASSIGN_OR_RETURN_TOK(aps, Bool(j, "add_prefix_space", where, true));
      strip = aps;
    }
    if (rep.empty()) return Bad(where, "empty Metaspace replacement");
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(rep, strip));
  }
  if (type == "BPEDecoder") {
    ASSIGN_OR_RETURN_TOK(suffix, Str(j, "suffix", where, std::string("</w>")));
    return std::unique_ptr<Decoder>(new BpeSuffixDecoder(suffix));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported decoder type \"", type, "\""));
}

// ------------------------------------------------------------ added tokens --

struct AddedToken {
  int32_t id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

bool IsWordChar(uint32_t cp) {
  // Rust char::is_alphanumeric() || '_'
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return cp == '_' || u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC) ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

uint32_t LastCodepoint(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return NextCodepoint(s, &start);
}

// A set of added tokens matched leftmost-longest, as HF's aho-corasick does.
class AddedMatcher {
 public:
  void Add(const AddedToken* t) {
    if (t->content.empty()) return;
    by_first_[static_cast<unsigned char>(t->content[0])].push_back(t);
  }
  bool empty() const {
    for (const auto& v : by_first_) {
      if (!v.empty()) return false;
    }
    return true;
  }
  void Sort() {
    for (auto& v : by_first_) {
      std::stable_sort(v.begin(), v.end(), [](const AddedToken* a, const AddedToken* b) {
        return a->content.size() > b->content.size();
      });
    }
  }
  // Splits `s` into (token or nullptr, text) pieces, HF find_matches semantics.
  std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> Split(
      std::string_view s) const {
    std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> out;
    size_t start_offset = 0;
    size_t i = 0;
    while (i < s.size()) {
      const AddedToken* hit = nullptr;
      for (const AddedToken* t : by_first_[static_cast<unsigned char>(s[i])]) {
        if (s.compare(i, t->content.size(), t->content) == 0) {
          hit = t;
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + hit->content.size();
      i = stop;
      if (hit->single_word) {
        const bool start_ok = start == 0 || !IsWordChar(LastCodepoint(s.substr(0, start)));
        size_t p = stop;
        const bool stop_ok = stop == s.size() || !IsWordChar(NextCodepoint(s, &p));
        if (!start_ok || !stop_ok) continue;
      }
      if (hit->lstrip) {
        size_t ns = start;
        while (ns > 0) {
          size_t b = ns - 1;
          while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
          size_t p = b;
          if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
          ns = b;
        }
        start = std::max(ns, start_offset);
      }
      if (hit->rstrip) {
        while (stop < s.size()) {
          size_t p = stop;
          if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
          stop = p;
        }
        i = stop;
      }
      if (start_offset < start) out.push_back({nullptr, {start_offset, start}});
      out.push_back({hit, {start, stop}});
      start_offset = stop;
    }
    if (start_offset < s.size()) out.push_back({nullptr, {start_offset, s.size()}});
    return out;
  }

 private:
  std::vector<const AddedToken*> by_first_[256];
};

// ---------------------------------------------------------------- the tokenizer

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
        ASSIGN_OR_RETURN_TOK(n, normalizer_->Apply(std::move(seg)));
        seg = std::move(n);
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
        if (pre_ != nullptr) LASERD_RETURN_IF_ERROR_TOK(pre_->Apply(&words));
        for (const Word& w : words) LASERD_RETURN_IF_ERROR_TOK(model_.TokenizeWord(w.text, &ids));
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

absl::Status ParsePostProcessor(const json& j, const HfTokenizer& tok, std::vector<int32_t>* prefix,
                                std::vector<int32_t>* suffix, int depth) {
  const std::string where = "post_processor";
  if (j.is_null()) return absl::OkStatus();
  if (depth > 32) return Bad(where, "nesting too deep");
  if (!j.is_object()) return Bad(where, "not an object");
  ASSIGN_OR_RETURN_TOK(type, Str(j, "type", where));
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) return Bad(where, "Sequence without \"processors\"");
    for (const auto& p : *it) {
      std::vector<int32_t> pre, suf;
      LASERD_RETURN_IF_ERROR_TOK(ParsePostProcessor(p, tok, &pre, &suf, depth + 1));
      prefix->insert(prefix->begin(), pre.begin(), pre.end());
      suffix->insert(suffix->end(), suf.begin(), suf.end());
    }
    return absl::OkStatus();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto get = [&](const char* key) -> absl::StatusOr<int32_t> {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
        return Bad(where, absl::StrCat(type, " needs \"", key, "\": [token, id]"));
      }
      const int64_t id = (*it)[1].get<int64_t>();
      if (id < 0 || id >= tok.vocab_size_) {
        return Bad(where, absl::StrCat(type, " \"", key, "\" id ", id, " is out of range"));
      }
      return static_cast<int32_t>(id);
    };
    ASSIGN_OR_RETURN_TOK(cls, get("cls"));
    ASSIGN_OR_RETURN_TOK(sep, get("sep"));
    prefix->push_back(cls);
    suffix->push_back(sep);
    return absl::OkStatus();
  }
  if (type == "TemplateProcessing") {
    auto single = j.find("single");
    if (single == j.end() || !single->is_array()) return Bad(where, "template without \"single\"");
    auto specials = j.find("special_tokens");
    bool seen_seq = false;
    for (const auto& item : *single) {
      if (!item.is_object()) return Bad(where, "template item is not an object");
      if (item.contains("Sequence")) {
        if (seen_seq) return Bad(where, "template \"single\" has two sequences");
        seen_seq = true;
        continue;
      }
      auto st = item.find("SpecialToken");
      if (st == item.end() || !st->is_object()) {
        return Bad(where, "template item is neither Sequence nor SpecialToken");
      }
      ASSIGN_OR_RETURN_TOK(name, Str(*st, "id", where));
      std::vector<int32_t> ids;
      const json* spec = nullptr;
      if (specials != j.end() && specials->is_object()) {
        auto s = specials->find(name);
        if (s != specials->end()) spec = &*s;
      }
      if (spec == nullptr) {
        return Bad(where, absl::StrCat("template token \"", name, "\" not in special_tokens"));
      }
      auto ids_it = spec->find("ids");
      if (ids_it == spec->end() || !ids_it->is_array()) {
        return Bad(where, absl::StrCat("special token \"", name, "\" has no ids"));
      }
      for (const auto& v : *ids_it) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.vocab_size_) {
          return Bad(where, absl::StrCat("special token \"", name, "\" has an invalid id"));
        }
        ids.push_back(v.get<int32_t>());
      }
      auto& dst = seen_seq ? *suffix : *prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    if (!seen_seq) return Bad(where, "template \"single\" has no $A sequence");
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("unsupported post_processor type \"", type, "\""));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const json& doc, const json* config) {
  if (!doc.is_object()) return Bad("tokenizer.json", "top level is not an object");
  auto tok = std::make_unique<HfTokenizer>();

  // Model.
  auto mit = doc.find("model");
  if (mit == doc.end() || !mit->is_object()) return Bad("tokenizer.json", "no \"model\" object");
  const json& model = *mit;
  ASSIGN_OR_RETURN_TOK(mtype, Str(model, "type", "model", std::string("BPE")));
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
  ASSIGN_OR_RETURN_TOK(merges, ParseMerges(model.contains("merges") ? model["merges"] : json()));
  BpeModel::Options opt;
  ASSIGN_OR_RETURN_TOK(bf, Bool(model, "byte_fallback", "model", false));
  ASSIGN_OR_RETURN_TOK(fu, Bool(model, "fuse_unk", "model", false));
  ASSIGN_OR_RETURN_TOK(im, Bool(model, "ignore_merges", "model", false));
  ASSIGN_OR_RETURN_TOK(csp, Str(model, "continuing_subword_prefix", "model", std::string()));
  ASSIGN_OR_RETURN_TOK(eow, Str(model, "end_of_word_suffix", "model", std::string()));
  opt.byte_fallback = bf;
  opt.fuse_unk = fu;
  opt.ignore_merges = im;
  opt.continuing_subword_prefix = csp;
  opt.end_of_word_suffix = eow;
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    ASSIGN_OR_RETURN_TOK(unk, Str(model, "unk_token", "model"));
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
  if (auto at = doc.find("added_tokens"); at != doc.end() && !at->is_null()) {
    if (!at->is_array()) return Bad("added_tokens", "not an array");
    for (const auto& e : *at) {
      if (!e.is_object()) return Bad("added_tokens", "entry is not an object");
      AddedToken t;
      ASSIGN_OR_RETURN_TOK(id, Int(e, "id", "added_tokens", -1));
      if (id < 0 || id >= (1 << 21)) return Bad("added_tokens", "missing or invalid \"id\"");
      ASSIGN_OR_RETURN_TOK(content, Str(e, "content", "added_tokens"));
      if (content.empty()) return Bad("added_tokens", "empty \"content\"");
      t.id = static_cast<int32_t>(id);
      t.content = content;
      ASSIGN_OR_RETURN_TOK(sw, Bool(e, "single_word", "added_tokens", false));
      ASSIGN_OR_RETURN_TOK(ls, Bool(e, "lstrip", "added_tokens", false));
      ASSIGN_OR_RETURN_TOK(rs, Bool(e, "rstrip", "added_tokens", false));
      ASSIGN_OR_RETURN_TOK(sp, Bool(e, "special", "added_tokens", false));
      ASSIGN_OR_RETURN_TOK(no, Bool(e, "normalized", "added_tokens", !sp));
      t.single_word = sw;
      t.lstrip = ls;
      t.rstrip = rs;
      t.special = sp;
      t.normalized = no;
      tok->added_.push_back(t);
      tok->vocab_size_ = std::max(tok->vocab_size_, t.id + 1);
    }
  }
  for (const AddedToken& t : tok->added_) {
    tok->added_by_id_[t.id] = t.content;
    if (t.special) continue;  // special tokens are never parsed out of plain text
    (t.normalized ? tok->norm_matcher_ : tok->raw_matcher_).Add(&t);
  }
  tok->raw_matcher_.Sort();
  tok->norm_matcher_.Sort();

  if (auto n = doc.find("normalizer"); n != doc.end() && !n->is_null()) {
    ASSIGN_OR_RETURN_TOK(norm, ParseNormalizer(*n, 0));
    tok->normalizer_ = std::move(norm);
  }
  if (auto p = doc.find("pre_tokenizer"); p != doc.end() && !p->is_null()) {
    ASSIGN_OR_RETURN_TOK(pre, ParsePreTokenizer(*p, 0));
    tok->pre_ = std::move(pre);
  }
  if (auto d = doc.find("decoder"); d != doc.end() && !d->is_null()) {
    ASSIGN_OR_RETURN_TOK(dec, ParseDecoder(*d, 0));
    tok->decoder_ = std::move(dec);
  }
  if (auto pp = doc.find("post_processor"); pp != doc.end()) {
    LASERD_RETURN_IF_ERROR_TOK(ParsePostProcessor(*pp, *tok, &tok->prefix_, &tok->suffix_, 0));
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
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string cfg_path = dir + "/tokenizer_config.json";
  nlohmann::json config;
  bool have_config = false;
  {
    std::ifstream probe(cfg_path);
    if (probe.good()) {
      auto cfg_text = ReadFile(cfg_path);
      if (!cfg_text.ok()) return cfg_text.status();
      config = nlohmann::json::parse(*cfg_text, nullptr, false);
      if (config.is_discarded() || !config.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": not a JSON object"));
      }
      have_config = true;
    }
  }
  return internal::LoadTokenizerJsonString(*text, have_config ? &config : nullptr, path);
}

}  // namespace laserd::tokenizer
