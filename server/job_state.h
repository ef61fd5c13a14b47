// The job state machine of `laserd serve`, in one place:
//
//   QUEUED  -> RUNNING     the worker starts the job
//   QUEUED  -> CANCELLED   CancelJob or a forced DeleteJob while it waits
//   RUNNING -> SUCCEEDED   every intervention of the sweep is stored
//   RUNNING -> FAILED      the job cannot run (its reason in Job.error)
//   RUNNING -> CANCELLED   CancelJob (or a forced DeleteJob) stopped it
//   RUNNING -> QUEUED      the job was interrupted before its end (a restart,
//                          or a job store that could not be written and took
//                          writes again): it resumes from its stored results
//
// SUCCEEDED, FAILED and CANCELLED are terminal: a terminal state never
// changes. server/job_runner.cc makes every change through Transition.
#ifndef LASERD_SERVER_JOB_STATE_H_
#define LASERD_SERVER_JOB_STATE_H_

#include <string>

#include "absl/status/status.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::server {

// SUCCEEDED, FAILED or CANCELLED.
bool Terminal(::laser::v1::JobState s);
// "queued", "running", ...
std::string StateName(::laser::v1::JobState s);
// Whether the table above has the change from -> to (a state to itself is no
// change and not in it).
bool TransitionAllowed(::laser::v1::JobState from, ::laser::v1::JobState to);
// Moves `job` to `to` when the table allows it, stamping the job's fields
// that belong to the change (start_time on the first RUNNING, end_time on a
// terminal state, the phase and ETA of a job that is not running, update_time
// always); INTERNAL naming both states when it does not, `job` then unchanged.
absl::Status Transition(::laser::v1::Job& job, ::laser::v1::JobState to);

}  // namespace laserd::server

#endif  // LASERD_SERVER_JOB_STATE_H_
