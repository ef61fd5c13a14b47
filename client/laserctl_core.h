// The parts of laserctl that do not talk to a server: building a SweepSpec from
// flags, exit codes, result tables (text, CSV, JSON lines), the watch cursor that
// makes a resumed stream neither miss nor repeat a result, the progress line,
// and merging `laserd sweep` shard files. laserctl knows only the public API
// (proto/laser/v1); nothing here links server/ code.
#ifndef LASERD_CLIENT_LASERCTL_CORE_H_
#define LASERD_CLIENT_LASERCTL_CORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "laser/v1/sweep.pb.h"
#include "proto/results_io.h"

namespace laserd::client {

// Exit codes of laserctl (docs/cli.md, "laserctl").
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,         // anything else: INTERNAL, DATA_LOSS, UNKNOWN, local I/O
  kExitUsage = 2,         // bad command line
  kExitRejected = 3,      // INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,
                          // OUT_OF_RANGE, RESOURCE_EXHAUSTED
  kExitNotFound = 4,      // NOT_FOUND
  kExitAuth = 5,          // UNAUTHENTICATED, PERMISSION_DENIED
  kExitUnavailable = 6,   // UNAVAILABLE, DEADLINE_EXCEEDED
  kExitJobFailed = 7,     // the watched job ended FAILED
  kExitJobCancelled = 8,  // the watched job ended CANCELLED
};

// Maps a status code (google.rpc.Code numbering, shared by gRPC and absl) to the
// exit code. 0 (OK) is kExitOk.
int ExitCodeForStatusCode(int code);
// Exit code of a job that has ended: SUCCEEDED 0, FAILED 7, CANCELLED 8; a
// state that is not terminal is kExitError.
int ExitCodeForJobState(::laser::v1::JobState state);
bool IsTerminal(::laser::v1::JobState state);
// "INVALID_ARGUMENT" for 3, ...; "CODE_<n>" for an unknown number.
std::string StatusCodeName(int code);

// The SweepSpec fields laserctl submit sets from flags. Empty/absent fields are
// left unset in the spec (the server's defaults apply).
struct SpecFlags {
  std::string dataset_id;
  std::string dataset_path;
  // Sets dataset.allow_changed_file (false leaves the spec file's value).
  bool allow_changed_file = false;
  std::string task;                       // completion | choice | generation
  std::string match;                      // greedy | top1_decoded | exact | prefix | contains
  std::optional<int32_t> max_new_tokens;  // generation.max_new_tokens
  std::vector<std::string> stop_strings;  // generation.stop_strings (replace the file's)
  bool match_prompt = false;              // sets generation.match_prompt
  std::vector<std::string> matrix_types;  // names, aliases or groups
  std::vector<int32_t> experts;           // SweepSpec.experts (mixture of experts)
  std::string layers;  // "22", "0,4,8", "20-29", "20:30:2", "20:" (mixed, comma-separated)
  std::vector<double> rho;
  std::vector<double> rate;
  bool add_suggested_rank = false;
  std::string svd_method;  // auto | exact | randomized | paper
  std::optional<int32_t> oversampling;
  std::optional<int32_t> power_iterations;
  std::optional<uint64_t> seed;
  bool round_to_source_dtype = false;  // sets SweepSpec.round_to_source_dtype
  // SweepSpec.intervention_kinds: rank_reduction | zero | prune (short or full names).
  std::vector<std::string> intervention_kinds;
  std::string split;  // first | shuffle
  std::optional<double> validation_fraction;
  std::optional<uint64_t> split_seed;
  std::vector<int32_t> top_k;
  std::optional<int32_t> batch_size;
  std::optional<int64_t> max_batch_tokens;
  std::string composition;  // none | greedy
  std::optional<int32_t> max_interventions;
  // Sets keep_example_outputs (false leaves the spec file's value).
  bool keep_example_outputs = false;
  std::optional<int32_t> priority;
  std::vector<std::string> labels;  // k=v
  std::string model;
};

// Applies the flags on top of `base` (a spec file's contents, or empty): a flag
// that is given replaces the field. INVALID_ARGUMENT naming the flag on a value
// that cannot be parsed; the server checks everything else.
absl::StatusOr<::laser::v1::SweepSpec> ApplySpecFlags(const SpecFlags& f,
                                                      ::laser::v1::SweepSpec base = {});
// Parses "22", "0,4,8", "20-29" (inclusive), "20:30", "20:30:2", "20:" into a
// LayerSelection.
absl::StatusOr<::laser::v1::LayerSelection> ParseLayers(const std::string& text);
// "k=v" → (k, v).
absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(const std::string& text);
// "queued", "JOB_STATE_QUEUED", ... → JobState.
absl::StatusOr<::laser::v1::JobState> ParseJobState(const std::string& text);
// JOB_STATE_SUCCEEDED → "SUCCEEDED".
std::string JobStateName(::laser::v1::JobState state);

using api::JsonLine;  // proto/results_io.h

// Output of `laserctl results` / `watch`.
enum class Format { kTable, kCsv, kJson };
absl::StatusOr<Format> ParseFormat(const std::string& text);
// Column names of the flat form of a result (also the CSV header and the keys
// of the Python client's rows). top_k columns are added for every k present in
// `results` (validation.top_k.<k>, test.top_k.<k>).
std::vector<std::string> ResultColumns(const std::vector<::laser::v1::Result>& results);
// One flat row: column name → value as text ("" when absent).
std::map<std::string, std::string> FlattenResult(const ::laser::v1::Result& r);
// The whole output: a fixed-width table, CSV (RFC 4180 quoting) with a header
// line, or JSON lines. Every form ends with a newline when non-empty.
std::string FormatResults(const std::vector<::laser::v1::Result>& results, Format format);
// One row of the live table of `watch` (table format): same columns as
// FormatResults' default table without the top_k columns; a result that
// carries its significance (the best single when it was committed, every
// composition step) ends with its marker, e.g. "[sig val+test]" or "[n.s.]".
std::string TableHeader();
std::string TableRow(const ::laser::v1::Result& r);

// Keeps a watch stream exact across reconnects: results are accepted only in
// dense index order; a replayed result (index < next) is dropped.
class WatchCursor {
 public:
  explicit WatchCursor(int64_t from = 0) : next_(from) {}
  enum class Verdict { kAccept, kDuplicate, kGap };
  // kAccept advances the cursor. kGap (index > next) means results were skipped:
  // the caller must reconnect from next_index().
  Verdict Offer(const ::laser::v1::Result& r);
  int64_t next_index() const { return next_; }

 private:
  int64_t next_;
};

// Best-so-far ordering (the server's Progress.best rule): higher validation
// accuracy, ties broken by lower validation log-loss, then lower index.
bool BetterResult(const ::laser::v1::Result& a, const ::laser::v1::Result& b);
// Keeps the n best results seen.
class BestTable {
 public:
  explicit BestTable(size_t n) : n_(n) {}
  // True when the table changed.
  bool Add(const ::laser::v1::Result& r);
  const std::vector<::laser::v1::Result>& rows() const { return rows_; }

 private:
  size_t n_;
  std::vector<::laser::v1::Result> rows_;
};

// "[#########...........] 42/100  42%  3.1/s  ETA 0:18" in `width` columns of bar;
// the ETA is omitted when the progress has none.
std::string ProgressBar(const ::laser::v1::Progress& p, int width = 30);
// "progress 42/100 (42%) 3.1/s eta 18s" for logs.
std::string ProgressLine(const ::laser::v1::Progress& p);
// Seconds → "1:02:03" / "2:03".
std::string FormatDuration(double seconds);

// laserctl merge: the same function `laserd merge` uses (proto/results_io.h).
using api::MergeResults;

}  // namespace laserd::client

#endif  // LASERD_CLIENT_LASERCTL_CORE_H_
