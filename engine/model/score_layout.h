// Scoring requests and how a batch of them is laid out as model rows: packed
// sequences, or a prefix tree whose shared rows every sequence that begins
// with the same tokens reads (kernels::SeqLayout). Pure bookkeeping; the
// model runs it (Model::PrepareScore / ScoreFrom).
#ifndef LASERD_ENGINE_MODEL_SCORE_LAYOUT_H_
#define LASERD_ENGINE_MODEL_SCORE_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace laserd::model {

// One answer token to score: the model predicts tokens[pos] from tokens[0..pos).
struct TokenScore {
  float logprob;    // log-softmax over the full vocabulary, at the gold token
  int32_t argmax;   // first argmax
  int64_t greater;  // vocabulary entries with a logit strictly greater than gold's
};

// A sequence to score: the tokens and the first answer position (>= 1); every
// position from answer_start to the end is scored.
struct ScoreRequest {
  std::vector<int32_t> tokens;
  int64_t answer_start = 1;
};

// A batch laid out for the model: its input is every sequence minus its last
// token, as the rows of `layout` with their input `tokens`. `rows`/`gold` are
// the scored rows and their gold tokens (a row may be scored more than once),
// `counts` the scored positions per request.
struct ScoreLayout {
  kernels::SeqLayout layout;
  std::vector<int32_t> tokens;  // input token of each row of `layout`
  std::vector<int64_t> rows;
  std::vector<int32_t> gold;
  std::vector<int64_t> counts;
  std::vector<int64_t> distinct_rows;  // the scored rows, each once, ascending
};

// Validates a batch against the model's vocabulary and context
// (INVALID_ARGUMENT naming the request) and lays it out. With `prefix_tree`,
// sequences that begin with the same tokens share those rows when that saves
// at least a tenth of the rows; otherwise the sequences are packed.
absl::StatusOr<ScoreLayout> LayOutScoreBatch(const std::vector<ScoreRequest>& batch,
                                             int64_t vocab_size, int64_t max_positions,
                                             bool prefix_tree);

// The position of each row of p.layout in its sequence.
std::vector<int64_t> RowPositions(const ScoreLayout& p);

// Per request, its scores in answer order, from `scores` given per entry of p.rows.
std::vector<std::vector<TokenScore>> ScoresPerRequest(
    const ScoreLayout& p, const std::vector<kernels::Backend::RowScore>& scores);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_SCORE_LAYOUT_H_
