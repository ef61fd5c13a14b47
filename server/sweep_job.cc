#include "server/sweep_job.h"

#include <algorithm>
#include <set>
#include <utility>

#include "base/status_macros.h"
#include "server/example_outputs.h"
#include "server/proto_time.h"
#include "server/sweep_io.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Whether `r` beats the best single so far on validation (accuracy, then
// log-loss); the first of equals stays.
bool IsNewBest(const pb::Result& r, const pb::Progress& p) {
  const pb::Metrics& v = r.metrics().validation();
  return !p.has_best() || laser::BetterOnValidation(v.accuracy(), v.log_loss(),
                                                    p.best().metrics().validation().accuracy(),
                                                    p.best().metrics().validation().log_loss());
}

void KeepBest(const pb::Result& r, pb::Progress* p) {
  if (IsNewBest(r, *p)) *p->mutable_best() = r;
}

laser::SingleSummary Summary(const laser::Intervention& iv, const pb::Metrics& validation) {
  return {iv, validation.accuracy(), validation.log_loss()};
}

}  // namespace

absl::StatusOr<SweepOutcome> RunSweepJob(laser::SweepRunner& runner, const SweepJob& job,
                                         SweepSink& sink) {
  const laser::SweepConfig& cfg = runner.config();
  SweepOutcome out;
  pb::Progress& p = out.standing.progress;
  p.set_phase(pb::JOB_PHASE_PREPARING);

  // Resume: skip what is stored; its singles take part in the composition.
  std::set<int64_t> skip;
  std::vector<laser::SingleSummary> singles;
  int64_t composition_steps = 0;
  for (const pb::Result& r : job.stored) {
    skip.insert(r.plan_index());
    if (r.kind() == pb::RESULT_KIND_SINGLE) {
      singles.push_back(Summary(InterventionFromProto(r.intervention(), r.plan_index()),
                                r.metrics().validation()));
      KeepBest(r, &p);
    } else {
      ++composition_steps;
      if (r.kept()) out.standing.best_composition = r;
    }
  }
  const int64_t done_at_start = static_cast<int64_t>(job.stored.size());
  p.set_interventions_total(runner.shard_interventions() + composition_steps);
  p.set_interventions_done(done_at_start);
  LASERD_RETURN_IF_ERROR(sink.Planned(runner, p));
  // Long work asks the sink whether to stop; the sink lives only as long as
  // this call, so the runner stops asking when it returns.
  runner.set_interrupt([&sink] { return sink.Interrupt(); });
  struct StopAsking {
    laser::SweepRunner& runner;
    ~StopAsking() { runner.set_interrupt(nullptr); }
  } stop_asking{runner};
  LASERD_RETURN_IF_ERROR(sink.Continue());

  auto enter = [&](pb::JobPhase phase) {
    p.set_phase(phase);
    return sink.EnterPhase(phase);
  };
  // The baseline's examples' outcomes: every new best is tested against them.
  pb::ExampleOutputs base_outputs;
  if (job.baseline && job.baseline_outputs) {
    out.baseline = *job.baseline;
    base_outputs = *job.baseline_outputs;
  } else {
    LASERD_RETURN_IF_ERROR(enter(pb::JOB_PHASE_BASELINE));
    const auto t = Clock::now();
    std::vector<eval::ExampleResult> examples;
    LASERD_ASSIGN_OR_RETURN(const laser::SplitMetrics base, runner.Baseline(&examples));
    out.baseline_seconds = SecondsSince(t);
    base_outputs = ExampleOutputsProto(examples, runner.split(), job.id, -1, -1);
    if (job.baseline) {
      out.baseline = *job.baseline;
      LASERD_RETURN_IF_ERROR(sink.StoreBaselineOutputs(base_outputs));
    } else {
      out.baseline = EvaluationProto(base);
      LASERD_RETURN_IF_ERROR(sink.StoreBaseline(out.baseline, base_outputs));
    }
  }
  LASERD_RETURN_IF_ERROR(sink.Continue());

  int64_t next_index = done_at_start;
  const auto t_sweep = Clock::now();
  // Completes `r` (identity, deltas, shard, significance), counts it and
  // hands it to the sink with its examples' outcomes.
  auto commit = [&](pb::Result r,
                    const std::vector<eval::ExampleResult>& examples) -> absl::Status {
    r.set_job_id(job.id);
    r.set_index(next_index++);
    std::optional<pb::ExampleOutputs> outputs;
    const bool new_best = r.kind() == pb::RESULT_KIND_SINGLE && IsNewBest(r, p);
    const bool test = r.kind() == pb::RESULT_KIND_COMPOSITION || new_best;
    if (!examples.empty() && (test || job.keep_example_outputs)) {
      outputs = ExampleOutputsProto(examples, runner.split(), job.id, r.index(), r.plan_index());
      if (test) {
        LASERD_ASSIGN_OR_RETURN(*r.mutable_significance(),
                                SignificanceProto(base_outputs, *outputs));
      }
    }
    *r.mutable_validation_delta() = Deltas(r.metrics().validation(), out.baseline.validation());
    *r.mutable_test_delta() = Deltas(r.metrics().test(), out.baseline.test());
    r.set_shard_index(static_cast<uint32_t>(cfg.shard_count > 1 ? cfg.shard_index : 0));
    if (job.record_times) *r.mutable_create_time() = ProtoNow();

    const int64_t done = r.index() + 1;
    if (r.kind() == pb::RESULT_KIND_COMPOSITION) {
      p.set_interventions_total(std::max(p.interventions_total(), done));
    }
    p.set_interventions_done(done);
    p.set_fraction(p.interventions_total() > 0
                       ? std::min(1.0, static_cast<double>(done) / p.interventions_total())
                       : 1.0);
    *p.mutable_elapsed() = google::protobuf::util::TimeUtil::NanosecondsToDuration(
        job.elapsed_before_ns + static_cast<int64_t>(SecondsSince(job.started) * 1e9));
    const double sweep_s = SecondsSince(t_sweep);
    const double ips = sweep_s > 0 ? (done - done_at_start) / sweep_s : 0;
    p.set_interventions_per_second(ips);
    if (ips > 0) *p.mutable_eta() = ProtoSeconds((p.interventions_total() - done) / ips);
    if (new_best) {
      *p.mutable_best() = r;
    } else if (r.kind() == pb::RESULT_KIND_COMPOSITION && r.kept()) {
      out.standing.best_composition = r;
    }
    return sink.StoreResult(r, out.standing,
                            job.keep_example_outputs && outputs ? &*outputs : nullptr);
  };

  LASERD_RETURN_IF_ERROR(enter(pb::JOB_PHASE_SWEEPING));
  sink.SinglesRunning(runner, true);
  const absl::Status run = runner.Run(skip, [&](const laser::SweepResult& res) -> absl::Status {
    pb::Result r;
    r.set_plan_index(res.intervention.plan_index);
    r.set_kind(pb::RESULT_KIND_SINGLE);
    *r.mutable_intervention() = InterventionProto(res.intervention);
    *r.mutable_metrics() = EvaluationProto(res.metrics);
    if (job.record_times) {
      *r.mutable_svd_duration() = ProtoSeconds(res.svd_seconds);
      *r.mutable_eval_duration() = ProtoSeconds(res.eval_seconds);
    }
    singles.push_back(Summary(res.intervention, r.metrics().validation()));
    return commit(std::move(r), res.examples);
  });
  sink.SinglesRunning(runner, false);
  LASERD_RETURN_IF_ERROR(run);

  if (cfg.compose) {
    LASERD_RETURN_IF_ERROR(enter(pb::JOB_PHASE_COMPOSING));
    laser::SplitMetrics base;
    base.validation.accuracy = out.baseline.validation().accuracy();
    base.validation.log_loss = out.baseline.validation().log_loss();
    LASERD_RETURN_IF_ERROR(
        runner.Compose(singles, base, skip, [&](const laser::CompositionStep& cs) -> absl::Status {
          pb::Result r;
          r.set_plan_index(cs.plan_index);
          r.set_kind(pb::RESULT_KIND_COMPOSITION);
          *r.mutable_intervention() = InterventionProto(cs.added);
          for (const laser::Intervention& iv : cs.stacked_on) {
            *r.add_stacked_on() = InterventionProto(iv);
          }
          *r.mutable_metrics() = EvaluationProto(cs.metrics);
          r.set_kept(cs.kept);
          if (job.record_times) {  // a step reuses the singles' decompositions
            *r.mutable_svd_duration() = ProtoSeconds(0);
            *r.mutable_eval_duration() = ProtoSeconds(0);
          }
          return commit(std::move(r), cs.examples);
        }));
  }
  out.sweep_seconds = SecondsSince(t_sweep);
  out.results = next_index;
  return out;
}

}  // namespace laserd::server
