// One run of a sweep, the same for `laserd sweep` (a results file) and for a
// job of `laserd serve` (the job store): it resumes from the results an
// earlier run stored (their plan indices are skipped, their singles feed the
// composition), scores the baseline when none is stored, runs the shard's
// single interventions and then the greedy composition, builds every
// laser.v1.Result (metrics, deltas against the baseline, the stack of a
// composition step) and keeps the progress (done of total, throughput, ETA,
// best single and best stack so far). Every result that becomes the best
// single, and every composition step, is tested against the baseline example
// by example (Result.significance); with spec.keep_example_outputs every
// result's example outputs go to the sink with it. Where the baseline and each
// result go is the SweepSink's business.
#ifndef LASERD_SERVER_SWEEP_JOB_H_
#define LASERD_SERVER_SWEEP_JOB_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/laser/sweep.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::server {

// A sweep's standing after a result: what a job shows while it runs.
struct SweepProgress {
  // Phase, done of total, fraction, elapsed, throughput, ETA and the best
  // single intervention so far (validation accuracy, then log-loss).
  ::laser::v1::Progress progress;
  // The last composition step that was kept (the best stack so far).
  std::optional<::laser::v1::Result> best_composition;
};

// Where a sweep's baseline and results go. The driver calls, in order:
// Planned, Continue, [EnterPhase(BASELINE), StoreBaseline], Continue,
// EnterPhase(SWEEPING), SinglesRunning(true), StoreResult..., SinglesRunning(false),
// [EnterPhase(COMPOSING), StoreResult...]. A non-OK status from any of them
// stops the run and is what RunSweepJob returns.
class SweepSink {
 public:
  virtual ~SweepSink() = default;
  // The runner is built: `progress.interventions_total` is the shard's singles
  // plus the composition steps stored already.
  virtual absl::Status Planned(const laser::SweepRunner& runner,
                               const ::laser::v1::Progress& progress) {
    return absl::OkStatus();
  }
  // Between the steps of the run (before the baseline, before the first
  // intervention): a cancellation or shutdown stops it here.
  virtual absl::Status Continue() { return absl::OkStatus(); }
  // Inside long work: asked before every batch of a scoring pass and between
  // the power iterations and matrices of a decomposition (possibly from the
  // threads of other replicas), so that a cancellation or shutdown takes
  // effect within one batch or iteration. A non-OK status stops the run with
  // it. By default the same answer as Continue.
  virtual absl::Status Interrupt() { return Continue(); }
  // The run enters BASELINE (only when the baseline is scored), SWEEPING or
  // COMPOSING (only when the spec composes).
  virtual absl::Status EnterPhase(::laser::v1::JobPhase phase) { return absl::OkStatus(); }
  // Stores the baseline just scored with its examples' outcomes (always
  // given: the significance of later results needs them); not called when it
  // was stored already.
  virtual absl::Status StoreBaseline(const ::laser::v1::Evaluation& baseline,
                                     const ::laser::v1::ExampleOutputs& outputs) = 0;
  // A resumed run whose stored baseline came without its outcomes
  // (SweepJob::baseline_outputs absent) scores the baseline again for them
  // (after EnterPhase(BASELINE)) and hands them here; the stored metrics stay.
  virtual absl::Status StoreBaselineOutputs(const ::laser::v1::ExampleOutputs& outputs) {
    return absl::OkStatus();
  }
  // Stores one result; `standing` counts it. `outputs` are its examples'
  // outcomes when the spec keeps them (keep_example_outputs), else null. A
  // cancellation may be returned here too (checked after every intervention).
  virtual absl::Status StoreResult(const ::laser::v1::Result& result, const SweepProgress& standing,
                                   const ::laser::v1::ExampleOutputs* outputs) = 0;
  // True just before the single interventions run, false after them (also
  // after a failure): the server lets spectrum requests read the unedited
  // model in between.
  virtual void SinglesRunning(laser::SweepRunner& runner, bool running) {}
};

// What the driver needs besides the runner.
struct SweepJob {
  std::string id;  // Result.job_id of every result
  // Results of an earlier run of the same sweep, in index order.
  std::vector<::laser::v1::Result> stored;
  // The baseline stored by an earlier run; scored when absent.
  std::optional<::laser::v1::Evaluation> baseline;
  // Its examples' outcomes, when stored (see SweepSink::StoreBaselineOutputs).
  std::optional<::laser::v1::ExampleOutputs> baseline_outputs;
  // Progress.elapsed counts from `started`, plus what earlier runs spent.
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  int64_t elapsed_before_ns = 0;
  // Served jobs record when each result was made and its SVD and scoring
  // durations; a results file does not (so that it is reproducible).
  bool record_times = false;
  // spec.keep_example_outputs: hand every result's example outputs to the sink.
  bool keep_example_outputs = false;
};

struct SweepOutcome {
  ::laser::v1::Evaluation baseline;
  SweepProgress standing;
  int64_t results = 0;  // stored in all, earlier runs included
  double baseline_seconds = 0;
  double sweep_seconds = 0;  // from the first intervention to the end
};

// Runs what `job.stored` lacks of the runner's sweep, writing through `sink`.
absl::StatusOr<SweepOutcome> RunSweepJob(laser::SweepRunner& runner, const SweepJob& job,
                                         SweepSink& sink);

}  // namespace laserd::server

#endif  // LASERD_SERVER_SWEEP_JOB_H_
