// The datasets of `laserd serve` over their life: a job is pinned to the
// content of its dataset file (a file changed between a kill and the restart
// fails the job, naming the path and both digests, unless the spec allows
// it), uploaded datasets are deleted with DeleteDataset (refused while a
// queued or running job uses them), uploads stay within --dataset-quota-bytes,
// and --job-retention deletes old finished jobs but never queued or running
// ones.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/empty.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/job_store.h"
#include "tests/e2e/server_harness.h"
#include "tests/e2e/server_test_fixture.h"
#include "tests/support/fixtures.h"
#include "tests/support/sha256.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd::test_support::CapitalsDataset;
using laserd::test_support::Sha256Hex;
using laserd_test::kRead;
using laserd_test::kWrite;
using laserd_test::ServerTest;

class ServerDatasetsTest : public ServerTest {
 protected:
  // A sweep long enough to be running for a while on the tiny model: 14
  // matrices × `n` kept fractions.
  pb::SweepSpec LongSpec(const std::string& data, int n = 100) {
    std::vector<double> rhos;
    for (int i = 1; i <= n; ++i) rhos.push_back(static_cast<double>(i) / n);
    return Spec(data, rhos);
  }
  // Polls GetJob until `done` holds (at most `seconds`); the last job seen.
  pb::Job WaitFor(const std::string& id, const std::function<bool(const pb::Job&)>& done,
                  int seconds = 60) {
    pb::Job j;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      j = server_->Get(id);
      if (done(j)) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return j;
  }
  static bool Finished(const pb::Job& j) {
    return j.state() == pb::JOB_STATE_SUCCEEDED || j.state() == pb::JOB_STATE_FAILED ||
           j.state() == pb::JOB_STATE_CANCELLED;
  }
  // Creates `spec`'s job, kills the server (SIGKILL) once it has stored a
  // result, and leaves the job RUNNING in the store as a kill mid-run does.
  std::string KillMidRun(const pb::SweepSpec& spec) {
    pb::Job j;
    EXPECT_TRUE(server_->Create(spec, &j).ok());
    WaitFor(j.id(), [](const pb::Job& x) { return x.result_count() > 0 || Finished(x); });
    server_->Kill(SIGKILL);
    auto store = laserd::server::JobStore::Open((root_ / "state").string());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return j.id();
    auto sj = (*store)->GetJob(j.id());
    EXPECT_TRUE(sj.ok()) << sj.status();
    if (sj.ok() && sj->job.state() != pb::JOB_STATE_RUNNING) {
      // It finished before the kill: put the store back in the state of a
      // kill mid-run.
      pb::Job stored = sj->job;
      stored.set_state(pb::JOB_STATE_RUNNING);
      stored.clear_end_time();
      EXPECT_TRUE((*store)->UpdateJob(stored).ok());
    }
    return j.id();
  }
  grpc::Status DeleteDataset(const std::string& id, const char* token = kWrite) {
    grpc::ClientContext ctx;
    laserd_test::Server::Auth(&ctx, token);
    pb::DeleteDatasetRequest req;
    req.set_dataset_id(id);
    google::protobuf::Empty empty;
    return server_->datasets().DeleteDataset(&ctx, req, &empty);
  }
  grpc::Status GetDataset(const std::string& id) {
    grpc::ClientContext ctx;
    laserd_test::Server::Auth(&ctx, kRead);
    pb::GetDatasetRequest req;
    req.set_dataset_id(id);
    pb::Dataset d;
    return server_->datasets().GetDataset(&ctx, req, &d);
  }
  void Restart(std::vector<std::string> extra_args) {
    server_->Kill(SIGTERM);
    server_->extra_args = std::move(extra_args);
    server_->Start();
  }
  // big.jsonl with one answer changed: same size, other examples.
  static std::string ChangedBig() {
    const std::string changed =
        absl::StrReplaceAll(CapitalsDataset(60),
                            {{"(0) is\", \"answer\": \" Paris", "(0) is\", \"answer\": \" Lyons"}});
    EXPECT_NE(changed, CapitalsDataset(60));
    return changed;
  }
};

TEST_F(ServerDatasetsTest, CreateSweepPinsTheDatasetDigest) {
  pb::Job j;
  ASSERT_TRUE(server_->Create(Spec("small.jsonl", {0.5}), &j).ok());
  EXPECT_EQ(j.dataset_sha256(), Sha256Hex(CapitalsDataset(20)));
  const pb::Job done = WaitFor(j.id(), Finished);
  ASSERT_EQ(done.state(), pb::JOB_STATE_SUCCEEDED) << done.error().message();
  EXPECT_EQ(done.dataset_sha256(), Sha256Hex(CapitalsDataset(20)));
  EXPECT_EQ(done.run_dataset_sha256(), Sha256Hex(CapitalsDataset(20)));

  grpc::Status st;
  const pb::Dataset d = server_->Upload(CapitalsDataset(20), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  pb::SweepSpec s = Spec("small.jsonl", {0.5});
  s.mutable_dataset()->set_dataset_id(d.id());
  ASSERT_TRUE(server_->Create(s, &j).ok());
  EXPECT_EQ(j.dataset_sha256(), d.id());
}

TEST_F(ServerDatasetsTest, AFileChangedBetweenAKillAndTheRestartFailsTheJob) {
  const fs::path big = root_ / "data" / "big.jsonl";
  const std::string id = KillMidRun(LongSpec("big.jsonl"));
  const std::string before = Sha256Hex(CapitalsDataset(60));
  const std::string after = Sha256Hex(ChangedBig());
  std::ofstream(big, std::ios::trunc) << ChangedBig();

  server_->Start();
  const pb::Job j = WaitFor(id, Finished);
  ASSERT_EQ(j.state(), pb::JOB_STATE_FAILED) << j.error().message();
  EXPECT_EQ(j.error().code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(j.error().message(),
            absl::StrCat("spec.dataset.path: '", big.string(),
                         "' changed since the job was created: its sha256 was ", before,
                         " and is now ", after,
                         "; the job does not run on different examples than it was created "
                         "with (restore the file, or create the job again with "
                         "spec.dataset.allow_changed_file to run on the current file)"));
  EXPECT_EQ(j.dataset_sha256(), before);
  EXPECT_LT(j.result_count(), j.progress().interventions_total());
}

TEST_F(ServerDatasetsTest, AllowChangedFileRunsTheResumedJobOnTheCurrentFile) {
  const fs::path big = root_ / "data" / "big.jsonl";
  pb::SweepSpec spec = Spec("big.jsonl", {0.2, 0.4, 0.6, 0.8});
  spec.mutable_dataset()->set_allow_changed_file(true);
  const std::string id = KillMidRun(spec);
  std::ofstream(big, std::ios::trunc) << ChangedBig();

  server_->Start();
  const pb::Job j = WaitFor(id, Finished);
  ASSERT_EQ(j.state(), pb::JOB_STATE_SUCCEEDED) << j.error().message();
  EXPECT_EQ(j.result_count(), j.progress().interventions_total());
  EXPECT_EQ(j.dataset_sha256(), Sha256Hex(CapitalsDataset(60)));
  EXPECT_EQ(j.run_dataset_sha256(), Sha256Hex(ChangedBig()));
}

TEST_F(ServerDatasetsTest, AnUnchangedFileResumes) {
  const std::string id = KillMidRun(Spec("big.jsonl", {0.2, 0.4, 0.6, 0.8}));
  server_->Start();
  const pb::Job j = WaitFor(id, Finished);
  ASSERT_EQ(j.state(), pb::JOB_STATE_SUCCEEDED) << j.error().message();
  EXPECT_EQ(j.run_dataset_sha256(), j.dataset_sha256());
}

TEST_F(ServerDatasetsTest, DeleteDatasetIsRefusedWhileAQueuedOrRunningJobUsesIt) {
  grpc::Status st;
  const pb::Dataset d = server_->Upload(CapitalsDataset(60), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  pb::SweepSpec s = LongSpec("big.jsonl");
  s.mutable_dataset()->set_dataset_id(d.id());
  pb::Job running, queued;
  ASSERT_TRUE(server_->Create(s, &running).ok());
  ASSERT_TRUE(server_->Create(s, &queued).ok());
  WaitFor(running.id(), [](const pb::Job& j) { return j.state() == pb::JOB_STATE_RUNNING; });

  st = DeleteDataset(d.id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(),
            absl::StrCat("dataset ", d.id(), " is used by 2 queued or running job(s): ",
                         running.id(), ", ", queued.id(), "; cancel or delete them first"));
  EXPECT_TRUE(GetDataset(d.id()).ok());

  // A read token may not delete.
  EXPECT_EQ(DeleteDataset(d.id(), kRead).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  pb::Job out;
  ASSERT_TRUE(server_->Cancel(queued.id(), &out).ok());
  st = DeleteDataset(d.id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(),
            absl::StrCat("dataset ", d.id(), " is used by 1 queued or running job(s): ",
                         running.id(), "; cancel or delete them first"));

  ASSERT_TRUE(server_->Cancel(running.id(), &out).ok());
  WaitFor(running.id(), Finished);
  st = DeleteDataset(d.id());
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(GetDataset(d.id()).error_code(), grpc::StatusCode::NOT_FOUND);
  // The finished jobs keep their results.
  EXPECT_EQ(server_->Get(running.id()).state(), pb::JOB_STATE_CANCELLED);

  st = DeleteDataset(d.id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), absl::StrCat("dataset_id: no dataset '", d.id(), "'"));
  EXPECT_EQ(DeleteDataset("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Uploaded again, it is stored again.
  server_->Upload(CapitalsDataset(60), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(GetDataset(d.id()).ok());
}

TEST_F(ServerDatasetsTest, AnUploadOverTheQuotaIsResourceExhausted) {
  const std::string small = CapitalsDataset(20), big = CapitalsDataset(60);
  const int64_t quota = static_cast<int64_t>(small.size() + big.size()) - 1;
  Restart({"--dataset-quota-bytes", std::to_string(quota)});
  grpc::Status st;
  const pb::Dataset ds = server_->Upload(small, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();

  server_->Upload(big, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(st.error_message(),
            absl::StrCat("dataset: storing these ", big.size(),
                         " bytes would take the stored datasets from ", small.size(), " to ",
                         small.size() + big.size(), " bytes, over this server's quota of ", quota,
                         " bytes (--dataset-quota-bytes); delete datasets that are no longer "
                         "needed (DeleteDataset)"));
  // Bytes stored already take no more space.
  server_->Upload(small, &st);
  EXPECT_TRUE(st.ok()) << st.error_message();

  ASSERT_TRUE(DeleteDataset(ds.id()).ok());
  const pb::Dataset db = server_->Upload(big, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(db.id(), Sha256Hex(big));
}

TEST_F(ServerDatasetsTest, RetentionDeletesOldFinishedJobsAndKeepsQueuedAndRunningOnes) {
  Restart({"--job-retention", "1s"});
  pb::Job done, running, queued;
  ASSERT_TRUE(server_->Create(Spec("small.jsonl", {0.5}), &done).ok());
  ASSERT_EQ(WaitFor(done.id(), Finished).state(), pb::JOB_STATE_SUCCEEDED);
  // Long jobs: one runs and one waits while the finished one expires (1,960
  // interventions of 2,000 examples each: far longer than the test waits, on
  // an idle machine too; both are cancelled below).
  std::ofstream(root_ / "data" / "huge.jsonl") << CapitalsDataset(2000);
  const pb::SweepSpec long_spec = LongSpec("huge.jsonl", 140);
  {
    const grpc::Status s = server_->Create(long_spec, &running);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_TRUE(server_->Create(long_spec, &queued).ok());

  // Deleted within the retention plus one check interval (1 s each).
  grpc::Status gone;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    laserd_test::Server::Auth(&ctx, kRead);
    pb::GetJobRequest req;
    req.set_job_id(done.id());
    pb::Job j;
    gone = server_->sweeps().GetJob(&ctx, req, &j);
    if (gone.error_code() == grpc::StatusCode::NOT_FOUND) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND) << "the finished job was kept";
  EXPECT_NE(server_->Log().find(absl::StrCat("job ", done.id(), " deleted by --job-retention")),
            std::string::npos);
  // Older than the retention too, but not finished: kept.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const pb::Job r = server_->Get(running.id()), q = server_->Get(queued.id());
  EXPECT_EQ(r.state(), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(q.state(), pb::JOB_STATE_QUEUED);

  // Without the flag nothing is deleted.
  pb::Job out;
  ASSERT_TRUE(server_->Cancel(queued.id(), &out).ok());
  ASSERT_TRUE(server_->Cancel(running.id(), &out).ok());
  WaitFor(running.id(), Finished);
  Restart({});
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(server_->Get(running.id()).state(), pb::JOB_STATE_CANCELLED);
  EXPECT_EQ(server_->Get(queued.id()).state(), pb::JOB_STATE_CANCELLED);
}

TEST_F(ServerDatasetsTest, ABadRetentionStopsTheServerWithAPreciseMessage) {
  server_->Kill(SIGTERM);
  const std::string cmd =
      absl::StrCat(LASERD_BINARY_DIR, "/server/laserd serve --model ", (root_ / "model").string(),
                   " --state-dir ", (root_ / "state").string(), " --job-retention 3x 2>",
                   (root_ / "bad.log").string());
  EXPECT_NE(std::system(cmd.c_str()), 0);
  const std::string log = laserd::test_support::ReadFile((root_ / "bad.log").string());
  EXPECT_NE(log.find("--job-retention: '3x' is not a duration such as 720h, 7d, 90m or 30s"),
            std::string::npos)
      << log;
}

}  // namespace
