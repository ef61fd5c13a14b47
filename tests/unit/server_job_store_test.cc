// JobStore::Open checks the store before the server uses it: a damaged
// laserd.db (zero bytes, not SQLite, a corrupt page, a newer schema) is refused
// with DATA_LOSS (FAILED_PRECONDITION for a newer schema) and left as it was;
// `laserd serve` then exits non-zero with the message.
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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
