#include "server/job_state.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/proto_time.h"

namespace laserd::server {

namespace pb = ::laser::v1;

bool Terminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

std::string StateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(n, "JOB_STATE_"));
}

bool TransitionAllowed(pb::JobState from, pb::JobState to) {
  switch (from) {
    case pb::JOB_STATE_QUEUED:
      return to == pb::JOB_STATE_RUNNING || to == pb::JOB_STATE_CANCELLED;
    case pb::JOB_STATE_RUNNING:
      return to == pb::JOB_STATE_SUCCEEDED || to == pb::JOB_STATE_FAILED ||
             to == pb::JOB_STATE_CANCELLED || to == pb::JOB_STATE_QUEUED;
    default:
      return false;  // terminal, or not a state
  }
}

absl::Status Transition(pb::Job& job, pb::JobState to) {
  if (!TransitionAllowed(job.state(), to)) {
    return absl::InternalError(absl::StrCat("job ", job.id(), ": no transition from ",
                                            StateName(job.state()), " to ", StateName(to)));
  }
  job.set_state(to);
  *job.mutable_update_time() = ProtoNow();
  if (to == pb::JOB_STATE_RUNNING) {
    if (!job.has_start_time()) *job.mutable_start_time() = job.update_time();
    job.mutable_progress()->set_phase(pb::JOB_PHASE_PREPARING);
    return absl::OkStatus();
  }
  job.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
  job.mutable_progress()->clear_eta();
  if (Terminal(to)) *job.mutable_end_time() = job.update_time();
  return absl::OkStatus();
}

}  // namespace laserd::server
