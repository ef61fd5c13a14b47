// Retention of finished jobs (`laserd serve --job-retention`): when the server
// starts and then periodically, every SUCCEEDED, FAILED or CANCELLED job that
// ended longer ago than the retention is deleted with its results. Queued and
// running jobs are never touched, and nothing is deleted unless the operator
// sets a retention (docs/server.md).
#ifndef LASERD_SERVER_RETENTION_H_
#define LASERD_SERVER_RETENTION_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/job_runner.h"
#include "server/job_store.h"

namespace laserd::server {

// The value of --job-retention: a duration such as "720h", "90m", "30s",
// "1h30m" or "7d" (whole days). "" or "0": no retention (zero duration).
// A negative or unparsable value is INVALID_ARGUMENT.
absl::StatusOr<absl::Duration> ParseJobRetention(const std::string& flag);

// How often a retention is applied: a tenth of it, at least 1 second and at
// most 10 minutes; a job is deleted at most that long after it is due.
absl::Duration RetentionCheckInterval(absl::Duration retention);

class JobRetention {
 public:
  // A zero `retention` deletes nothing and starts no thread.
  JobRetention(JobStore& store, JobRunner& jobs, absl::Duration retention)
      : store_(store), jobs_(jobs), retention_(retention) {}
  ~JobRetention() { Stop(); }

  // Applies the retention once, then every RetentionCheckInterval on a thread.
  absl::Status Start();
  void Stop();

  // One pass: deletes the finished jobs whose end_time (update_time when it
  // has none) is before `now` - retention. Returns how many were deleted.
  absl::StatusOr<int> DeleteExpired(absl::Time now);

 private:
  void Loop();

  JobStore& store_;
  JobRunner& jobs_;
  const absl::Duration retention_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_RETENTION_H_
