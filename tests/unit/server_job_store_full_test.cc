// A job store whose disk is full (SQLite's max_page_count, the portable
// stand-in for a full file system): every write that needs more room fails
// RESOURCE_EXHAUSTED with SQLite's message, leaves the store exactly as it was
// (its transaction rolled back, so the next write can begin), and the same
// write succeeds once there is room again.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/job_store.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd::server::JobStore;

class JobStoreFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("laserd_store_full_", getpid(), "_", n_++);
    fs::remove_all(dir_);
    auto s = JobStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    job_.set_id("job-1");
    job_.set_state(pb::JOB_STATE_RUNNING);
    ASSERT_TRUE(store_->InsertJob(job_).ok());
    ASSERT_TRUE(store_->AppendResult(Result(0), Counted(1)).ok());
  }
  void TearDown() override {
    store_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // A result that needs pages of its own (8 KiB of padding).
  static pb::Result Result(int64_t i) {
    pb::Result r;
    r.set_job_id("job-1");
    r.set_index(i);
    r.set_plan_index(i);
    r.mutable_intervention()->set_matrix_type(std::string(8192, 'a' + i % 26));
    return r;
  }
  pb::Job Counted(int64_t n) const {
    pb::Job j = job_;
    j.set_result_count(n);
    return j;
  }
  // Caps the store at its current size: the disk is full.
  void Fill() {
    auto pages = store_->PageCount();
    ASSERT_TRUE(pages.ok()) << pages.status();
    auto cap = store_->SetMaxPageCount(1);
    ASSERT_TRUE(cap.ok()) << cap.status();
    EXPECT_EQ(*cap, *pages) << "SQLite never caps below the current size";
  }
  void ExpectUnchanged() {
    auto got = store_->GetJob("job-1");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->job.result_count(), 1);
    EXPECT_EQ(got->job.state(), pb::JOB_STATE_RUNNING);
    auto rs = store_->Results("job-1");
    ASSERT_TRUE(rs.ok()) << rs.status();
    EXPECT_EQ(rs->size(), 1u);
  }
  static inline int n_ = 0;
  fs::path dir_;
  std::unique_ptr<JobStore> store_;
  pb::Job job_;
};

TEST_F(JobStoreFullTest, AResultThatDoesNotFitIsResourceExhaustedAndNothingIsStored) {
  Fill();
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The second attempt begins a new transaction: the first was rolled back.
    const absl::Status s = store_->AppendResult(Result(1), Counted(2));
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_NE(s.message().find("database or disk is full"), std::string::npos) << s;
    ExpectUnchanged();
  }
  ASSERT_TRUE(store_->SetMaxPageCount(1 << 20).ok());
  ASSERT_TRUE(store_->AppendResult(Result(1), Counted(2)).ok());
  auto rs = store_->Results("job-1");
  ASSERT_TRUE(rs.ok());
  EXPECT_EQ(rs->size(), 2u);
  EXPECT_EQ(store_->GetJob("job-1")->job.result_count(), 2);
}

TEST_F(JobStoreFullTest, AJobThatDoesNotFitIsResourceExhausted) {
  Fill();
  pb::Job big = Counted(1);
  (*big.mutable_spec()->mutable_labels())["pad"] = std::string(16384, 'x');
  absl::Status s = store_->UpdateJob(big);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  ExpectUnchanged();
  EXPECT_TRUE(store_->GetJob("job-1")->job.spec().labels().empty());
  big.set_id("job-2");
  s = store_->InsertJob(big).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(store_->GetJob("job-2").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreFullTest, DeletingAJobFreesRoomOnAFullStore) {
  Fill();
  EXPECT_EQ(store_->AppendResult(Result(1), Counted(2)).code(),
            absl::StatusCode::kResourceExhausted);
  // A delete needs no new page.
  ASSERT_TRUE(store_->DeleteJob("job-1").ok());
  EXPECT_EQ(store_->GetJob("job-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteJob("job-1").code(), absl::StatusCode::kNotFound);
}

}  // namespace
