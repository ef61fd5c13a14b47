// An acknowledged cancellation survives the server: CancelJob's
// cancel_requested is stored with the job, a restart ends such a job
// CANCELLED instead of running it again, and a shutdown (SIGTERM) that
// interrupts a cancel-requested job ends it CANCELLED. A running job deleted
// with force is gone for readers at once (NOT_FOUND), not RUNNING until its
// intervention in flight ends.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/job_store.h"
#include "tests/e2e/server_harness.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd_test::Server;

class ServerCancelRestartTest : public laserd_test::ServerFixture {
 protected:
  // A job long enough to be running when it is cancelled or deleted, once it
  // runs.
  pb::Job StartALongJob() {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path((root_ / "data" / "big.jsonl").string());
    for (int i = 1; i <= 100; ++i) s.mutable_rho()->add_values(i / 100.0);
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    pb::Job j;
    EXPECT_TRUE(server_->Create(s, &j).ok());
    for (int i = 0; i < 2000 && server_->Get(j.id()).state() == pb::JOB_STATE_QUEUED; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return j;
  }
  // StartALongJob, cancelled once it runs; the reply of CancelJob.
  pb::Job StartAndCancelALongJob() {
    const pb::Job j = StartALongJob();
    pb::Job out;
    EXPECT_TRUE(server_->Cancel(j.id(), &out).ok());
    return out;
  }
  // The job as the (stopped) server stored it.
  pb::Job Stored(const std::string& id) {
    auto store = laserd::server::JobStore::Open((root_ / "state").string());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return pb::Job();
    auto sj = (*store)->GetJob(id);
    EXPECT_TRUE(sj.ok()) << sj.status();
    return sj.ok() ? sj->job : pb::Job();
  }
};

TEST_F(ServerCancelRestartTest, ACancelAcknowledgedBeforeAKillEndsCancelledAfterRestart) {
  const pb::Job acked = StartAndCancelALongJob();
  ASSERT_EQ(acked.state(), pb::JOB_STATE_RUNNING);
  ASSERT_TRUE(acked.cancel_requested());
  server_->Kill(SIGKILL);
  pb::Job stored = Stored(acked.id());
  if (stored.state() == pb::JOB_STATE_CANCELLED) {
    // The worker stopped the job before the kill: put the store back in the
    // state of a kill between the acknowledgement and the stop.
    auto store = laserd::server::JobStore::Open((root_ / "state").string());
    ASSERT_TRUE(store.ok());
    stored.set_state(pb::JOB_STATE_RUNNING);
    stored.clear_end_time();
    ASSERT_TRUE((*store)->UpdateJob(stored).ok());
  }
  ASSERT_EQ(stored.state(), pb::JOB_STATE_RUNNING);
  ASSERT_TRUE(stored.cancel_requested()) << "the acknowledged request was not stored";
  const int64_t results_before = stored.result_count();

  server_->Start();
  grpc::Status st;
  server_->Watch(acked.id(), 0, &st);
  const pb::Job after = server_->Get(acked.id());
  EXPECT_EQ(after.state(), pb::JOB_STATE_CANCELLED);
  EXPECT_EQ(after.result_count(), results_before) << "the job ran again after the restart";
  EXPECT_TRUE(after.has_end_time());
}

TEST_F(ServerCancelRestartTest, AShutdownEndsACancelRequestedJobCancelled) {
  const pb::Job acked = StartAndCancelALongJob();
  ASSERT_TRUE(acked.cancel_requested());
  server_->Kill(SIGTERM);
  EXPECT_EQ(Stored(acked.id()).state(), pb::JOB_STATE_CANCELLED);
}

TEST_F(ServerCancelRestartTest, AForceDeletedRunningJobIsGoneAtOnce) {
  for (int round = 0; round < 5; ++round) {
    const pb::Job j = StartALongJob();
    ASSERT_EQ(server_->Get(j.id()).state(), pb::JOB_STATE_RUNNING);
    {
      grpc::ClientContext ctx;
      Server::Auth(&ctx);
      pb::DeleteJobRequest req;
      req.set_job_id(j.id());
      req.set_force(true);
      google::protobuf::Empty out;
      ASSERT_TRUE(server_->sweeps().DeleteJob(&ctx, req, &out).ok());
    }
    // At once, while the worker may still be in the intervention in flight.
    {
      grpc::ClientContext ctx;
      Server::Auth(&ctx, laserd_test::kRead);
      pb::GetJobRequest req;
      req.set_job_id(j.id());
      pb::Job got;
      const grpc::Status st = server_->sweeps().GetJob(&ctx, req, &got);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND)
          << "round " << round << ": " << laserd_test::JsonOf(got);
    }
    {
      grpc::ClientContext ctx;
      Server::Auth(&ctx, laserd_test::kRead);
      pb::ListJobsResponse resp;
      ASSERT_TRUE(server_->sweeps().ListJobs(&ctx, pb::ListJobsRequest(), &resp).ok());
      for (const pb::Job& listed : resp.jobs()) EXPECT_NE(listed.id(), j.id());
    }
    pb::Job cancelled;
    EXPECT_EQ(server_->Cancel(j.id(), &cancelled).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
