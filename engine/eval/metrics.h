// Per-example metrics and aggregates (definitions in docs/metrics.md). Pure
// arithmetic over the model's per-position TokenScores; no model calls here.
#ifndef LASERD_ENGINE_EVAL_METRICS_H_
#define LASERD_ENGINE_EVAL_METRICS_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/example.h"
#include "engine/model/model.h"
#include "nlohmann/json.hpp"

namespace laserd::eval {

// The default top-k list of the first answer token.
inline const std::vector<int>& DefaultTopK() {
  static const std::vector<int> k = {1, 5, 10};
  return k;
}
// Parses "1,5,10": positive integers, strictly increasing after sorting, no duplicates.
absl::StatusOr<std::vector<int>> ParseTopK(const std::string& s);

struct ExampleResult {
  int64_t index = 0;
  int64_t line = 0;
  ExampleKind kind = ExampleKind::kCompletion;
  // The gold sequence (the completion's answer, or the labelled choice):
  double logprob = 0;                 // sum of the answer tokens' log-probabilities
  int64_t answer_tokens = 0;          // number of answer tokens
  int64_t prompt_tokens = 0;          // tokens before the answer (BOS included)
  bool greedy_match = false;          // argmax == gold at every answer position
  int64_t first_greater = 0;          // vocabulary entries above the first answer token
  std::vector<bool> topk_hits;        // parallel to the top-k list: first_greater < k
  std::vector<int32_t> answer_ids;    // gold answer token ids
  std::vector<int32_t> greedy_ids;    // argmax at each answer position
  std::vector<float> token_logprobs;  // per answer token
  bool boundary_mismatch = false;     // Encode(prompt + answer) did not start with Encode(prompt)
  // Choice examples (empty / -1 otherwise):
  std::vector<double> choice_logprobs;
  std::vector<int64_t> choice_tokens;
  int64_t chosen = -1;  // highest total log-probability, ties -> lowest index
  int64_t label = -1;
  bool correct = false;  // completion: greedy_match; choice: chosen == label
  // Match rules other than greedy (engine/eval/generation.h) set `correct`
  // by their rule; a generation rule also fills these (generated is false
  // otherwise):
  bool generated = false;
  std::vector<int32_t> generated_ids;  // the continuation, stop id included
  std::string generated_text;          // decoded, without a final stop id, cut at a stop string
  std::string stop_reason;             // eos, stop_string, length, context
  double f1 = 0, precision = 0, recall = 0;  // the paper's word-overlap F1PR
};

// Computes an example's result from the scores of its sequences (one vector
// per TokenizedExample::seqs entry, one TokenScore per answer position).
// INTERNAL if the score counts do not match the sequences.
absl::StatusOr<ExampleResult> ScoreExample(
    const TokenizedExample& ex, const std::vector<const std::vector<model::TokenScore>*>& scores,
    const std::vector<int>& topk);

struct Aggregate {
  int64_t count = 0;
  double accuracy = 0;      // 100 · mean(correct); NaN when count == 0
  double log_loss = 0;      // mean of −logprob / answer_tokens; NaN when count == 0
  double mean_logprob = 0;  // mean answer log-probability; NaN when count == 0
  std::vector<int> topk;
  std::vector<double> topk_accuracy;  // 100 · mean(hit_k); NaN when count == 0
  // Over the examples with generated text (a generation rule): how many, and
  // the means of f1, precision, recall (×100) and of the generated token
  // count; NaN when there are none.
  int64_t generated = 0;
  double f1 = 0, precision = 0, recall = 0, generated_tokens = 0;
};

// Aggregates over results[i] for i in `subset` (every result when subset is null).
Aggregate ComputeAggregate(const std::vector<ExampleResult>& results, const std::vector<int>& topk,
                           const std::vector<int64_t>* subset = nullptr);

nlohmann::json AggregateJson(const Aggregate& a);
// One per-example JSONL record; `split` is "validation" or "test".
nlohmann::json ExampleJson(const ExampleResult& r, const std::vector<int>& topk,
                           const std::string& split);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_METRICS_H_
