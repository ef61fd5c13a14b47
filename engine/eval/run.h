// `laserd eval` as a library call: load a model and its tokenizer, read a
// dataset, tokenize it by the lm-evaluation-harness rule, score it in packed
// batches and aggregate per split. The CLI (server/eval_command.cc) is a thin
// shell around RunEval.
#ifndef LASERD_ENGINE_EVAL_RUN_H_
#define LASERD_ENGINE_EVAL_RUN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/dataset.h"
#include "engine/eval/generation.h"
#include "engine/eval/metrics.h"
#include "engine/eval/scorer.h"
#include "engine/eval/split.h"
#include "engine/formats/weights.h"
#include "engine/model/loaded_model.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/ops.h"
#include "nlohmann/json.hpp"

namespace laserd::eval {

struct EvalConfig {
  std::string model_path;
  std::string tokenizer_path;  // empty: from the model (see model::LoadModel)
  std::string data_path;
  std::string device = "auto";
  SplitOptions split;
  ScoreOptions score;
  MatchOptions match;           // how `correct` is decided (default: teacher-forced greedy)
  std::string per_example_out;  // empty: not written
};

struct SplitAggregates {
  std::string name;  // validation, test, all
  Aggregate agg;
};

struct EvalReport {
  std::string model_path, data_path, device, arch, tokenizer_source;
  int64_t parameters = 0;
  int64_t context = 0;
  bool adds_bos = false;
  int64_t examples = 0, sequences = 0, tokens = 0, answer_tokens = 0;
  int64_t boundary_mismatches = 0;  // sequences where whole did not start with the prompt's ids
  SplitOptions split_options;
  Split split;
  std::vector<int> topk;
  MatchOptions match;
  std::vector<SplitAggregates> splits;  // validation, test, all
  double load_seconds = 0, score_seconds = 0, generate_seconds = 0;
  std::vector<ExampleResult> results;  // dataset order
};

// Scores an already loaded model on a parsed dataset (everything after loading).
absl::StatusOr<EvalReport> EvalLoaded(model::LoadedModel& lm, const Dataset& ds,
                                      const EvalConfig& cfg);
// Loads the model and the dataset, then EvalLoaded; writes per-example JSONL
// when cfg.per_example_out is set.
absl::StatusOr<EvalReport> RunEval(const EvalConfig& cfg);

nlohmann::json ReportJson(const EvalReport& r);
// A readable table of the aggregates per split, with a header about the run.
std::string FormatReport(const EvalReport& r);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_RUN_H_
