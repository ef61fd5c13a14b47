#include "server/job_runner.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/proto_time.h"
#include "server/sweep_io.h"
#include "server/sweep_job.h"
#include "server/watch_reactor.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using google::protobuf::util::TimeUtil;
using Clock = std::chrono::steady_clock;

std::string RandomId() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat("job-", absl::Hex(rng(), absl::kZeroPad16));
}

}  // namespace

JobRunner::JobRunner(JobStore& store, ResidentModel& model, PrometheusMetrics& prometheus,
                     JobInputs inputs, int64_t max_queued, StoreObserver on_store_fault)
    : store_(store),
      model_(model),
      prometheus_(prometheus),
      inputs_(std::move(inputs)),
      max_queued_(max_queued),
      on_store_fault_(std::move(on_store_fault)) {}

JobRunner::~JobRunner() { Stop(); }

absl::Status JobRunner::Start() {
  LASERD_ASSIGN_OR_RETURN(std::vector<StoredJob> jobs, store_.ListJobs());
  int requeued = 0, cancelled = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (StoredJob& sj : jobs) {
      pb::Job& j = sj.job;
      if (!Terminal(j.state()) && j.cancel_requested()) {
        // CancelJob acknowledged the request before the server stopped.
        LASERD_RETURN_IF_ERROR(Transition(j, pb::JOB_STATE_CANCELLED));
        LASERD_RETURN_IF_ERROR(store_.UpdateJob(j));
        ++cancelled;
        continue;
      }
      if (j.state() == pb::JOB_STATE_RUNNING) {
        // Stopped by a crash, a shutdown or a store fault: run again; stored
        // results are skipped.
        LASERD_RETURN_IF_ERROR(Transition(j, pb::JOB_STATE_QUEUED));
        LASERD_RETURN_IF_ERROR(store_.UpdateJob(j));
        ++requeued;
      }
      if (j.state() == pb::JOB_STATE_QUEUED) {
        queue_.push_back({j.id(), j.spec().priority(), sj.seq});
      }
    }
  }
  if (requeued) spdlog::info("requeued {} interrupted job(s)", requeued);
  if (cancelled) spdlog::info("cancelled {} job(s) whose cancellation was requested", cancelled);
  worker_ = std::thread([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void JobRunner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<pb::Job> JobRunner::Enqueue(pb::Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  LASERD_RETURN_IF_ERROR(SettleOwedLocked());
  if (static_cast<int64_t>(queue_.size()) >= max_queued_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", queue_.size(), " jobs; --max-queued)"));
  }
  job.set_id(RandomId());
  job.set_state(pb::JOB_STATE_QUEUED);
  *job.mutable_create_time() = ProtoNow();
  *job.mutable_update_time() = job.create_time();
  int64_t seq = 0;
  LASERD_RETURN_IF_ERROR(WriteLocked(
      [&] {
        auto s = store_.InsertJob(job);
        if (s.ok()) seq = *s;
        return s.status();
      },
      [&] {
        queue_.push_back({job.id(), job.spec().priority(), seq});
        cv_.notify_all();
      },
      /*owe=*/false));
  return job;
}

bool JobRunner::LiveLocked(const std::string& id) const {
  return !running_id_.empty() && id == running_id_ && !running_deleted_;
}

absl::StatusOr<pb::Job> JobRunner::Get(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (LiveLocked(id)) return running_;
  }
  LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
  return sj.job;
}

void JobRunner::Refresh(pb::Job* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (LiveLocked(job->id())) *job = running_;
}

JobRunner::Load JobRunner::CurrentLoad() {
  std::lock_guard<std::mutex> lock(mu_);
  Load l;
  l.queue_depth = static_cast<int64_t>(queue_.size());
  const bool live = LiveLocked(running_id_);
  l.interventions_per_second = live ? ips_ : 0;
  if (live) l.running_job = running_id_;
  return l;
}

void JobRunner::RemoveFromQueueLocked(const std::string& id) {
  queue_.erase(
      std::remove_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.id == id; }),
      queue_.end());
}

absl::StatusOr<pb::Job> JobRunner::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  LASERD_RETURN_IF_ERROR(SettleOwedLocked());
  if (LiveLocked(id)) {
    if (running_.cancel_requested()) return running_;
    pb::Job next = running_;
    next.set_cancel_requested(true);
    *next.mutable_update_time() = ProtoNow();
    // Acknowledged (and acted on) only once stored: a restart then ends the
    // job CANCELLED. When the store cannot be written the job goes on.
    LASERD_RETURN_IF_ERROR(WriteLocked([&] { return store_.UpdateJob(next); },
                                       [&] {
                                         running_ = next;
                                         cancel_ = true;
                                       },
                                       /*owe=*/false));
    spdlog::info("job {}: cancel requested", id);
    return running_;
  }
  LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
  pb::Job j = sj.job;
  switch (j.state()) {
    case pb::JOB_STATE_CANCELLED:
      return j;
    case pb::JOB_STATE_QUEUED: {
      LASERD_RETURN_IF_ERROR(Transition(j, pb::JOB_STATE_CANCELLED));
      LASERD_RETURN_IF_ERROR(WriteLocked([&] { return store_.UpdateJob(j); },
                                         [&] {
                                           RemoveFromQueueLocked(id);
                                           PublishStateChangeLocked(id, pb::JOB_STATE_QUEUED,
                                                                    pb::JOB_STATE_CANCELLED, true);
                                         },
                                         /*owe=*/false));
      spdlog::info("job {} cancelled while queued", id);
      return j;
    }
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", StateName(j.state()),
                       "; only a queued or running job can be cancelled"));
  }
}

absl::Status JobRunner::Delete(const std::string& id, bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  LASERD_RETURN_IF_ERROR(SettleOwedLocked());
  pb::JobState state;
  const bool running = LiveLocked(id);
  if (running) {
    state = running_.state();
  } else {
    LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
    state = sj.job.state();
  }
  if (!Terminal(state) && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", StateName(state), "; cancel it first or set force"));
  }
  LASERD_RETURN_IF_ERROR(WriteLocked([&] { return store_.DeleteJob(id); },
                                     [&] {
                                       if (running) {
                                         // Gone for readers at once; the worker
                                         // stops it after the intervention in
                                         // flight.
                                         cancel_ = true;
                                         running_deleted_ = true;
                                       } else if (state == pb::JOB_STATE_QUEUED) {
                                         RemoveFromQueueLocked(id);
                                         PublishStateChangeLocked(id, state,
                                                                  pb::JOB_STATE_CANCELLED, true);
                                       }
                                     },
                                     /*owe=*/false));
  spdlog::info("job {} deleted", id);
  return absl::OkStatus();
}

absl::Status JobRunner::Watch(const std::string& id, int64_t from_index, WatchReactor* w) {
  std::lock_guard<std::mutex> lock(mu_);
  pb::Job job;
  if (LiveLocked(id)) {
    job = running_;
  } else {
    LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
    job = sj.job;
  }
  LASERD_ASSIGN_OR_RETURN(std::vector<pb::Result> results, store_.Results(id, from_index));
  pb::WatchJobEvent ev;
  *ev.mutable_time() = ProtoNow();
  *ev.mutable_job() = job;
  w->Push(ev, false);
  for (pb::Result& r : results) {
    pb::WatchJobEvent re;
    *re.mutable_time() = ProtoNow();
    *re.mutable_result() = std::move(r);
    w->Push(re, false);
  }
  if (Terminal(job.state())) {
    w->FinishWith(grpc::Status::OK);
  } else {
    watchers_[id].insert(w);
  }
  return absl::OkStatus();
}

void JobRunner::EndWatch(WatchReactor* w) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watchers_.find(w->job_id());
  if (it == watchers_.end()) return;
  it->second.erase(w);
  if (it->second.empty()) watchers_.erase(it);
}

void JobRunner::WorkerLoop() {
  while (true) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // While a store write is owed nothing else runs: retry it now and then.
      while (!stop_ && owed_) {
        cv_.wait_for(lock, kStoreRetryInterval);
        if (!stop_) SettleOwedLocked().IgnoreError();  // still owed: retried next time
      }
      cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && model_.ready()); });
      if (stop_) return;
      auto best =
          std::min_element(queue_.begin(), queue_.end(), [](const Queued& a, const Queued& b) {
            return a.priority != b.priority ? a.priority > b.priority : a.seq < b.seq;
          });
      id = best->id;
      const int64_t seq = best->seq;
      queue_.erase(best);
      auto sj = store_.GetJob(id);
      if (!sj.ok()) continue;  // deleted meanwhile
      running_id_ = id;
      running_seq_ = seq;
      running_ = sj->job;
      cancel_ = false;
      running_deleted_ = false;
      interrupted_ = false;
    }
    RunJob(id);
  }
}

void JobRunner::SetFaultLocked(const absl::Status& s) {
  if (s == store_fault_) return;
  store_fault_ = s;
  spdlog::error("the job store cannot be written: {}; NOT_SERVING until it can", s.ToString());
  if (on_store_fault_) on_store_fault_(s);
}

void JobRunner::ClearFaultLocked() {
  if (store_fault_.ok()) return;
  store_fault_ = absl::OkStatus();
  spdlog::info("the job store takes writes again; SERVING");
  if (on_store_fault_) on_store_fault_(store_fault_);
}

absl::Status JobRunner::WriteLocked(std::function<absl::Status()> write,
                                    std::function<void()> stored, bool owe) {
  absl::Status s = write();
  if (s.ok()) {
    if (stored) stored();
    if (!owed_) ClearFaultLocked();
    return s;
  }
  if (s.code() == absl::StatusCode::kNotFound || s.code() == absl::StatusCode::kAlreadyExists) {
    return s;  // an answer, not a fault of the store
  }
  SetFaultLocked(s);
  if (owe && !owed_) {
    owed_ = Owed{std::move(write), std::move(stored), false};
    interrupted_ = true;  // the running job stops (FinishRunning)
  }
  return s;
}

absl::Status JobRunner::SaveRunningLocked(pb::Job next, std::function<void()> publish) {
  *next.mutable_update_time() = ProtoNow();
  return WriteLocked([this, next] { return store_.UpdateJob(next); },
                     [this, next, publish] {
                       running_ = next;
                       if (publish) publish();
                     },
                     /*owe=*/true);
}

absl::Status JobRunner::SettleOwedLocked() {
  if (!owed_) return absl::OkStatus();
  absl::Status s = owed_->write();
  if (!s.ok()) {
    if (s.code() != absl::StatusCode::kNotFound && s.code() != absl::StatusCode::kAlreadyExists) {
      SetFaultLocked(s);
      return s;
    }
    // The write cannot apply any more (its row is gone or holds it already):
    // go on from what the store holds.
    spdlog::warn("job {}: the owed store write is dropped: {}", running_id_, s.ToString());
    Owed dropped = *std::move(owed_);
    owed_.reset();
    auto sj = store_.GetJob(running_id_);
    if (!sj.ok()) {
      running_id_.clear();
      ClearFaultLocked();
      return absl::OkStatus();
    }
    running_ = sj->job;
    if (Terminal(running_.state())) {
      running_id_.clear();
    } else if (dropped.requeue) {
      RequeueRunningLocked();
    }
    if (!owed_) ClearFaultLocked();
    return owed_ ? store_fault_ : absl::OkStatus();
  }
  Owed done = *std::move(owed_);
  owed_.reset();
  if (done.stored) done.stored();
  spdlog::info("job {}: the owed store write is stored", running_id_);
  if (done.requeue && !running_id_.empty()) RequeueRunningLocked();
  if (owed_) return store_fault_;
  ClearFaultLocked();
  return absl::OkStatus();
}

void JobRunner::RequeueRunningLocked() {
  const std::string id = running_id_;
  pb::Job next = running_;
  const pb::JobState to = next.cancel_requested() ? pb::JOB_STATE_CANCELLED : pb::JOB_STATE_QUEUED;
  if (absl::Status t = Transition(next, to); !t.ok()) {
    spdlog::error("{}", t.ToString());
    running_id_.clear();
    return;
  }
  absl::Status s =
      WriteLocked([this, next] { return store_.UpdateJob(next); },
                  [this, next, id, to] {
                    running_ = next;
                    PublishStateChangeLocked(id, pb::JOB_STATE_RUNNING, to, Terminal(to));
                    if (to == pb::JOB_STATE_QUEUED) {
                      queue_.push_back({id, next.spec().priority(), running_seq_});
                    }
                    running_id_.clear();
                    ips_ = 0;
                    cv_.notify_all();
                    spdlog::info("job {} {} after the store fault", id,
                                 to == pb::JOB_STATE_QUEUED ? "requeued" : "cancelled");
                  },
                  /*owe=*/true);
  if (!s.ok() && owed_) owed_->requeue = false;  // the owed write is this requeue itself
}

void JobRunner::PublishLocked(const std::string& job_id, const pb::WatchJobEvent& ev,
                              bool terminal) {
  auto it = watchers_.find(job_id);
  if (it == watchers_.end()) return;
  for (WatchReactor* w : it->second) w->Push(ev, terminal);
}

void JobRunner::PublishStateChangeLocked(const std::string& job_id, pb::JobState previous,
                                         pb::JobState current, bool terminal,
                                         const pb::JobError* error) {
  pb::WatchJobEvent ev;
  *ev.mutable_time() = ProtoNow();
  ev.mutable_state_change()->set_previous(previous);
  ev.mutable_state_change()->set_current(current);
  if (error) *ev.mutable_state_change()->mutable_error() = *error;
  PublishLocked(job_id, ev, terminal);
}

void JobRunner::PublishProgressLocked(const std::string& job_id) {
  pb::WatchJobEvent ev;
  *ev.mutable_time() = ProtoNow();
  *ev.mutable_progress() = running_.progress();
  PublishLocked(job_id, ev, false);
}

// The job store as a SweepSink: the running job's state, its results and the
// events of its watchers, under the runner's lock. Each write is stored before
// the runner's copy changes and its event is published; a write that fails
// stops the run with the store's error (the runner owes it).
class JobRunner::StoreSink : public SweepSink {
 public:
  StoreSink(JobRunner& r, std::string id, std::unique_lock<std::mutex>& model_lock)
      : r_(r), id_(std::move(id)), model_lock_(model_lock) {}

  absl::Status Planned(const laser::SweepRunner& runner, const pb::Progress& p) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    LASERD_RETURN_IF_ERROR(StoppedLocked());
    pb::Job next = r_.running_;
    next.mutable_progress()->set_interventions_total(p.interventions_total());
    next.set_validation_examples(static_cast<int64_t>(runner.split().validation.size()));
    next.set_test_examples(static_cast<int64_t>(runner.split().test.size()));
    return r_.SaveRunningLocked(std::move(next));
  }
  absl::Status Continue() override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    if (r_.stop_) return absl::AbortedError("server stopping");
    if (r_.cancel_) return absl::CancelledError("job cancelled");
    return absl::OkStatus();
  }
  absl::Status EnterPhase(pb::JobPhase phase) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    LASERD_RETURN_IF_ERROR(StoppedLocked());
    pb::Job next = r_.running_;
    next.mutable_progress()->set_phase(phase);
    // (The closures outlive this sink when their write is owed.)
    JobRunner* r = &r_;
    LASERD_RETURN_IF_ERROR(
        r_.SaveRunningLocked(std::move(next), [r, id = id_] { r->PublishProgressLocked(id); }));
    last_progress_event_ = Clock::now();
    return absl::OkStatus();
  }
  // The baseline and its example outputs in one transaction (the store keeps
  // the baseline's outputs for every job: GetSignificance and a resumed run
  // test against them).
  absl::Status StoreBaseline(const pb::Evaluation& baseline,
                             const pb::ExampleOutputs& outputs) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    LASERD_RETURN_IF_ERROR(StoppedLocked());
    pb::Job next = r_.running_;
    *next.mutable_baseline() = baseline;
    *next.mutable_update_time() = ProtoNow();
    JobRunner* r = &r_;
    auto kept = std::make_shared<const pb::ExampleOutputs>(outputs);
    return r_.WriteLocked([r, next, kept] { return r->store_.UpdateJob(next, kept.get()); },
                          [r, id = id_, baseline, next] {
                            r->running_ = next;
                            pb::WatchJobEvent ev;
                            *ev.mutable_time() = ProtoNow();
                            *ev.mutable_baseline() = baseline;
                            r->PublishLocked(id, ev, false);
                          },
                          /*owe=*/true);
  }
  absl::Status StoreBaselineOutputs(const pb::ExampleOutputs& outputs) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    LASERD_RETURN_IF_ERROR(StoppedLocked());
    pb::Job next = r_.running_;
    *next.mutable_update_time() = ProtoNow();
    JobRunner* r = &r_;
    auto kept = std::make_shared<const pb::ExampleOutputs>(outputs);
    return r_.WriteLocked([r, next, kept] { return r->store_.UpdateJob(next, kept.get()); },
                          [r, next] { r->running_ = next; }, /*owe=*/true);
  }
  // Commits the result with the job's new progress, then streams it.
  absl::Status StoreResult(const pb::Result& result, const SweepProgress& s,
                           const pb::ExampleOutputs* outputs) override {
    {
      std::lock_guard<std::mutex> lock(r_.mu_);
      LASERD_RETURN_IF_ERROR(StoppedLocked());
      pb::Job next = r_.running_;
      next.set_result_count(result.index() + 1);
      *next.mutable_progress() = s.progress;
      if (s.best_composition) *next.mutable_best_composition() = *s.best_composition;
      *next.mutable_update_time() = ProtoNow();
      const double ips = s.progress.interventions_per_second();
      JobRunner* r = &r_;
      std::shared_ptr<const pb::ExampleOutputs> kept;
      if (outputs != nullptr) kept = std::make_shared<const pb::ExampleOutputs>(*outputs);
      LASERD_RETURN_IF_ERROR(r_.WriteLocked(
          [r, result, next, kept] { return r->store_.AppendResult(result, next, kept.get()); },
          [r, id = id_, result, next, ips] {
            r->running_ = next;
            r->ips_ = ips;
            pb::WatchJobEvent ev;
            *ev.mutable_time() = ProtoNow();
            *ev.mutable_result() = result;
            r->PublishLocked(id, ev, false);
          },
          /*owe=*/true));
      if (Clock::now() - last_progress_event_ >= std::chrono::milliseconds(200)) {
        last_progress_event_ = Clock::now();
        r_.PublishProgressLocked(id_);
      }
    }
    r_.prometheus_.AddIntervention();
    r_.model_.YieldToReaders(*runner_, model_lock_);
    return Continue();
  }
  void SinglesRunning(laser::SweepRunner& runner, bool running) override {
    runner_ = &runner;
    r_.model_.ShareWhileSweeping(runner, model_lock_, running);
  }

 private:
  // Under the runner's lock: CANCELLED once the job is deleted, ABORTED once
  // a write of it failed (nothing more is written after that one).
  absl::Status StoppedLocked() const {
    if (r_.running_deleted_) return absl::CancelledError("job deleted");
    if (r_.interrupted_) return absl::AbortedError("the job store cannot be written");
    return absl::OkStatus();
  }
  JobRunner& r_;
  std::string id_;
  std::unique_lock<std::mutex>& model_lock_;
  laser::SweepRunner* runner_ = nullptr;
  Clock::time_point last_progress_event_;
};

absl::Status JobRunner::RunSweep(const std::string& id, const pb::SweepSpec& spec,
                                 Clock::time_point started, int64_t elapsed_before_ns) {
  LASERD_ASSIGN_OR_RETURN(const laser::SweepConfig cfg, inputs_.Config(spec));
  std::string source, pinned_sha256, run_sha256;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pinned_sha256 = running_.dataset_sha256();
  }
  LASERD_ASSIGN_OR_RETURN(const eval::Dataset ds,
                          inputs_.PinnedDataset(spec, pinned_sha256, &source, &run_sha256));
  {
    std::lock_guard<std::mutex> lock(mu_);
    pb::Job next = running_;
    next.set_run_dataset_sha256(run_sha256);
    LASERD_RETURN_IF_ERROR(SaveRunningLocked(std::move(next)));
  }
  std::unique_lock<std::mutex> model_lock = model_.LockForSweep();
  auto runner = laser::SweepRunner::Create(model_.models(), *model_.first().tokenizer, ds, cfg);
  if (!runner.ok()) return SpecError(runner.status());
  SweepJob job;
  job.id = id;
  LASERD_ASSIGN_OR_RETURN(job.stored, store_.Results(id));
  job.started = started;
  job.elapsed_before_ns = elapsed_before_ns;
  job.record_times = true;
  job.keep_example_outputs = spec.keep_example_outputs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_.has_baseline()) job.baseline = running_.baseline();
  }
  if (job.baseline) {
    LASERD_ASSIGN_OR_RETURN(auto base_outputs, store_.ReadExampleOutputs(id, -1, -1, 1));
    if (!base_outputs.empty()) job.baseline_outputs = std::move(base_outputs[0]);
  }
  StoreSink sink(*this, id, model_lock);
  return RunSweepJob(**runner, job, sink).status();
}

void JobRunner::RunJob(const std::string& id) {
  pb::SweepSpec spec;
  int64_t elapsed_before_ns = 0;
  absl::Status started;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const pb::JobState prev = running_.state();
    pb::Job next = running_;
    started = Transition(next, pb::JOB_STATE_RUNNING);
    if (started.ok()) {
      started = SaveRunningLocked(std::move(next), [this, id, prev] {
        PublishStateChangeLocked(id, prev, pb::JOB_STATE_RUNNING, false);
      });
    }
    spec = running_.spec();
    elapsed_before_ns = TimeUtil::DurationToNanoseconds(running_.progress().elapsed());
  }
  if (!started.ok()) {
    FinishRunning(started);
    return;
  }
  spdlog::info("job {} running", id);
  absl::Status st;
  // Nothing a job meets may end the process: an exception from the engine or
  // a library fails this job (and the next start does not run it again).
  try {
    st = RunSweep(id, spec, Clock::now(), elapsed_before_ns);
  } catch (const std::exception& e) {
    st = absl::InternalError(absl::StrCat("the job stopped on an exception: ", e.what()));
  }
  FinishRunning(st);
}

void JobRunner::FinishRunning(const absl::Status& st) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = running_id_;
  if (running_deleted_) {
    running_id_.clear();
    ips_ = 0;
    PublishStateChangeLocked(id, pb::JOB_STATE_RUNNING, pb::JOB_STATE_CANCELLED, true);
    return;
  }
  if (interrupted_) {
    // A store write failed: the job stays as the store holds it (RUNNING, or
    // QUEUED when it could not even start) and is not shown anything else; a
    // store error is never its FAILED reason. Once the owed write is stored it
    // is requeued; a restart requeues it too.
    ips_ = 0;
    if (owed_) {
      owed_->requeue = true;
      spdlog::warn(
          "job {} interrupted: the job store cannot be written ({}); it resumes once "
          "the store takes writes again, or at the next start",
          id, st.ToString());
    } else {
      // A mutating call stored the owed write while the run was ending.
      RequeueRunningLocked();
    }
    return;
  }
  // A shutdown interrupts the job; one whose cancellation was requested ends
  // CANCELLED below, any other resumes at the next start.
  if (stop_ && !st.ok() && !cancel_) {
    running_id_.clear();
    spdlog::info("job {} interrupted by shutdown; it resumes at the next start", id);
    return;  // stays RUNNING in the store: requeued at the next start
  }
  pb::JobState final_state;
  if (st.ok()) {
    final_state = pb::JOB_STATE_SUCCEEDED;
  } else if (cancel_) {
    final_state = pb::JOB_STATE_CANCELLED;
  } else {
    final_state = pb::JOB_STATE_FAILED;
  }
  pb::Job next = running_;
  if (absl::Status t = Transition(next, final_state); !t.ok()) {
    spdlog::error("{}", t.ToString());
    running_id_.clear();
    return;
  }
  if (final_state == pb::JOB_STATE_FAILED) {
    next.mutable_error()->set_code(static_cast<int32_t>(st.code()));
    next.mutable_error()->set_message(std::string(st.message()));
  }
  const std::string outcome = st.ok() ? "" : absl::StrCat(" (", st.ToString(), ")");
  absl::Status saved = SaveRunningLocked(std::move(next), [this, id, final_state, outcome] {
    // The final progress (done, best) before the terminal state change.
    PublishProgressLocked(id);
    PublishStateChangeLocked(id, pb::JOB_STATE_RUNNING, final_state, true,
                             final_state == pb::JOB_STATE_FAILED ? &running_.error() : nullptr);
    spdlog::info("job {} {}: {} results{}", id, StateName(final_state), running_.result_count(),
                 outcome);
    running_id_.clear();
    ips_ = 0;
  });
  if (!saved.ok()) {
    ips_ = 0;
    if (!owed_) running_id_.clear();
    spdlog::warn("job {} ended {}{} but that is not stored ({}); it stays as stored until it is",
                 id, StateName(final_state), outcome, saved.ToString());
  }
}

}  // namespace laserd::server
