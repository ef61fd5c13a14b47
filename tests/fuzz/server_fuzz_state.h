// The ServerState the server fuzz targets (fuzz_http, fuzz_rpc) run against:
// one per process, over the tiny Llama fixture (tests/fixtures/models/llama
// with the byte-level tokenizer of tests/support/fixtures.h) on the CPU, a
// store in a fresh directory (under /dev/shm when it exists, so SQLite's
// fsyncs cost nothing), one uploaded dataset and two jobs with fixed ids:
//   job-done    SUCCEEDED, with the results of a real sweep run at start-up
//               (the worker is started for it and stopped again);
//   job-queued  QUEUED, the same spec, stored directly.
// The worker stays stopped afterwards: a job CreateSweep accepts is stored
// and queued but never runs, so one input costs one validation, not a sweep.
// RestoreFixtures() puts both jobs back as they were after an input that
// cancelled or deleted one, so every input starts from the same state.
#ifndef LASERD_TESTS_FUZZ_SERVER_FUZZ_STATE_H_
#define LASERD_TESTS_FUZZ_SERVER_FUZZ_STATE_H_

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/job_store.h"
#include "server/server_state.h"
#include "spdlog/spdlog.h"
#include "sqlite3.h"
#include "tests/support/fixtures.h"

namespace laserd::fuzz {

namespace pb = ::laser::v1;

inline constexpr const char* kDoneJob = "job-done";
inline constexpr const char* kQueuedJob = "job-queued";
// Bearer tokens of the HTTP target's server (fuzz_http).
inline constexpr const char* kReadToken = "read-token";
inline constexpr const char* kWriteToken = "write-token";

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz harness: %s\n", what.c_str());
  std::abort();
}

class FuzzServer {
 public:
  // `with_tokens`: the server has a read and a write token (kReadToken,
  // kWriteToken); without, every call is allowed.
  explicit FuzzServer(bool with_tokens) {
    namespace fs = std::filesystem;
    spdlog::set_level(spdlog::level::off);  // no log line per input
    // Nor protobuf's (a string field with invalid UTF-8 logs an ERROR per parse).
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    // A run that crashed (abort skips atexit) left its directory behind.
    for (const auto& e : fs::directory_iterator(base)) {
      const std::string name = e.path().filename().string();
      int pid = 0;
      if (name.rfind("laserd_fuzz_", 0) == 0 && absl::SimpleAtoi(name.substr(12), &pid) &&
          pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
        std::error_code ec;
        fs::remove_all(e.path(), ec);
      }
    }
    root_ = base / absl::StrCat("laserd_fuzz_", getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ / "data");
    fs::create_directories(root_ / "state");
    RootToRemove() = root_.string();
    std::atexit([] { std::filesystem::remove_all(RootToRemove()); });
    test_support::MakeTinyLlamaDir(root_ / "model");
    std::ofstream(root_ / "data" / "ten.jsonl") << test_support::kTenExamples;

    server::ServeOptions o;
    o.model = (root_ / "model").string();
    o.device = "cpu";
    o.state_dir = (root_ / "state").string();
    o.data_dirs = {(root_ / "data").string()};
    o.max_grid = 1000;
    o.max_queued = 100;
    o.cache_budget_mb = 16;
    auto store = server::JobStore::Open(o.state_dir);
    if (!store.ok()) Die(store.status().ToString());
    std::map<std::string, server::TokenInfo> tokens;
    if (with_tokens) {
      tokens[kReadToken] = server::TokenInfo{false, "reader"};
      tokens[kWriteToken] = server::TokenInfo{true, "writer"};
    }
    state_ = new server::ServerState(o, *std::move(store), tokens);  // lives until exit
    if (absl::Status st = state_->LoadModel(); !st.ok()) Die(st.ToString());

    auto ds = state_->datasets.StoreDataset("ten", "", test_support::kTenExamples);
    if (!ds.ok()) Die(ds.status().ToString());
    dataset_id_ = ds->id();
    MakeFixtureJobs();
  }

  server::ServerState& state() { return *state_; }
  const std::string& dataset_id() const { return dataset_id_; }
  const std::filesystem::path& root() const { return root_; }
  const pb::SweepSpec& fixture_spec() const { return done_.spec(); }

  // Puts job-done (with its results) and job-queued back as they were made.
  void RestoreFixtures() {
    for (const pb::Job* j : {&done_, &queued_}) {
      auto now = state_->store->GetJob(j->id());
      if (now.ok() && google::protobuf::util::MessageDifferencer::Equals(now->job, *j)) continue;
      if (now.ok()) {
        if (absl::Status st = state_->store->DeleteJob(j->id()); !st.ok()) Die(st.ToString());
      }
      Insert(*j, j == &done_ ? done_results_ : std::vector<pb::Result>{});
    }
  }

  // Removes a dataset an input uploaded (the store has no API for it, so
  // through a second SQLite connection; the fixture dataset stays).
  void DropDataset(const std::string& id) {
    if (id == dataset_id_) return;
    if (db_ == nullptr) {
      const std::string path = (root_ / "state" / "laserd.db").string();
      if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        Die("cannot open the store for dataset clean-up");
      }
      sqlite3_busy_timeout(db_, 5000);
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, "DELETE FROM datasets WHERE id = ?", -1, &st, nullptr) !=
        SQLITE_OK) {
      Die(sqlite3_errmsg(db_));
    }
    sqlite3_bind_text(st, 1, id.c_str(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) Die(sqlite3_errmsg(db_));
  }

 private:
  static std::string& RootToRemove() {
    static std::string* root = new std::string;
    return *root;
  }
  void Insert(const pb::Job& job, const std::vector<pb::Result>& results) {
    pb::Job j = job;
    j.set_result_count(0);
    if (auto st = state_->store->InsertJob(j); !st.ok()) Die(st.status().ToString());
    for (size_t i = 0; i < results.size(); ++i) {
      j.set_result_count(static_cast<int64_t>(i + 1));
      if (absl::Status st = state_->store->AppendResult(results[i], j); !st.ok()) {
        Die(st.ToString());
      }
    }
    if (absl::Status st = state_->store->UpdateJob(job); !st.ok()) Die(st.ToString());
  }

  // A real sweep (one rho over the MLP output matrices (mlp.out), ten examples) run to
  // the end, copied to job-done; job-queued is its spec, QUEUED.
  void MakeFixtureJobs() {
    pb::CreateSweepRequest req;
    pb::SweepSpec& spec = *req.mutable_spec();
    spec.mutable_dataset()->set_dataset_id(dataset_id_);
    spec.add_matrix_types("mlp.out");
    spec.mutable_rho()->add_values(0.5);
    spec.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    (*spec.mutable_labels())["team"] = "fuzz";
    auto created = state_->sweeps.CreateSweep(req);
    if (!created.ok()) Die(created.status().ToString());
    if (absl::Status st = state_->jobs.Start(); !st.ok()) Die(st.ToString());
    pb::Job run;
    for (int i = 0;; ++i) {
      auto j = state_->sweeps.GetJob(created->id());
      if (!j.ok()) Die(j.status().ToString());
      run = *j;
      if (run.state() == pb::JOB_STATE_SUCCEEDED) break;
      if (server::Terminal(run.state()) || i > 6000) {
        Die(absl::StrCat("fixture sweep ended ", pb::JobState_Name(run.state())));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    state_->jobs.Stop();
    auto results = state_->store->Results(run.id());
    if (!results.ok() || results->empty()) Die("fixture sweep stored no results");
    done_ = run;
    done_.set_id(kDoneJob);
    done_.set_request_id("fixture-done");
    for (pb::Result r : *results) {
      r.set_job_id(kDoneJob);
      done_results_.push_back(r);
    }
    queued_ = pb::Job();
    queued_.set_id(kQueuedJob);
    queued_.set_request_id("fixture-queued");
    *queued_.mutable_spec() = run.spec();
    queued_.set_state(pb::JOB_STATE_QUEUED);
    *queued_.mutable_progress() = pb::Progress();
    queued_.mutable_progress()->set_interventions_total(run.progress().interventions_total());
    *queued_.mutable_create_time() = run.create_time();
    *queued_.mutable_update_time() = run.create_time();
    if (absl::Status st = state_->jobs.Delete(run.id(), false); !st.ok()) Die(st.ToString());
    RestoreFixtures();
  }

  std::filesystem::path root_;
  server::ServerState* state_ = nullptr;
  std::string dataset_id_;
  pb::Job done_, queued_;
  std::vector<pb::Result> done_results_;
  sqlite3* db_ = nullptr;
};

}  // namespace laserd::fuzz

#endif  // LASERD_TESTS_FUZZ_SERVER_FUZZ_STATE_H_
