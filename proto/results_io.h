// The results JSONL of a sweep, shared by every side of the API (laserd and
// laserctl): one laser.v1.Job header line, then laser.v1.Result lines, each in
// protobuf JSON with proto field names. Depends only on the API messages, so the
// client can use it without linking server code.
#ifndef LASERD_PROTO_RESULTS_IO_H_
#define LASERD_PROTO_RESULTS_IO_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::api {

// One JSONL line (no newline) of a message: protobuf JSON, proto field names,
// map entries (top_k_accuracy) sorted by key so equal messages give equal bytes.
std::string JsonLine(const google::protobuf::Message& m);

// A significance at a glance: "[sig val+test]", "[sig val]", "[sig test]"
// (the gain over the baseline is significant on those splits at its alpha) or
// "[n.s.]".
std::string SignificanceMarker(const ::laser::v1::Significance& s);
// One line: the marker, then per split the accuracy delta with its interval,
// McNemar's p-value and the log-loss delta with its interval.
std::string SignificanceLine(const ::laser::v1::Significance& s);

// A results file as read back.
struct ResultsFile {
  bool has_header = false;
  ::laser::v1::Job header;
  std::vector<::laser::v1::Result> results;
  // Bytes of the text up to the end of the last complete, parsable line.
  int64_t valid_bytes = 0;
  // A last line that is incomplete or unparsable (a run killed while writing).
  bool truncated_tail = false;
};

// Parses a results file's text; `name` is used in messages. DATA_LOSS naming
// the line for a bad line that is not the last one.
absl::StatusOr<ResultsFile> ParseResultsFile(const std::string& text, const std::string& name);

// Joins shard files (name, text) into the text one unsharded run writes: the
// header once, results ordered by plan_index, `index` renumbered densely (and
// Result.significance.result_index with it), shard_index cleared, and the
// significance kept only on the singles one run tests (the best so far in plan
// order). FAILED_PRECONDITION naming the files when one has no
// header or an incomplete last line, when they come from different sweeps (spec
// or model differ; the spec difference is spelled out), when a plan_index
// appears twice, or when planned results are missing (unless allow_incomplete).
absl::StatusOr<std::string> MergeResults(
    const std::vector<std::pair<std::string, std::string>>& files, bool allow_incomplete);

}  // namespace laserd::api

#endif  // LASERD_PROTO_RESULTS_IO_H_
