// Per-example outputs and significance on the server side (docs/metrics.md):
// an engine example result as a laser.v1.ExampleOutcome, a model state's
// outcomes as a laser.v1.ExampleOutputs, the paired tests of a result
// against the baseline as a laser.v1.Significance, and where the headless
// `laserd sweep` writes its example outputs.
#ifndef LASERD_SERVER_EXAMPLE_OUTPUTS_H_
#define LASERD_SERVER_EXAMPLE_OUTPUTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/metrics.h"
#include "engine/eval/significance.h"
#include "engine/eval/split.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::server {

// The options every sweep tests with: alpha 0.05, 95% intervals, 10000
// bootstrap resamples, seed 1 (Significance records them).
eval::SignificanceOptions SweepSignificanceOptions();

// The outcomes of `examples` (dataset order, as SweepRunner scores them),
// each labelled with its split; result_index and plan_index are -1 for the
// baseline.
::laser::v1::ExampleOutputs ExampleOutputsProto(const std::vector<eval::ExampleResult>& examples,
                                                const eval::Split& split, const std::string& job_id,
                                                int64_t result_index, int64_t plan_index);

// Tests `edited` against `baseline` on each split, pairing examples by index.
// FAILED_PRECONDITION when the two do not hold the same examples (index and
// split).
absl::StatusOr<::laser::v1::Significance> SignificanceProto(
    const ::laser::v1::ExampleOutputs& baseline, const ::laser::v1::ExampleOutputs& edited,
    const eval::SignificanceOptions& options = SweepSignificanceOptions());

// The example outputs file of a headless results file: "R.jsonl" ->
// "R.examples.jsonl", any other name + ".examples.jsonl".
std::string ExampleOutputsPath(const std::string& results_path);

}  // namespace laserd::server

#endif  // LASERD_SERVER_EXAMPLE_OUTPUTS_H_
