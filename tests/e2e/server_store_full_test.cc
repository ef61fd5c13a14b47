// `laserd serve` on a job store whose disk fills mid-sweep (the hidden
// testing flag --test-store-page-headroom caps the store with SQLite's
// max_page_count, which fails a write exactly as a full disk does): the job
// stops where the store holds it, GetJob, ListJobs, watchers and /api/status
// show only what the store holds (never a FAILED that is not stored), health
// turns NOT_SERVING, mutating RPCs answer RESOURCE_EXHAUSTED with SQLite's
// message, and after a restart with room again the job resumes from its
// stored results to the end, the terminal state the watcher sees being
// GetJob's and the store's.
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/job_state.h"
#include "tests/e2e/server_harness.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using Clock = std::chrono::steady_clock;
using google::protobuf::util::MessageDifferencer;
using laserd_test::kRead;
using laserd_test::kWrite;
using laserd_test::Server;

// Pages the store may grow by after the start: room for the job and its
// first results, not for all of them.
constexpr int kHeadroomPages = 4;

// What the store holds of a job, read by another connection (read-only, in
// one read transaction).
struct Stored {
  bool found = false;
  pb::Job job;
  int64_t results = 0;
  std::set<int64_t> plan_indices;
};

Stored ReadStore(const fs::path& db_path, const std::string& id) {
  Stored out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << sqlite3_errmsg(db);
    sqlite3_close(db);
    return out;
  }
  sqlite3_busy_timeout(db, 5000);
  EXPECT_EQ(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT job FROM jobs WHERE id = ?", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) {
    out.found = out.job.ParseFromArray(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "SELECT plan_index FROM results WHERE job_id = ?", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW) {
    ++out.results;
    out.plan_indices.insert(sqlite3_column_int64(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return out;
}

// A WatchJob stream read on its own thread until it ends or is stopped.
class Watcher {
 public:
  Watcher(Server& s, const std::string& id) {
    Server::Auth(&ctx_, kRead);
    pb::WatchJobRequest req;
    req.set_job_id(id);
    reader_ = s.sweeps().WatchJob(&ctx_, req);
    thread_ = std::thread([this] {
      pb::WatchJobEvent ev;
      while (reader_->Read(&ev)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(ev);
      }
      std::lock_guard<std::mutex> lock(mu_);
      status_ = reader_->Finish();
      done_ = true;
    });
  }
  ~Watcher() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    ctx_.TryCancel();
    thread_.join();
  }
  std::vector<pb::WatchJobEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  int64_t results() {
    int64_t n = 0;
    for (const auto& e : events()) n += e.has_result();
    return n;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<pb::WatchJobEvent>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<pb::WatchJobEvent> events_;
  grpc::Status status_;
  bool done_ = false;
};

// The job's state as a watcher last saw it: its first event (the job), then
// each state change (UNSPECIFIED: no event).
pb::JobState LastState(const std::vector<pb::WatchJobEvent>& evs) {
  pb::JobState s = pb::JOB_STATE_UNSPECIFIED;
  for (const auto& e : evs) {
    if (e.has_job()) s = e.job().state();
    if (e.has_state_change()) s = e.state_change().current();
  }
  return s;
}

class ServerStoreFullTest : public laserd_test::ServerFixture {
 protected:
  void SetUp() override {
    // The fixture's server creates the store; this one caps it.
    ServerFixture::SetUp();
    server_->Kill(SIGTERM);
    server_->extra_args = {"--test-store-page-headroom", std::to_string(kHeadroomPages)};
    server_->Start();
  }
  pb::SweepSpec LongSpec() {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path((root_ / "data" / "big.jsonl").string());
    for (int i = 1; i <= 10; ++i) s.mutable_rho()->add_values(i / 10.0);
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    return s;
  }
  Stored StoredJob(const std::string& id) { return ReadStore(root_ / "state" / "laserd.db", id); }
  pb::ListJobsResponse List() {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    pb::ListJobsResponse resp;
    EXPECT_TRUE(server_->sweeps().ListJobs(&ctx, pb::ListJobsRequest(), &resp).ok());
    return resp;
  }
  grpc::Status Delete(const std::string& id) {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kWrite);
    pb::DeleteJobRequest req;
    req.set_job_id(id);
    req.set_force(true);
    google::protobuf::Empty out;
    return server_->sweeps().DeleteJob(&ctx, req, &out);
  }
  static void ExpectDiskFull(const grpc::Status& st, const std::string& what) {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << what << ": " << st.error_message();
    EXPECT_NE(st.error_message().find("database or disk is full"), std::string::npos)
        << what << ": " << st.error_message();
  }
};

TEST_F(ServerStoreFullTest, AFullStoreStopsTheJobAsStoredAndARestartResumesItToTheEnd) {
  ASSERT_EQ(server_->Health(), 1);
  pb::Job created;
  ASSERT_TRUE(server_->Create(LongSpec(), &created).ok());
  const std::string id = created.id();
  const int64_t total = created.progress().interventions_total();
  Watcher watcher(*server_, id);

  // The disk fills mid-sweep: health turns NOT_SERVING. Meanwhile GetJob is
  // never terminal (a FAILED that the store does not hold would show here).
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  int health = 1;
  while (Clock::now() < deadline && (health = server_->Health()) == 1) {
    const pb::Job j = server_->Get(id);
    ASSERT_FALSE(laserd::server::Terminal(j.state()))
        << "the job ended before the store filled (raise the sweep or lower the headroom): "
        << laserd_test::JsonOf(j);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(health, 2) << "health did not turn NOT_SERVING; log:\n" << server_->Log();

  // What every reader shows is exactly what the store holds.
  const Stored stored = StoredJob(id);
  ASSERT_TRUE(stored.found);
  EXPECT_EQ(stored.job.state(), pb::JOB_STATE_RUNNING);
  EXPECT_GT(stored.job.result_count(), 0) << "the store filled before the first result";
  EXPECT_LT(stored.job.result_count(), total);
  EXPECT_EQ(stored.results, stored.job.result_count());
  std::cerr << "the store filled after " << stored.results << " of " << total << " results\n";
  const pb::Job got = server_->Get(id);
  EXPECT_TRUE(MessageDifferencer::Equals(got, stored.job))
      << "GetJob: " << laserd_test::JsonOf(got) << "\nstore:  " << laserd_test::JsonOf(stored.job);
  const pb::ListJobsResponse listed = List();
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_TRUE(MessageDifferencer::Equals(listed.jobs(0), stored.job));
  const nlohmann::json status = nlohmann::json::parse(server_->Http("/api/status", kRead));
  EXPECT_EQ(status["serving"], false) << status.dump();
  EXPECT_EQ(status["running_job"], id) << status.dump();
  EXPECT_EQ(status["jobs"]["running"], 1) << status.dump();
  EXPECT_EQ(status["jobs"]["failed"], 0) << status.dump();
  EXPECT_NE(status["store_error"].get<std::string>().find("database or disk is full"),
            std::string::npos)
      << status.dump();

  // Mutating RPCs say why instead of pretending, and change nothing.
  pb::Job cancelled;
  ExpectDiskFull(server_->Cancel(id, &cancelled), "CancelJob");
  pb::Job other;
  ExpectDiskFull(server_->Create(LongSpec(), &other), "CreateSweep");
  ExpectDiskFull(Delete(id), "DeleteJob");
  EXPECT_TRUE(MessageDifferencer::Equals(server_->Get(id), stored.job));
  EXPECT_EQ(server_->Health(), 2);

  // The watcher saw every stored result and no end.
  for (int i = 0; i < 500 && watcher.results() < stored.results; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(watcher.results(), stored.results);
  EXPECT_FALSE(watcher.done());
  EXPECT_EQ(LastState(watcher.events()), pb::JOB_STATE_RUNNING);

  // A restart with room again: the job resumes from its stored results.
  server_->Kill(SIGTERM);
  watcher.Stop();
  EXPECT_EQ(LastState(watcher.events()), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(StoredJob(id).job.state(), pb::JOB_STATE_RUNNING);
  server_->extra_args.clear();
  server_->Start();
  grpc::Status st;
  const std::vector<pb::WatchJobEvent> evs = server_->Watch(id, 0, &st);
  EXPECT_TRUE(st.ok()) << st.error_message();
  const pb::JobState seen = LastState(evs);
  EXPECT_EQ(seen, pb::JOB_STATE_SUCCEEDED) << server_->Log();
  const pb::Job end = server_->Get(id);
  const Stored stored_end = StoredJob(id);
  EXPECT_EQ(end.state(), seen);
  EXPECT_EQ(stored_end.job.state(), seen);
  EXPECT_TRUE(MessageDifferencer::Equals(end, stored_end.job));
  EXPECT_EQ(stored_end.results, total);
  EXPECT_EQ(static_cast<int64_t>(stored_end.plan_indices.size()), total);
  EXPECT_EQ(end.result_count(), total);
  EXPECT_EQ(server_->Health(), 1);
}

// The in-process recovery: another connection holds the store's write lock
// (the server's writes fail "database is locked" after SQLite's 5 s busy
// timeout), then lets go; the server retries the write it owes, turns SERVING
// again and the job resumes, without a restart, to the end.
TEST_F(ServerStoreFullTest, AStoreThatTakesWritesAgainResumesTheJobWithoutARestart) {
  server_->Kill(SIGTERM);
  server_->extra_args.clear();
  server_->Start();
  pb::Job created;
  ASSERT_TRUE(server_->Create(LongSpec(), &created).ok());
  const std::string id = created.id();
  const int64_t total = created.progress().interventions_total();
  Watcher watcher(*server_, id);
  for (int i = 0; i < 2000 && server_->Get(id).result_count() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(server_->Get(id).result_count(), 3);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((root_ / "state" / "laserd.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  int health = 1;
  while (Clock::now() < deadline && (health = server_->Health()) == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Stored stored = StoredJob(id);
  const nlohmann::json status = nlohmann::json::parse(server_->Http("/api/status", kRead));
  ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(health, 2) << "health did not turn NOT_SERVING; log:\n" << server_->Log();
  EXPECT_EQ(stored.job.state(), pb::JOB_STATE_RUNNING);
  EXPECT_LT(stored.job.result_count(), total);
  EXPECT_EQ(status["serving"], false) << status.dump();
  EXPECT_NE(status["store_error"].get<std::string>().find("database is locked"), std::string::npos)
      << status.dump();

  // Without a restart: the owed write is stored, the job requeued and run on.
  for (int i = 0; i < 6000 && !watcher.done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(watcher.done()) << server_->Log();
  const std::vector<pb::WatchJobEvent> evs = watcher.events();
  bool requeued = false;
  for (const auto& e : evs) {
    requeued |= e.has_state_change() && e.state_change().previous() == pb::JOB_STATE_RUNNING &&
                e.state_change().current() == pb::JOB_STATE_QUEUED;
  }
  EXPECT_TRUE(requeued) << "no RUNNING -> QUEUED after the store took writes again";
  EXPECT_EQ(LastState(evs), pb::JOB_STATE_SUCCEEDED);
  const pb::Job end = server_->Get(id);
  const Stored stored_end = StoredJob(id);
  EXPECT_EQ(end.state(), pb::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(MessageDifferencer::Equals(end, stored_end.job));
  EXPECT_EQ(stored_end.results, total);
  EXPECT_EQ(static_cast<int64_t>(stored_end.plan_indices.size()), total);
  EXPECT_EQ(server_->Health(), 1);
}

}  // namespace
