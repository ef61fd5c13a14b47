// A sweep's spec and results on the server side (docs/sweep.md): reading a
// spec file (a laser.v1.SweepSpec in protobuf JSON or YAML, proto/spec_io.h),
// its conversion to the engine's SweepConfig (the one place where API fields
// become engine settings, for `laserd sweep` and `laserd serve` alike), the
// engine values as API messages, and the results file: JSONL whose first
// line is a laser.v1.Job (the sweep's identity, spec and baseline) and every
// further line one laser.v1.Result, in plan order, protobuf JSON with the
// proto field names (proto/results_io.h, shared with laserctl). `laserd merge`
// joins shard files here (laserctl merge uses proto/results_io.h directly).
#ifndef LASERD_SERVER_SWEEP_IO_H_
#define LASERD_SERVER_SWEEP_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/laser/sweep.h"
#include "laser/v1/sweep.pb.h"
#include "proto/results_io.h"

namespace laserd::server {

// Reads and parses a spec file, protobuf JSON or YAML (proto/spec_io.h;
// NOT_FOUND when it cannot be read).
absl::StatusOr<::laser::v1::SweepSpec> ReadSweepSpec(const std::string& path);

// The largest value (or number of values) a spec may give for each numeric or
// repeated field; past it the spec is INVALID_ARGUMENT naming the field and
// the limit ("spec.svd.power_iterations: 65 is above the limit 64"), in
// `laserd sweep` and `laserd serve` alike. Why each is where it is:
// docs/sweep.md ("Limits").
struct SpecLimits {
  static constexpr int kPowerIterations = 64;
  static constexpr int kOversampling = 4096;
  static constexpr int kBatchSize = 4096;
  static constexpr int64_t kMaxBatchTokens = int64_t{1} << 20;
  static constexpr int kTopK = 1000;
  static constexpr int kTopKValues = 16;
  static constexpr int kCompositionMaxInterventions = 4096;
  static constexpr int kMatrixTypes = 64;
  static constexpr int kExperts = 4096;
  static constexpr int kLayerIndices = 4096;
  static constexpr int kLayerRanges = 256;
  static constexpr int kLayer = 65535;  // largest layer index, range start, stop or step
  static constexpr int kRankValues = 1024;
  static constexpr uint32_t kShardCount = 4096;
};

// SweepSpec → SweepConfig: checks every field that can be checked without the
// model ("spec.rho.values[2]: 1.5 is not in (0, 1]"). The dataset path is
// returned separately; uploaded datasets (dataset_id) are INVALID_ARGUMENT in
// the headless command.
struct HeadlessSweep {
  std::string data_path;
  laser::SweepConfig config;
};
absl::StatusOr<HeadlessSweep> SweepConfigFromSpec(const ::laser::v1::SweepSpec& spec);

// The one place that names the spec in an error about it: an engine error
// that starts with a spec field ("rho.values[1]: ...") gets "spec.", one that
// names the spec already is kept, and any other gets `other_prefix` (the
// server: "spec." for spec checks, "spec: " for the model's and dataset's).
absl::Status SpecError(const absl::Status& s, absl::string_view other_prefix = "");

// The spec as recorded in a results file: the shard cleared (every shard and
// the merged file record the same spec).
::laser::v1::SweepSpec RecordedSpec(const ::laser::v1::SweepSpec& spec);
// A deterministic sweep id: "sweep-" + 16 hex digits of FNV-1a 64 over the
// recorded spec's JSON and the model identity.
std::string SweepId(const ::laser::v1::SweepSpec& recorded, const std::string& model_identity);

// Engine values → API messages.
::laser::v1::Metrics MetricsProto(const eval::Aggregate& a);
::laser::v1::Evaluation EvaluationProto(const laser::SplitMetrics& m);
::laser::v1::Intervention InterventionProto(const laser::Intervention& iv);
::laser::v1::MetricDeltas Deltas(const ::laser::v1::Metrics& edited,
                                 const ::laser::v1::Metrics& base);
// API → engine (resuming from a results file).
laser::Intervention InterventionFromProto(const ::laser::v1::Intervention& p, int64_t plan_index);
// The engine's name of the matrix an intervention edits: its matrix_type, or
// "moe.in[3]" for an expert's matrix (matrix_type moe.in, expert 3), as
// specs and `laserd export --edit` write it.
std::string MatrixName(const ::laser::v1::Intervention& p);

// The results JSONL itself (JsonLine, ResultsFile, parsing, merging) is shared
// with the client: proto/results_io.h.
using api::JsonLine;
using api::ResultsFile;

// Reads and parses a results file (api::ParseResultsFile); NOT_FOUND when it
// does not exist.
absl::StatusOr<ResultsFile> ReadResultsFile(const std::string& path);

// Joins shard files into what one unsharded run writes: the header once,
// results ordered by plan_index, `index` renumbered densely and shard_index
// cleared. FAILED_PRECONDITION naming the files when they come from different
// sweeps (spec or model differ; the spec difference is spelled out), when a
// plan_index appears twice, or when results are missing (unless
// `allow_incomplete`).
absl::Status MergeResultFiles(const std::vector<std::string>& inputs, const std::string& out,
                              bool allow_incomplete = false);

}  // namespace laserd::server

#endif  // LASERD_SERVER_SWEEP_IO_H_
