// Tokenization of an example by the rule of EleutherAI's lm-evaluation-harness,
// so that scores are comparable with it:
//
//   1. If the prompt ends in whitespace (Python's str.isspace), that trailing
//      whitespace moves to the front of the answer.
//   2. whole = Encode(prompt + answer), ctx = Encode(prompt), both with
//      add_special = true (BOS exactly when the tokenizer adds one by default).
//   3. The answer tokens are whole[len(ctx):] and the model input is
//      ctx + whole[len(ctx):] (lm-eval's context_enc + continuation_enc). When
//      whole does not start with ctx (a token merges across the boundary), that
//      is still the rule; the sequence is flagged `boundary_mismatch`.
//
// An answer with no tokens past the prompt, a prompt with no tokens (nothing to
// predict the first answer token from), and prompt + answer longer than the
// model's context are INVALID_ARGUMENT naming the example's line. Never truncated.
#ifndef LASERD_ENGINE_EVAL_EXAMPLE_H_
#define LASERD_ENGINE_EVAL_EXAMPLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/dataset.h"
#include "engine/tokenizer/tokenizer.h"

namespace laserd::eval {

// One teacher-forced sequence: tokens[..answer_start) = Encode(prompt),
// tokens[answer_start..] = the answer tokens.
struct TokenizedSequence {
  std::vector<int32_t> tokens;
  int64_t answer_start = 0;        // = number of prompt tokens (BOS included), >= 1
  bool boundary_mismatch = false;  // Encode(prompt + answer) does not start with Encode(prompt)
  int64_t answer_tokens() const { return static_cast<int64_t>(tokens.size()) - answer_start; }
};

// A completion example has one sequence; a choice example one per choice, in
// the order of its choices.
struct TokenizedExample {
  int64_t index = 0;  // Example::index
  int64_t line = 0;   // Example::line
  ExampleKind kind = ExampleKind::kCompletion;
  int64_t label = -1;  // choice examples
  std::vector<TokenizedSequence> seqs;
};

// Python's str.isspace() for one code point: bidirectional class WS, B or S,
// or category Zs.
bool IsPythonSpace(char32_t c);

// Step 1: (prompt, answer) with the prompt's trailing whitespace moved to the
// front of the answer.
std::pair<std::string, std::string> MoveTrailingWhitespace(std::string_view prompt,
                                                           std::string_view answer);

// Steps 2-3 for one (prompt, answer) pair. `max_tokens` <= 0: no limit.
// `what` names the example in messages ("line 7", "line 7, choice 1").
absl::StatusOr<TokenizedSequence> TokenizePair(const tokenizer::Tokenizer& tok,
                                               std::string_view prompt, std::string_view answer,
                                               int64_t max_tokens, std::string_view what);

absl::StatusOr<TokenizedExample> TokenizeExample(const tokenizer::Tokenizer& tok, const Example& ex,
                                                 int64_t max_tokens);
// Every example of `ds`, in order; the first error is returned, naming its line.
absl::StatusOr<std::vector<TokenizedExample>> TokenizeDataset(const tokenizer::Tokenizer& tok,
                                                              const Dataset& ds,
                                                              int64_t max_tokens);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_EXAMPLE_H_
