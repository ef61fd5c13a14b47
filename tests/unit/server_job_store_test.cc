// JobStore::Open checks the store before the server uses it: a damaged
// laserd.db (zero bytes, not SQLite, a corrupt page, a newer schema) is refused
// with DATA_LOSS (FAILED_PRECONDITION for a newer schema) and left as it was;
// `laserd serve` then exits non-zero with the message.
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/job_store.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd::server::JobStore;

class JobStoreOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / absl::StrCat("laserd_store_test_", getpid(), "_", counter_++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "laserd.db").string();
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // A store with `n` jobs, each with a 2 KiB label so that they fill pages.
  void Fill(int n) {
    auto s = JobStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    for (int i = 0; i < n; ++i) {
      pb::Job j;
      j.set_id(absl::StrCat("job-", i));
      j.set_state(pb::JOB_STATE_SUCCEEDED);
      (*j.mutable_spec()->mutable_labels())["pad"] = std::string(2048, 'a' + i % 26);
      ASSERT_TRUE((*s)->InsertJob(j).ok());
    }
  }
  // Sets PRAGMA user_version of the closed store.
  void SetUserVersion(int v) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, absl::StrCat("PRAGMA user_version = ", v, ";").c_str(), nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  static int counter_;
  fs::path dir_;
  std::string db_;
};
int JobStoreOpenTest::counter_ = 0;

TEST_F(JobStoreOpenTest, ANewStoreOpensAndKeepsItsJobs) {
  Fill(3);
  auto s = JobStore::Open(dir_.string());
  ASSERT_TRUE(s.ok()) << s.status();
  auto jobs = (*s)->ListJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 3u);
}

TEST_F(JobStoreOpenTest, AZeroByteStoreIsRefusedAndLeftAsItIs) {
  std::ofstream(db_).close();
  auto s = JobStore::Open(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find(db_), std::string::npos) << s.status();
  EXPECT_EQ(fs::file_size(db_), 0u);
}

TEST_F(JobStoreOpenTest, AFileThatIsNotSqliteIsRefusedAndLeftAsItIs) {
  const std::string junk(8192, 'x');
  std::ofstream(db_, std::ios::binary) << junk;
  auto s = JobStore::Open(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_EQ(laserd::test_support::ReadFile(db_), junk);
}

TEST_F(JobStoreOpenTest, ACorruptPageIsRefused) {
  Fill(40);
  const auto size = fs::file_size(db_);
  ASSERT_GT(size, 16u * 4096);
  {
    // Page 3 onwards (interior and leaf pages of the jobs table): garbage.
    std::fstream f(db_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(2 * 4096);
    const std::string junk(4 * 4096, '\x5a');
    f.write(junk.data(), junk.size());
  }
  auto s = JobStore::Open(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_EQ(fs::file_size(db_), size);
}

TEST_F(JobStoreOpenTest, AStoreOfANewerSchemaIsRefused) {
  Fill(1);
  SetUserVersion(999);
  auto s = JobStore::Open(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("999"), std::string::npos) << s.status();
}

// An SQLite file that is not a job store (no jobs table) is refused.
TEST_F(JobStoreOpenTest, AnSqliteFileWithoutTheJobTablesIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other (x INTEGER);", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = JobStore::Open(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
}

// A store written before the schema had a version (user_version 0, tables
// present) opens and keeps its jobs.
TEST_F(JobStoreOpenTest, AStoreWithoutASchemaVersionOpens) {
  Fill(2);
  SetUserVersion(0);
  auto s = JobStore::Open(dir_.string());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->ListJobs()->size(), 2u);
}

TEST_F(JobStoreOpenTest, ServeExitsNonZeroWithTheMessageOnADamagedStore) {
  laserd::test_support::MakeTinyLlamaDir(dir_ / "model");
  fs::create_directories(dir_ / "state");
  std::ofstream((dir_ / "state" / "laserd.db").string()).close();
  const std::string log = (dir_ / "serve.log").string();
  const int rc = laserd::test_support::Shell(
      absl::StrCat("timeout 20 ", laserd::test_support::LaserdBinary(), " serve --model ",
                   (dir_ / "model").string(), " --device cpu --listen 127.0.0.1:0 --state-dir ",
                   (dir_ / "state").string(), " >", log, " 2>&1"));
  EXPECT_EQ(rc, 5) << "exit code of DATA_LOSS (124: laserd serve started on a damaged store)";
  const std::string out = laserd::test_support::ReadFile(log);
  EXPECT_NE(out.find("laserd.db"), std::string::npos) << out;
  EXPECT_NE(out.find("damaged"), std::string::npos) << out;
  EXPECT_EQ(fs::file_size(dir_ / "state" / "laserd.db"), 0u);
}

}  // namespace

namespace {

pb::ExampleOutputs Outputs(const std::string& job, int64_t index, int n) {
  pb::ExampleOutputs o;
  o.set_job_id(job);
  o.set_result_index(index);
  o.set_plan_index(index);
  for (int i = 0; i < n; ++i) {
    pb::ExampleOutcome* e = o.add_examples();
    e->set_index(i);
    e->set_split(i < 2 ? pb::EXAMPLE_SPLIT_VALIDATION : pb::EXAMPLE_SPLIT_TEST);
    e->set_correct((i + index) % 2 == 0);
    e->set_answer_logprob(-0.5 * (i + 1));
    e->set_answer_tokens(2);
  }
  return o;
}

// Example outputs live beside the results: the baseline's with the job update
// that stores the baseline, each result's in the transaction of its result;
// a result refused (a duplicate plan_index) stores no outputs; reading pages
// by index range and offset; deleting the job deletes them; a reopened store
// still holds them.
TEST_F(JobStoreOpenTest, ExampleOutputsAreStoredWithTheirResultAndDeletedWithTheJob) {
  {
    auto s = JobStore::Open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    pb::Job j;
    j.set_id("job-x");
    ASSERT_TRUE((*s)->InsertJob(j).ok());
    j.mutable_baseline()->mutable_test()->set_examples(3);
    const pb::ExampleOutputs base = Outputs("job-x", -1, 5);
    ASSERT_TRUE((*s)->UpdateJob(j, &base).ok());
    for (int i = 0; i < 3; ++i) {
      pb::Result r;
      r.set_job_id("job-x");
      r.set_index(i);
      r.set_plan_index(i);
      j.set_result_count(i + 1);
      const pb::ExampleOutputs o = Outputs("job-x", i, 5);
      // Result 1 is stored without outputs (a job that does not keep them).
      ASSERT_TRUE((*s)->AppendResult(r, j, i == 1 ? nullptr : &o).ok());
    }
    pb::Result dup;
    dup.set_job_id("job-x");
    dup.set_index(3);
    dup.set_plan_index(0);
    const pb::ExampleOutputs o3 = Outputs("job-x", 3, 5);
    EXPECT_EQ((*s)->AppendResult(dup, j, &o3).code(), absl::StatusCode::kAlreadyExists);
    // An update without outputs leaves the baseline's as they are.
    ASSERT_TRUE((*s)->UpdateJob(j).ok());
  }
  auto s = JobStore::Open(dir_.string());
  ASSERT_TRUE(s.ok()) << s.status();
  const int64_t kAll = std::numeric_limits<int64_t>::max();
  auto all = (*s)->ReadExampleOutputs("job-x", -1, kAll, 100);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].result_index(), -1);
  EXPECT_EQ((*all)[1].result_index(), 0);
  EXPECT_EQ((*all)[2].result_index(), 2);
  EXPECT_EQ((*all)[2].SerializeAsString(), Outputs("job-x", 2, 5).SerializeAsString());
  EXPECT_EQ(*(*s)->CountExampleOutputs("job-x", -1, kAll), 3);
  EXPECT_EQ(*(*s)->CountExampleOutputs("job-x", 1, 1), 0);
  auto page = (*s)->ReadExampleOutputs("job-x", -1, kAll, 1, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].result_index(), 0);
  ASSERT_TRUE((*s)->ReadExampleOutputs("job-x", 3, 3, 1)->empty());
  ASSERT_TRUE((*s)->DeleteJob("job-x").ok());
  EXPECT_EQ(*(*s)->CountExampleOutputs("job-x", -1, kAll), 0);
}

}  // namespace
