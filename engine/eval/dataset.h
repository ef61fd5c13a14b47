// Held-out datasets that edits are scored on: JSONL, one example per line.
//
//   completion  {"prompt": "...", "answer": " Paris"}
//   choice      {"prompt": "...", "choices": [" true", " false"], "label": 0}
//   CounterFact {"question": "...", "gold-answer": "..."}   (alias of completion)
//
// Blank lines are skipped; unknown fields are ignored. Every bad record is
// reported with its 1-based line number and the reason; a dataset with no
// records is an error.
#ifndef LASERD_ENGINE_EVAL_DATASET_H_
#define LASERD_ENGINE_EVAL_DATASET_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::eval {

enum class ExampleKind { kCompletion, kChoice };
const char* ExampleKindName(ExampleKind k);

struct Example {
  int64_t index = 0;  // 0-based position among the dataset's examples (file order)
  int64_t line = 0;   // 1-based line number in the source
  ExampleKind kind = ExampleKind::kCompletion;
  std::string prompt;
  std::string answer;                // completion (and CounterFact) examples
  std::vector<std::string> choices;  // choice examples
  int64_t label = -1;                // choice examples: index into choices
};

struct Dataset {
  std::string source;  // file path or upload name, used in messages
  std::vector<Example> examples;
};

// One rejected record.
struct RecordError {
  int64_t line = 0;
  std::string reason;
};

// Parses every line and collects the bad records (for validation reports):
// the first `max_errors` in `errors`, all of them counted in `error_count`.
// `dataset.examples` holds the good records; the caller decides what to do
// with a partial result.
struct ParseResult {
  Dataset dataset;
  std::vector<RecordError> errors;
  int64_t error_count = 0;
};
ParseResult ParseDatasetLines(std::string_view content, std::string_view source,
                              size_t max_errors = SIZE_MAX);

// INVALID_ARGUMENT listing the bad records (line and reason, at most
// `kMaxReportedErrors`, then a count) if any, or if there are no records.
inline constexpr int kMaxReportedErrors = 20;
absl::StatusOr<Dataset> ParseDataset(std::string_view content, std::string_view source);
// Reads `path` (NOT_FOUND if it cannot be opened) and parses it.
absl::StatusOr<Dataset> LoadDataset(const std::string& path);

}  // namespace laserd::eval

#endif  // LASERD_ENGINE_EVAL_DATASET_H_
