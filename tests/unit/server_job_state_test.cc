// The job state machine (server/job_state.h): exactly the listed transitions
// are allowed, a terminal state never changes, and Transition stamps the
// fields that belong to a change and leaves a refused job as it was.
#include <set>
#include <utility>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/job_state.h"

namespace pb = ::laser::v1;

namespace {

using laserd::server::StateName;
using laserd::server::Terminal;
using laserd::server::Transition;
using laserd::server::TransitionAllowed;

const pb::JobState kAll[] = {pb::JOB_STATE_UNSPECIFIED, pb::JOB_STATE_QUEUED,
                             pb::JOB_STATE_RUNNING,     pb::JOB_STATE_SUCCEEDED,
                             pb::JOB_STATE_FAILED,      pb::JOB_STATE_CANCELLED};

TEST(JobStateTest, ExactlyTheListedTransitionsAreAllowed) {
  const std::set<std::pair<pb::JobState, pb::JobState>> allowed = {
      {pb::JOB_STATE_QUEUED, pb::JOB_STATE_RUNNING},
      {pb::JOB_STATE_QUEUED, pb::JOB_STATE_CANCELLED},
      {pb::JOB_STATE_RUNNING, pb::JOB_STATE_SUCCEEDED},
      {pb::JOB_STATE_RUNNING, pb::JOB_STATE_FAILED},
      {pb::JOB_STATE_RUNNING, pb::JOB_STATE_CANCELLED},
      {pb::JOB_STATE_RUNNING, pb::JOB_STATE_QUEUED},
  };
  for (pb::JobState from : kAll) {
    for (pb::JobState to : kAll) {
      EXPECT_EQ(TransitionAllowed(from, to), allowed.count({from, to}) == 1)
          << StateName(from) << " -> " << StateName(to);
    }
  }
}

TEST(JobStateTest, ATerminalStateNeverChanges) {
  for (pb::JobState from : kAll) {
    if (!Terminal(from)) continue;
    for (pb::JobState to : kAll) {
      pb::Job j;
      j.set_id("job-1");
      j.set_state(from);
      j.mutable_progress()->set_interventions_done(7);
      const pb::Job before = j;
      const absl::Status s = Transition(j, to);
      EXPECT_EQ(s.code(), absl::StatusCode::kInternal)
          << StateName(from) << " -> " << StateName(to);
      EXPECT_NE(s.message().find(StateName(from)), std::string::npos) << s;
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(j, before))
          << "a refused transition changed the job";
    }
  }
  EXPECT_TRUE(Terminal(pb::JOB_STATE_SUCCEEDED));
  EXPECT_TRUE(Terminal(pb::JOB_STATE_FAILED));
  EXPECT_TRUE(Terminal(pb::JOB_STATE_CANCELLED));
  EXPECT_FALSE(Terminal(pb::JOB_STATE_QUEUED));
  EXPECT_FALSE(Terminal(pb::JOB_STATE_RUNNING));
}

TEST(JobStateTest, TransitionStampsTheFieldsOfTheChange) {
  pb::Job j;
  j.set_id("job-1");
  j.set_state(pb::JOB_STATE_QUEUED);
  ASSERT_TRUE(Transition(j, pb::JOB_STATE_RUNNING).ok());
  EXPECT_EQ(j.state(), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(j.progress().phase(), pb::JOB_PHASE_PREPARING);
  ASSERT_TRUE(j.has_start_time());
  EXPECT_TRUE(j.has_update_time());
  EXPECT_FALSE(j.has_end_time());
  const auto first_start = j.start_time();

  // Interrupted and resumed: the first start time is kept.
  j.mutable_progress()->set_phase(pb::JOB_PHASE_SWEEPING);
  j.mutable_progress()->mutable_eta()->set_seconds(30);
  ASSERT_TRUE(Transition(j, pb::JOB_STATE_QUEUED).ok());
  EXPECT_EQ(j.progress().phase(), pb::JOB_PHASE_UNSPECIFIED);
  EXPECT_FALSE(j.progress().has_eta());
  EXPECT_FALSE(j.has_end_time());
  ASSERT_TRUE(Transition(j, pb::JOB_STATE_RUNNING).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(j.start_time(), first_start));

  ASSERT_TRUE(Transition(j, pb::JOB_STATE_FAILED).ok());
  EXPECT_EQ(j.state(), pb::JOB_STATE_FAILED);
  EXPECT_EQ(j.progress().phase(), pb::JOB_PHASE_UNSPECIFIED);
  ASSERT_TRUE(j.has_end_time());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(j.end_time(), j.update_time()));
}

TEST(JobStateTest, ANewJobCannotSkipTheQueue) {
  pb::Job j;
  j.set_state(pb::JOB_STATE_QUEUED);
  EXPECT_FALSE(Transition(j, pb::JOB_STATE_SUCCEEDED).ok());
  EXPECT_FALSE(Transition(j, pb::JOB_STATE_FAILED).ok());
  EXPECT_EQ(j.state(), pb::JOB_STATE_QUEUED);
}

}  // namespace
