// The answer-match rules of engine/eval/match.h applied to scored examples:
// after teacher-forced scoring (which still gives every example its
// log-probability, top-k and greedy_ids), a generation rule generates a
// greedy continuation of each completion example's prompt and decides
// `correct` from the text; top1_decoded decides it from the decoded argmax at
// the first answer position. Definitions in docs/metrics.md.
#ifndef LASERD_ENGINE_EVAL_GENERATION_H_
#define LASERD_ENGINE_EVAL_GENERATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/eval/dataset.h"
#include "engine/eval/match.h"
#include "engine/eval/metrics.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace laserd::eval {

// Accepted range of max_new_tokens.
inline constexpr int64_t kMinNewTokens = 1;
inline constexpr int64_t kMaxNewTokens = 1024;
inline constexpr int64_t kDefaultNewTokens = 16;

struct MatchOptions {
  MatchRule rule = MatchRule::kGreedy;
  // Generation rules only:
  int64_t max_new_tokens = kDefaultNewTokens;  // [kMinNewTokens, kMaxNewTokens]
  // A continuation stops once its decoded text contains one of these (the
  // text compared ends before it); at most 16, each non-empty.
  std::vector<std::string> stop_strings;
  // Compare prompt + continuation instead of the continuation alone (the
  // paper's code decoded the whole generate() output, prompt included, so a
  // prompt that contains the answer counted as a match). Default off.
  bool match_prompt = false;
  // Token budget of one generation batch (prompt + max_new_tokens per
  // sequence, packed longest first); <= 0: 4096.
  int64_t batch_tokens = 4096;
  bool share_prefixes = true;
};

// INVALID_ARGUMENT naming the offending field (max_new_tokens, stop_strings).
absl::Status ValidateMatchOptions(const MatchOptions& opts);

// Decides results[i].correct for every completion example by opts.rule
// (kGreedy: nothing changes) and fills the generation fields of ExampleResult.
// `examples` are the dataset's examples in the order of `results`. A
// generation rule on a choice example is INVALID_ARGUMENT naming its line.
absl::Status ApplyMatchRule(model::Model& model, const tokenizer::Tokenizer& tok,
                            const std::vector<Example>& examples, const MatchOptions& opts,
                            std::vector<ExampleResult>* results);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_GENERATION_H_
