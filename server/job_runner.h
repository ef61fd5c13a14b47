// The jobs of `laserd serve`: the queue (priority, then arrival), the one
// worker thread that runs a job at a time, the running job's canonical state,
// and the watchers of each job. Every change of a job's state happens here:
// queued on creation, queued again after a restart, running, and succeeded,
// failed or cancelled; each change is stored in the JobStore before it is
// published to the job's watchers, and every result is committed before it
// is streamed.
#ifndef LASERD_SERVER_JOB_RUNNER_H_
#define LASERD_SERVER_JOB_RUNNER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "laser/v1/sweep.pb.h"
#include "server/job_spec.h"
#include "server/job_store.h"
#include "server/prometheus.h"
#include "server/resident_model.h"

namespace laserd::server {

class WatchReactor;

// SUCCEEDED, FAILED or CANCELLED.
bool Terminal(::laser::v1::JobState s);
// "queued", "running", ...
std::string StateName(::laser::v1::JobState s);

class JobRunner {
 public:
  JobRunner(JobStore& store, ResidentModel& model, PrometheusMetrics& prometheus, JobInputs inputs,
            int64_t max_queued);
  ~JobRunner();

  // Queues the jobs a stopped server left unfinished (a running one again
  // from its stored results) and starts the worker.
  absl::Status Start();
  // Stops the worker; the running job stays RUNNING in the store and resumes
  // at the next start.
  void Stop();

  // Stores a new job (its spec and totals filled in) as QUEUED under a fresh
  // id and queues it. RESOURCE_EXHAUSTED when the queue is full;
  // ALREADY_EXISTS when its request_id is taken.
  absl::StatusOr<::laser::v1::Job> Enqueue(::laser::v1::Job job);
  // The job's current state: the running one's live copy, else the stored.
  absl::StatusOr<::laser::v1::Job> Get(const std::string& id);
  // A queued job is cancelled at once; a running one when its current
  // intervention ends.
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
  // Replaces a stored job by the running job's live copy when it is that one.
  void Refresh(::laser::v1::Job* job);

 private:
  class StoreSink;
  struct Queued {
    std::string id;
    int32_t priority;
    int64_t seq;
  };
  void WorkerLoop();
  void RunJob(const std::string& id);
  absl::Status RunSweep(const std::string& id, const ::laser::v1::SweepSpec& spec,
                        std::chrono::steady_clock::time_point started, int64_t elapsed_before_ns);
  void FinishRunning(const absl::Status& st);
  void RemoveFromQueueLocked(const std::string& id);
  // Under mu_: the running job stored (with a new update time), or an event
  // published to a job's watchers.
  absl::Status SaveRunningLocked();
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

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;
  bool stop_ = false;
  std::string running_id_;
  ::laser::v1::Job running_;  // the running job's current state (canonical copy)
  bool cancel_ = false;
  bool running_deleted_ = false;
  double ips_ = 0;
  std::map<std::string, std::set<WatchReactor*>> watchers_;
  std::thread worker_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_JOB_RUNNER_H_
