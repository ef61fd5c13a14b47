// Text rules that decide whether a generated (or decoded) answer matches the
// gold answer, and the word-overlap F1 of the LASER paper's code
// (definitions in docs/metrics.md). Pure string functions.
#ifndef LASERD_ENGINE_EVAL_MATCH_H_
#define LASERD_ENGINE_EVAL_MATCH_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::eval {

// How an example counts as correct.
enum class MatchRule {
  // Teacher-forced: the argmax equals the gold token at every answer position
  // (completion), the highest-scoring choice is the label (choice).
  kGreedy,
  // The paper's GPT-J / Phi-1.5 CounterFact rule: the argmax token at the
  // first answer position, decoded, lowercased and stripped, equals the
  // lowercased, stripped answer. No generation.
  kTop1Decoded,
  // Generation rules: greedy generation, then the normalized text (below)
  // equals / starts with / contains the normalized answer.
  kExact,
  kPrefix,
  kContains,  // the paper's generation_match
};
const char* MatchRuleName(MatchRule r);  // greedy, top1_decoded, exact, prefix, contains
// The name, or INVALID_ARGUMENT listing the names.
absl::StatusOr<MatchRule> ParseMatchRule(std::string_view name);
// Whether the rule needs generated text.
bool IsGenerationRule(MatchRule r);

// Python's str.strip(): leading and trailing characters for which
// str.isspace() is true.
std::string_view PyStrip(std::string_view s);
// Python's str.lower() (full Unicode lowercase mapping, through ICU's root
// locale). Invalid UTF-8 bytes become U+FFFD.
std::string PyLower(std::string_view s);
// The paper's normalization: lowercase(strip(s)).
std::string NormalizeAnswer(std::string_view s);

// Applies a text rule (kExact, kPrefix, kContains, kTop1Decoded compares as
// kExact) to already normalized strings.
bool TextMatches(MatchRule rule, const std::string& normalized_text,
                 const std::string& normalized_answer);

// Word tokens as NLTK's word_tokenize splits English text (its Treebank
// rules: punctuation, brackets, quotes, clitics such as 's and n't, and the
// split contractions cannot, gonna, ...), except that the text is not first
// split into sentences (NLTK's punkt model), so a period ending a sentence in
// the middle of the text stays on its word.
std::vector<std::string> WordTokens(std::string_view text);

// The paper's F1PR of a generation against an answer: both normalized, then
// sets of word tokens; precision = |G ∩ A| / max(1, |G|), recall =
// |G ∩ A| / max(1, |A|), f1 = 2·p·r / max(1, p + r) (the paper's formula,
// which is below the harmonic mean when p + r < 1).
struct F1PR {
  double f1 = 0, precision = 0, recall = 0;
};
F1PR WordF1(std::string_view generation, std::string_view answer);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_MATCH_H_
