// Scoring a tokenized dataset with a model: sequences are packed into batches
// by a token budget (longest first, so batches are dense), each batch goes
// through Model::Score once, and results come back in the dataset's order.
#ifndef LASERD_ENGINE_EVAL_SCORER_H_
#define LASERD_ENGINE_EVAL_SCORER_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/example.h"
#include "engine/eval/metrics.h"
#include "engine/eval/split.h"
#include "engine/model/model.h"

namespace laserd::eval {

struct ScoreOptions {
  std::vector<int> topk = DefaultTopK();
  // Upper bound on the tokens of one Model::Score call; a sequence longer than
  // the budget is scored alone.
  int64_t batch_tokens = 4096;
  // Sequences of a batch that begin with the same tokens compute those rows
  // once (Model::PrepareScore); off gives plain packed sequences.
  bool share_prefixes = true;
  // Called after every batch with (sequences scored, total sequences).
  std::function<void(int64_t done, int64_t total)> progress;
};

// Packs sequences of the given lengths into batches of at most `budget` tokens:
// sequences sorted by length, longest first (ties by index), each appended to
// the current batch while it fits. Returns indices into `lengths`.
std::vector<std::vector<int64_t>> PlanBatches(const std::vector<int64_t>& lengths, int64_t budget);

// Scores every example; results[i] belongs to examples[i].
absl::StatusOr<std::vector<ExampleResult>> ScoreExamples(
    model::Model& model, const std::vector<TokenizedExample>& examples, const ScoreOptions& opts);

// Writes one ExampleJson line per result, labelled with its split.
absl::Status WritePerExampleJsonl(const std::vector<ExampleResult>& results,
                                  const std::vector<int>& topk, const Split& split,
                                  std::ostream& out);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_SCORER_H_
