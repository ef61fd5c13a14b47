#include "server/job_runner.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
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

bool Terminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

std::string StateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(n, "JOB_STATE_"));
}

JobRunner::JobRunner(JobStore& store, ResidentModel& model, PrometheusMetrics& prometheus,
                     JobInputs inputs, int64_t max_queued)
    : store_(store),
      model_(model),
      prometheus_(prometheus),
      inputs_(std::move(inputs)),
      max_queued_(max_queued) {}

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
        j.set_state(pb::JOB_STATE_CANCELLED);
        j.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
        j.mutable_progress()->clear_eta();
        *j.mutable_end_time() = ProtoNow();
        *j.mutable_update_time() = j.end_time();
        LASERD_RETURN_IF_ERROR(store_.UpdateJob(j));
        ++cancelled;
        continue;
      }
      if (j.state() == pb::JOB_STATE_RUNNING) {
        // Stopped by a crash or shutdown: run again; stored results are skipped.
        j.set_state(pb::JOB_STATE_QUEUED);
        j.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
        *j.mutable_update_time() = ProtoNow();
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
  if (static_cast<int64_t>(queue_.size()) >= max_queued_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", queue_.size(), " jobs; --max-queued)"));
  }
  job.set_id(RandomId());
  job.set_state(pb::JOB_STATE_QUEUED);
  *job.mutable_create_time() = ProtoNow();
  *job.mutable_update_time() = job.create_time();
  LASERD_ASSIGN_OR_RETURN(const int64_t seq, store_.InsertJob(job));
  queue_.push_back({job.id(), job.spec().priority(), seq});
  cv_.notify_all();
  return job;
}

absl::StatusOr<pb::Job> JobRunner::Get(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (id == running_id_) return running_;
  }
  LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
  return sj.job;
}

void JobRunner::Refresh(pb::Job* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (job->id() == running_id_) *job = running_;
}

JobRunner::Load JobRunner::CurrentLoad() {
  std::lock_guard<std::mutex> lock(mu_);
  Load l;
  l.queue_depth = static_cast<int64_t>(queue_.size());
  l.interventions_per_second = running_id_.empty() ? 0 : ips_;
  l.running_job = running_id_;
  return l;
}

void JobRunner::RemoveFromQueueLocked(const std::string& id) {
  queue_.erase(
      std::remove_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.id == id; }),
      queue_.end());
}

absl::StatusOr<pb::Job> JobRunner::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id == running_id_) {
    cancel_ = true;
    running_.set_cancel_requested(true);
    // Acknowledged only once stored: a restart then ends the job CANCELLED.
    // (The job stops here either way.)
    LASERD_RETURN_IF_ERROR(SaveRunningLocked());
    spdlog::info("job {}: cancel requested", id);
    return running_;
  }
  LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
  pb::Job j = sj.job;
  switch (j.state()) {
    case pb::JOB_STATE_CANCELLED:
      return j;
    case pb::JOB_STATE_QUEUED: {
      RemoveFromQueueLocked(id);
      j.set_state(pb::JOB_STATE_CANCELLED);
      *j.mutable_end_time() = ProtoNow();
      *j.mutable_update_time() = j.end_time();
      LASERD_RETURN_IF_ERROR(store_.UpdateJob(j));
      PublishStateChangeLocked(id, pb::JOB_STATE_QUEUED, pb::JOB_STATE_CANCELLED, true);
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
  pb::JobState state;
  if (id == running_id_) {
    state = pb::JOB_STATE_RUNNING;
  } else {
    LASERD_ASSIGN_OR_RETURN(StoredJob sj, store_.GetJob(id));
    state = sj.job.state();
  }
  if (!Terminal(state) && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", StateName(state), "; cancel it first or set force"));
  }
  LASERD_RETURN_IF_ERROR(store_.DeleteJob(id));
  if (id == running_id_) {
    cancel_ = true;
    running_deleted_ = true;
  } else if (state == pb::JOB_STATE_QUEUED) {
    RemoveFromQueueLocked(id);
    PublishStateChangeLocked(id, state, pb::JOB_STATE_CANCELLED, true);
  }
  spdlog::info("job {} deleted", id);
  return absl::OkStatus();
}

absl::Status JobRunner::Watch(const std::string& id, int64_t from_index, WatchReactor* w) {
  std::lock_guard<std::mutex> lock(mu_);
  pb::Job job;
  if (id == running_id_) {
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
      cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && model_.ready()); });
      if (stop_) return;
      auto best =
          std::min_element(queue_.begin(), queue_.end(), [](const Queued& a, const Queued& b) {
            return a.priority != b.priority ? a.priority > b.priority : a.seq < b.seq;
          });
      id = best->id;
      queue_.erase(best);
      auto sj = store_.GetJob(id);
      if (!sj.ok()) continue;  // deleted meanwhile
      running_id_ = id;
      running_ = sj->job;
      cancel_ = false;
      running_deleted_ = false;
    }
    RunJob(id);
  }
}

absl::Status JobRunner::SaveRunningLocked() {
  *running_.mutable_update_time() = ProtoNow();
  return store_.UpdateJob(running_);
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
// events of its watchers, under the runner's lock.
class JobRunner::StoreSink : public SweepSink {
 public:
  StoreSink(JobRunner& r, std::string id, std::unique_lock<std::mutex>& model_lock)
      : r_(r), id_(std::move(id)), model_lock_(model_lock) {}

  absl::Status Planned(const laser::SweepRunner& runner, const pb::Progress& p) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    r_.running_.mutable_progress()->set_interventions_total(p.interventions_total());
    r_.running_.set_validation_examples(static_cast<int64_t>(runner.split().validation.size()));
    r_.running_.set_test_examples(static_cast<int64_t>(runner.split().test.size()));
    r_.SaveRunningLocked().IgnoreError();
    return absl::OkStatus();
  }
  absl::Status Continue() override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    if (r_.stop_) return absl::AbortedError("server stopping");
    if (r_.cancel_) return absl::CancelledError("job cancelled");
    return absl::OkStatus();
  }
  absl::Status EnterPhase(pb::JobPhase phase) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    r_.running_.mutable_progress()->set_phase(phase);
    r_.SaveRunningLocked().IgnoreError();
    last_progress_event_ = Clock::now();
    r_.PublishProgressLocked(id_);
    return absl::OkStatus();
  }
  absl::Status StoreBaseline(const pb::Evaluation& baseline) override {
    std::lock_guard<std::mutex> lock(r_.mu_);
    *r_.running_.mutable_baseline() = baseline;
    LASERD_RETURN_IF_ERROR(r_.SaveRunningLocked());
    pb::WatchJobEvent ev;
    *ev.mutable_time() = ProtoNow();
    *ev.mutable_baseline() = baseline;
    r_.PublishLocked(id_, ev, false);
    return absl::OkStatus();
  }
  // Commits the result with the job's new progress, then streams it.
  absl::Status StoreResult(const pb::Result& result, const SweepProgress& s) override {
    {
      std::lock_guard<std::mutex> lock(r_.mu_);
      if (r_.running_deleted_) return absl::CancelledError("job deleted");
      pb::Job next = r_.running_;
      next.set_result_count(result.index() + 1);
      *next.mutable_progress() = s.progress;
      if (s.best_composition) *next.mutable_best_composition() = *s.best_composition;
      *next.mutable_update_time() = ProtoNow();
      LASERD_RETURN_IF_ERROR(r_.store_.AppendResult(result, next));
      r_.running_ = std::move(next);
      r_.ips_ = s.progress.interventions_per_second();
      pb::WatchJobEvent ev;
      *ev.mutable_time() = ProtoNow();
      *ev.mutable_result() = result;
      r_.PublishLocked(id_, ev, false);
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
    running_.set_run_dataset_sha256(run_sha256);
    SaveRunningLocked().IgnoreError();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_.has_baseline()) job.baseline = running_.baseline();
  }
  StoreSink sink(*this, id, model_lock);
  return RunSweepJob(**runner, job, sink).status();
}

void JobRunner::RunJob(const std::string& id) {
  pb::SweepSpec spec;
  int64_t elapsed_before_ns = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const pb::JobState prev = running_.state();
    running_.set_state(pb::JOB_STATE_RUNNING);
    if (!running_.has_start_time()) *running_.mutable_start_time() = ProtoNow();
    running_.mutable_progress()->set_phase(pb::JOB_PHASE_PREPARING);
    SaveRunningLocked().IgnoreError();
    PublishStateChangeLocked(id, prev, pb::JOB_STATE_RUNNING, false);
    spec = running_.spec();
    elapsed_before_ns = TimeUtil::DurationToNanoseconds(running_.progress().elapsed());
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
  // A shutdown interrupts the job; one whose cancellation was requested ends
  // CANCELLED below, any other resumes at the next start.
  if (stop_ && !st.ok() && !cancel_) {
    running_id_.clear();
    spdlog::info("job {} interrupted by shutdown; it resumes at the next start", id);
    return;  // stays RUNNING in the store: requeued at the next start
  }
  if (running_deleted_) {
    running_id_.clear();
    PublishStateChangeLocked(id, pb::JOB_STATE_RUNNING, pb::JOB_STATE_CANCELLED, true);
    return;
  }
  pb::JobState final_state;
  if (st.ok()) {
    final_state = pb::JOB_STATE_SUCCEEDED;
  } else if (cancel_) {
    final_state = pb::JOB_STATE_CANCELLED;
  } else {
    final_state = pb::JOB_STATE_FAILED;
    running_.mutable_error()->set_code(static_cast<int32_t>(st.code()));
    running_.mutable_error()->set_message(std::string(st.message()));
  }
  running_.set_state(final_state);
  running_.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
  running_.mutable_progress()->clear_eta();
  *running_.mutable_end_time() = ProtoNow();
  if (auto s = SaveRunningLocked(); !s.ok()) spdlog::error("job {}: {}", id, s.ToString());
  // The final progress (done, best) before the terminal state change.
  PublishProgressLocked(id);
  PublishStateChangeLocked(id, pb::JOB_STATE_RUNNING, final_state, true,
                           final_state == pb::JOB_STATE_FAILED ? &running_.error() : nullptr);
  running_id_.clear();
  ips_ = 0;
  spdlog::info("job {} {}: {} results{}", id, StateName(final_state), running_.result_count(),
               st.ok() ? "" : absl::StrCat(" (", st.ToString(), ")"));
}

}  // namespace laserd::server
