// tokenizer.json pre-tokenizers (pre_tokenizers.h), with the `tokenizers` crate's semantics.
#include "engine/tokenizer/pre_tokenizers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/hf_fields.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {
namespace {

using json = nlohmann::json;

// Splits every word by a regex's matches.
absl::Status SplitWords(std::vector<Word>* words, const Regex* re, SplitBehavior behavior,
                        bool invert) {
  std::vector<Word> out;
  for (Word& w : *words) {
    std::vector<std::pair<size_t, size_t>> matches;
    if (re != nullptr) {
      LASERD_ASSIGN_OR_RETURN(matches, re->FindAll(w.text));
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
    for (const auto& p : parts_) LASERD_RETURN_IF_ERROR(p->Apply(words));
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
      LASERD_RETURN_IF_ERROR(SplitWords(words, re_.get(), SplitBehavior::kIsolated, false));
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
  LASERD_ASSIGN_OR_RETURN(auto re, Regex::Compile(pattern));
  return std::unique_ptr<PreTokenizer>(new RegexSplitPre(re, b, invert));
}

constexpr const char* kAsciiPunct = "!-/:-@\\[-`{-~";

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const json& j, int depth) {
  const std::string where = "pre_tokenizer";
  LASERD_ASSIGN_OR_RETURN(const std::string type, ComponentType(j, where, depth));
  if (type == "Sequence") {
    LASERD_ASSIGN_OR_RETURN(auto parts, ParseSequence<PreTokenizer>(j, "pretokenizers", where,
                                                                    depth, ParsePreTokenizer));
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  if (type == "ByteLevel") {
    LASERD_ASSIGN_OR_RETURN(auto aps, Bool(j, "add_prefix_space", where, true));
    LASERD_ASSIGN_OR_RETURN(auto use_regex, Bool(j, "use_regex", where, true));
    std::shared_ptr<const Regex> re;
    if (use_regex) {
      LASERD_ASSIGN_OR_RETURN(re, Regex::Compile(kByteLevelRegex));
    }
    return std::unique_ptr<PreTokenizer>(new ByteLevelPre(aps, re));
  }
  if (type == "Split") {
    LASERD_ASSIGN_OR_RETURN(auto re, ParsePattern(j, "Split pre_tokenizer"));
    LASERD_ASSIGN_OR_RETURN(auto bname, Str(j, "behavior", where));
    LASERD_ASSIGN_OR_RETURN(auto behavior, ParseSplitBehavior(bname));
    LASERD_ASSIGN_OR_RETURN(auto invert, Bool(j, "invert", where, false));
    return std::unique_ptr<PreTokenizer>(new RegexSplitPre(re, behavior, invert));
  }
  if (type == "Digits") {
    LASERD_ASSIGN_OR_RETURN(auto individual, Bool(j, "individual_digits", where, false));
    return MakeRegexPre(individual ? "\\p{N}" : "\\p{N}+", SplitBehavior::kIsolated, false);
  }
  if (type == "Metaspace") {
    LASERD_ASSIGN_OR_RETURN(auto rep, Str(j, "replacement", where, std::string("\xE2\x96\x81")));
    size_t p = 0;
    if (rep.empty() || !IsValidUtf8(rep) || (NextCodepoint(rep, &p), p != rep.size())) {
      return Bad(where, "Metaspace replacement must be one character");
    }
    PrependScheme scheme = PrependScheme::kAlways;
    if (j.contains("prepend_scheme")) {
      LASERD_ASSIGN_OR_RETURN(auto s, Str(j, "prepend_scheme", where));
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
      LASERD_ASSIGN_OR_RETURN(auto aps, Bool(j, "add_prefix_space", where, true));
      scheme = aps ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    LASERD_ASSIGN_OR_RETURN(auto split, Bool(j, "split", where, true));
    LASERD_ASSIGN_OR_RETURN(auto rep_re, Regex::Compile(Regex::Escape(rep)));
    return std::unique_ptr<PreTokenizer>(new MetaspacePre(rep, scheme, split, rep_re));
  }
  if (type == "Whitespace") return MakeRegexPre("\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, true);
  if (type == "WhitespaceSplit") return MakeRegexPre("\\s", SplitBehavior::kRemoved, false);
  if (type == "Punctuation") {
    LASERD_ASSIGN_OR_RETURN(auto bname, Str(j, "behavior", where, std::string("Isolated")));
    LASERD_ASSIGN_OR_RETURN(auto behavior, ParseSplitBehavior(bname));
    return MakeRegexPre(absl::StrCat("[\\p{P}", kAsciiPunct, "]"), behavior, false);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    LASERD_ASSIGN_OR_RETURN(auto a, MakeRegexPre("\\s", SplitBehavior::kRemoved, false));
    LASERD_ASSIGN_OR_RETURN(auto b, MakeRegexPre(absl::StrCat("[\\p{P}", kAsciiPunct, "]"),
                                                 SplitBehavior::kIsolated, false));
    parts.push_back(std::move(a));
    parts.push_back(std::move(b));
    return std::unique_ptr<PreTokenizer>(new SequencePre(std::move(parts)));
  }
  if (type == "CharDelimiterSplit") {
    LASERD_ASSIGN_OR_RETURN(auto d, Str(j, "delimiter", where));
    return MakeRegexPre(Regex::Escape(d), SplitBehavior::kRemoved, false);
  }
  return absl::UnimplementedError(absl::StrCat("unsupported pre_tokenizer type \"", type, "\""));
}

}  // namespace laserd::tokenizer::internal
