// The jobs of `laserd serve`: the queue (priority, then arrival), the one
// worker thread that runs a job at a time, the running job's canonical state,
// and the watchers of each job. Every change of a job's state happens here,
// through the state machine of server/job_state.h: queued on creation, queued
// again after an interruption, running, and succeeded, failed or cancelled.
//
// Durable before visible: a change of state, progress or results becomes the
// runner's copy (what GetJob, ListJobs, watchers, /api/status and /metrics
// show) only once the JobStore has committed it. A store write that fails
// changes nothing a reader sees; the runner reports the fault (the server
// turns NOT_SERVING), stops the running job where it is, and owes the store
// that write: it retries it every few seconds and before every mutating call
// (which answers the store's error while it still fails), and once it is
// stored publishes it and requeues the interrupted job.
#ifndef LASERD_SERVER_JOB_RUNNER_H_
#define LASERD_SERVER_JOB_RUNNER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "laser/v1/sweep.pb.h"
#include "server/job_spec.h"
#include "server/job_state.h"
#include "server/job_store.h"
#include "server/prometheus.h"
#include "server/resident_model.h"

namespace laserd::server {

class WatchReactor;

class JobRunner {
 public:
  // Told the error of a store write that failed, and OK once the store takes
  // writes again; called under the runner's lock (it must not call back).
  using StoreObserver = std::function<void(const absl::Status& fault)>;
  // How often the worker retries a store write it owes.
  static constexpr std::chrono::milliseconds kStoreRetryInterval{2000};

  JobRunner(JobStore& store, ResidentModel& model, PrometheusMetrics& prometheus, JobInputs inputs,
            int64_t max_queued, StoreObserver on_store_fault = nullptr);
  ~JobRunner();

  // Queues the jobs a stopped server left unfinished (a running one again
  // from its stored results) and starts the worker.
  absl::Status Start();
  // Stops the worker; the running job stays RUNNING in the store and resumes
  // at the next start.
  void Stop();

  // The three mutating calls first retry a store write the runner owes and,
  // while it still fails, answer its error (RESOURCE_EXHAUSTED for a full
  // disk) without changing anything; an error of their own write is answered
  // the same way.
  //
  // Stores a new job (its spec and totals filled in) as QUEUED under a fresh
  // id and queues it. RESOURCE_EXHAUSTED when the queue is full;
  // ALREADY_EXISTS when its request_id is taken.
  absl::StatusOr<::laser::v1::Job> Enqueue(::laser::v1::Job job);
  // The job's current state: the running one's copy (as stored), else the
  // stored. NOT_FOUND from the moment it is deleted.
  absl::StatusOr<::laser::v1::Job> Get(const std::string& id);
  // A queued job is cancelled at once; a running one when its current
  // intervention ends (acknowledged once cancel_requested is stored).
  absl::StatusOr<::laser::v1::Job> Cancel(const std::string& id);
  // Deletes the job and its results; unless `force`, only a finished one.
  absl::Status Delete(const std::string& id, bool force);

  // Starts a watch: queues the job and its results from `from_index` on `w`,
  // then registers `w` for live events (or finishes it for a finished job).
  absl::Status Watch(const std::string& id, int64_t from_index, WatchReactor* w);
  void EndWatch(WatchReactor* w);

  // Sampled for /metrics and /api/status.
  struct Load {
    int64_t queue_depth = 0;
    double interventions_per_second = 0;  // of the running job; 0 when idle
    std::string running_job;              // empty when idle
  };
  Load CurrentLoad();
  // Replaces a stored job by the running job's copy when it is that one.
  void Refresh(::laser::v1::Job* job);

 private:
  class StoreSink;
  struct Queued {
    std::string id;
    int32_t priority;
    int64_t seq;
  };
  // A store write the runner owes: `write` failed; once it succeeds,
  // `stored` makes it visible, and an interrupted job is requeued.
  struct Owed {
    std::function<absl::Status()> write;
    std::function<void()> stored;
    bool requeue = false;
  };
  void WorkerLoop();
  void RunJob(const std::string& id);
  absl::Status RunSweep(const std::string& id, const ::laser::v1::SweepSpec& spec,
                        std::chrono::steady_clock::time_point started, int64_t elapsed_before_ns);
  void FinishRunning(const absl::Status& st);
  void RemoveFromQueueLocked(const std::string& id);
  // Whether `id` is the running job and not deleted.
  bool LiveLocked(const std::string& id) const;
  // Under mu_: runs the store write `write`; when it succeeds runs `stored`
  // (which makes the write visible) and ends a store fault. A store error
  // (anything but NOT_FOUND or ALREADY_EXISTS, which are answers) starts a
  // fault; with `owe` the runner then owes the write (owed_).
  absl::Status WriteLocked(std::function<absl::Status()> write, std::function<void()> stored,
                           bool owe);
  // Stores `next` as the running job (with a new update time), then makes it
  // the runner's copy and runs `publish`; an owed write when it fails.
  absl::Status SaveRunningLocked(::laser::v1::Job next, std::function<void()> publish = nullptr);
  // Retries the owed write, if any: OK when none is owed any more, else the
  // store's error.
  absl::Status SettleOwedLocked();
  // The interrupted running job back to QUEUED (CANCELLED when its
  // cancellation was requested), stored, then published and queued.
  void RequeueRunningLocked();
  void SetFaultLocked(const absl::Status& s);
  void ClearFaultLocked();
  void PublishLocked(const std::string& job_id, const ::laser::v1::WatchJobEvent& ev,
                     bool terminal);
  void PublishStateChangeLocked(const std::string& job_id, ::laser::v1::JobState previous,
                                ::laser::v1::JobState current, bool terminal,
                                const ::laser::v1::JobError* error = nullptr);
  void PublishProgressLocked(const std::string& job_id);

  JobStore& store_;
  ResidentModel& model_;
  PrometheusMetrics& prometheus_;
  const JobInputs inputs_;
  const int64_t max_queued_;
  const StoreObserver on_store_fault_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;
  bool stop_ = false;
  std::string running_id_;
  int64_t running_seq_ = 0;
  // The running job as the store holds it (the only copy readers see).
  ::laser::v1::Job running_;
  bool cancel_ = false;
  bool running_deleted_ = false;
  bool interrupted_ = false;  // a write of the running job failed: it stops as stored
  absl::Status store_fault_;  // the last store write's error; OK when it worked
  std::optional<Owed> owed_;  // the store write the runner owes, if any
  double ips_ = 0;
  std::map<std::string, std::set<WatchReactor*>> watchers_;
  std::thread worker_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_JOB_RUNNER_H_
