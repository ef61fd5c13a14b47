#include "engine/eval/match.h"

#include <regex>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/eval/example.h"
#include "engine/tokenizer/internal.h"
#include "unicode/utf8.h"

namespace laserd::eval {

const char* MatchRuleName(MatchRule r) {
  switch (r) {
    case MatchRule::kGreedy:
      return "greedy";
    case MatchRule::kTop1Decoded:
      return "top1_decoded";
    case MatchRule::kExact:
      return "exact";
    case MatchRule::kPrefix:
      return "prefix";
    case MatchRule::kContains:
      return "contains";
  }
  return "greedy";
}

absl::StatusOr<MatchRule> ParseMatchRule(std::string_view name) {
  for (MatchRule r : {MatchRule::kGreedy, MatchRule::kTop1Decoded, MatchRule::kExact,
                      MatchRule::kPrefix, MatchRule::kContains}) {
    if (name == MatchRuleName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("match rule '", std::string(name),
                   "' is not one of greedy, top1_decoded, exact, prefix, contains"));
}

bool IsGenerationRule(MatchRule r) {
  return r == MatchRule::kExact || r == MatchRule::kPrefix || r == MatchRule::kContains;
}

std::string_view PyStrip(std::string_view s) {
  // Forward over leading spaces.
  size_t begin = 0;
  while (begin < s.size()) {
    int32_t i = static_cast<int32_t>(begin);
    UChar32 c;
    U8_NEXT(s.data(), i, static_cast<int32_t>(s.size()), c);
    if (c < 0 || !IsPythonSpace(static_cast<char32_t>(c))) break;
    begin = static_cast<size_t>(i);
  }
  size_t end = s.size();
  while (end > begin) {
    int32_t i = static_cast<int32_t>(end);
    UChar32 c;
    U8_PREV(s.data(), static_cast<int32_t>(begin), i, c);
    if (c < 0 || !IsPythonSpace(static_cast<char32_t>(c))) break;
    end = static_cast<size_t>(i);
  }
  return s.substr(begin, end - begin);
}

std::string PyLower(std::string_view s) { return tokenizer::internal::ToLowerUnicode(s); }

std::string NormalizeAnswer(std::string_view s) { return PyLower(PyStrip(s)); }

bool TextMatches(MatchRule rule, const std::string& text, const std::string& answer) {
  switch (rule) {
    case MatchRule::kPrefix:
      return absl::StartsWith(text, answer);
    case MatchRule::kContains:
      return absl::StrContains(text, answer);
    default:
      return text == answer;
  }
}

namespace {

struct Rule {
  std::regex re;
  const char* with;
};

Rule R(const char* re, const char* with, bool icase = false) {
  return {
      std::regex(re, icase ? std::regex::ECMAScript | std::regex::icase : std::regex::ECMAScript),
      with};
}

// NLTK's NLTKWordTokenizer rules, in its order (ASCII word characters).
const std::vector<Rule>& StartingQuotes() {
  static const auto* r = new std::vector<Rule>{
      R("(\xC2\xAB|\xE2\x80\x9C|\xE2\x80\x98|\xE2\x80\x9E|`+)", " $1 "),
      R("^\"", "``"),
      R("(``)", " $1 "),
      R("([ (\\[{<])(\"|'')", "$1 `` "),
      R("(')(?!re|ve|ll|m|t|s|d|n)(\\w)\\b", "$1 $2", /*icase=*/true),
  };
  return *r;
}
const std::vector<Rule>& Punctuation() {
  static const auto* r = new std::vector<Rule>{
      R("([^\\.])(\\.)([\\]\\)}>\"']*)\\s*$", "$1 $2 $3 "),
      R("([:,])([^\\d])", " $1 $2"),
      R("([:,])$", " $1 "),
      R("\\.{2,}", " $& "),
      R("[;@#$%&]", " $& "),
      R("([^\\.])(\\.)([\\]\\)}>\"']*)\\s*$", "$1 $2$3 "),
      R("[?!]", " $& "),
      R("([^'])' ", "$1 ' "),
      R("[*]", " $& "),
      R("[\\]\\[\\(\\)\\{\\}<>]", " $& "),
      R("--", " -- "),
  };
  return *r;
}
const std::vector<Rule>& EndingQuotes() {
  static const auto* r = new std::vector<Rule>{
      R("(\xC2\xBB|\xE2\x80\x9D|\xE2\x80\x99)", " $1 "),
      R("''", " '' "),
      R("\"", " '' "),
      R("([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),
      R("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
  };
  return *r;
}
const std::vector<Rule>& Contractions() {
  static const auto* r = new std::vector<Rule>{
      R("\\b(can)(not)\\b", " $1 $2 ", true), R("\\b(d)('ye)\\b", " $1 $2 ", true),
      R("\\b(gim)(me)\\b", " $1 $2 ", true),  R("\\b(gon)(na)\\b", " $1 $2 ", true),
      R("\\b(got)(ta)\\b", " $1 $2 ", true),  R("\\b(lem)(me)\\b", " $1 $2 ", true),
      R("\\b(more)('n)\\b", " $1 $2 ", true), R("\\b(wan)(na)(?=\\s)", " $1 $2 ", true),
      R("('t)(is)\\b", " $1 $2 ", true),      R("('t)(was)\\b", " $1 $2 ", true),
  };
  return *r;
}

std::string Apply(const std::vector<Rule>& rules, std::string text) {
  for (const Rule& r : rules) text = std::regex_replace(text, r.re, r.with);
  return text;
}

}  // namespace

std::vector<std::string> WordTokens(std::string_view text) {
  std::string t = Apply(StartingQuotes(), std::string(text));
  t = Apply(Punctuation(), std::move(t));
  t = " " + t + " ";
  t = Apply(EndingQuotes(), std::move(t));
  t = Apply(Contractions(), std::move(t));
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(t, absl::ByAnyChar(" \t\n\r\f\v"), absl::SkipEmpty())) {
    out.emplace_back(w);
  }
  return out;
}

F1PR WordF1(std::string_view generation, std::string_view answer) {
  const std::vector<std::string> g = WordTokens(NormalizeAnswer(generation));
  const std::vector<std::string> a = WordTokens(NormalizeAnswer(answer));
  const std::set<std::string> gs(g.begin(), g.end()), as(a.begin(), a.end());
  size_t both = 0;
  for (const std::string& w : gs) both += as.count(w);
  F1PR r;
  r.precision = static_cast<double>(both) / static_cast<double>(std::max<size_t>(1, gs.size()));
  r.recall = static_cast<double>(both) / static_cast<double>(std::max<size_t>(1, as.size()));
  r.f1 = 2 * r.precision * r.recall / std::max(1.0, r.precision + r.recall);
  return r;
}

}  // namespace laserd::eval
