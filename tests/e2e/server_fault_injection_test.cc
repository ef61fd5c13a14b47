// Fault injection: the real `laserd serve` is killed (SIGKILL) at seeded random
// points of a sweep with greedy composition, restarted, and killed again, many
// times. After every kill the job store must hold everything a client was
// shown, with no result duplicated or missing; after the last restart the job
// ends with the same results as an uninterrupted run of the same spec, and a
// job whose cancellation was acknowledged ends CANCELLED without running again.
//
// Kill points are drawn from a seeded RNG: a time offset after the (re)start,
// right after the k-th result, at the first sign of the baseline phase, or
// after the j-th composition step; some are preceded by a CancelJob. Every
// trial prints its seed; LASERD_FAULT_SEED=S reruns that trial alone and
// LASERD_FAULT_TRIALS=N changes how many trials run (docs/testing.md).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/job_store.h"
#include "tests/e2e/server_harness.h"

namespace pb = ::laser::v1;

namespace {

using google::protobuf::util::MessageDifferencer;
using laserd_test::Comparable;
using laserd_test::JsonOf;
using laserd_test::kRead;
using laserd_test::Server;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kBaseSeed = 20261207;
constexpr int kDefaultTrials = 12;

bool Terminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

// What a job is, without where and when it ran: the fields an interrupted run
// must reproduce.
pb::Job ComparableJob(pb::Job j) {
  j.clear_id();
  j.clear_request_id();
  j.clear_create_time();
  j.clear_start_time();
  j.clear_end_time();
  j.clear_update_time();
  pb::Progress& p = *j.mutable_progress();
  p.clear_elapsed();
  p.clear_eta();
  p.clear_interventions_per_second();
  if (p.has_best()) *p.mutable_best() = Comparable(p.best());
  if (j.has_best_composition()) *j.mutable_best_composition() = Comparable(j.best_composition());
  return j;
}

// Where a kill happens.
struct KillPoint {
  enum Kind { kTime, kAfterResults, kBaseline, kComposing } kind = kTime;
  int64_t ms = 0;             // kTime: milliseconds after the server is up (or the job created)
  int64_t k = 0;              // kAfterResults: results seen; kComposing: composition steps seen
  bool cancel_first = false;  // CancelJob, then the kill
  int64_t delay_us = 0;       // between the trigger (or the acknowledged cancel) and the kill

  std::string Describe() const {
    std::string s;
    switch (kind) {
      case kTime:
        s = absl::StrCat(ms, " ms after start");
        break;
      case kAfterResults:
        s = absl::StrCat("after result ", k);
        break;
      case kBaseline:
        s = "at the baseline phase";
        break;
      case kComposing:
        s = absl::StrCat("after composition step ", k);
        break;
    }
    if (delay_us > 0) absl::StrAppend(&s, " + ", delay_us, " us");
    if (cancel_first) s = absl::StrCat("CancelJob, then kill, ", s);
    return s;
  }
};

// Everything one client was shown of one job, over all server lifetimes.
struct Seen {
  std::vector<pb::Job> jobs;              // GetJob replies and WatchJob job events
  std::map<int64_t, pb::Result> results;  // WatchJob results by index
  std::vector<pb::Result> stream;         // the client's view: reconnects at the next index
  std::vector<pb::Evaluation> baselines;  // WatchJob baseline events
  bool cancel_acked = false;
  pb::Job cancel_reply;
  bool terminal = false;
};

class ServerFaultInjectionTest : public laserd_test::ServerFixture {
 protected:
  pb::SweepSpec Spec() {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path((root_ / "data" / "big.jsonl").string());
    for (double r : {0.9, 0.7, 0.5, 0.3, 0.2, 0.1}) s.mutable_rho()->add_values(r);
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    s.mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
    return s;
  }

  bool GetJob(const std::string& id, pb::Job* out) {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    pb::GetJobRequest req;
    req.set_job_id(id);
    return server_->sweeps().GetJob(&ctx, req, out).ok();
  }

  // Watches `id` from `seen->stream.size()` until the stream ends, recording
  // what it shows; `on_event` (after each event, outside the lock) may kill.
  grpc::Status WatchInto(const std::string& id, Seen* seen, std::mutex* mu,
                         const std::function<void(const pb::WatchJobEvent&)>& on_event) {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    pb::WatchJobRequest req;
    req.set_job_id(id);
    int64_t next;
    {
      std::lock_guard<std::mutex> lock(*mu);
      next = static_cast<int64_t>(seen->stream.size());
    }
    req.set_from_result_index(next);
    auto reader = server_->sweeps().WatchJob(&ctx, req);
    pb::WatchJobEvent ev;
    while (reader->Read(&ev)) {
      {
        std::lock_guard<std::mutex> lock(*mu);
        if (ev.has_job()) {
          seen->jobs.push_back(ev.job());
          if (Terminal(ev.job().state())) seen->terminal = true;
        }
        if (ev.has_baseline()) seen->baselines.push_back(ev.baseline());
        if (ev.has_state_change() && Terminal(ev.state_change().current())) seen->terminal = true;
        if (ev.has_result()) {
          const pb::Result& r = ev.result();
          // One stream neither repeats nor skips an index.
          EXPECT_EQ(r.index(), next)
              << "WatchJob streamed index " << r.index() << " where " << next << " was due";
          next = r.index() + 1;
          seen->results[r.index()] = r;
          if (r.index() == static_cast<int64_t>(seen->stream.size())) seen->stream.push_back(r);
        }
      }
      if (on_event) on_event(ev);
    }
    return reader->Finish();
  }

  // Runs the job on the running server until `kp`, kills the server and
  // returns once it is dead. A trigger that never comes (the job ended
  // first) kills after the job ended.
  void RunUntilKill(const std::string& id, const KillPoint& kp, Seen* seen) {
    std::mutex mu;  // guards *seen and the flags below
    std::condition_variable cv;
    bool killed = false, stream_ended = false;
    std::once_flag once;
    auto kill = [&] {
      std::call_once(once, [&] {
        if (kp.cancel_first) {
          pb::Job reply;
          const grpc::Status st = server_->Cancel(id, &reply);
          if (st.ok()) {
            // Running: acknowledged once stored; queued: cancelled at once.
            EXPECT_TRUE(reply.cancel_requested() || reply.state() == pb::JOB_STATE_CANCELLED)
                << JsonOf(reply);
            std::lock_guard<std::mutex> lock(mu);
            seen->cancel_acked = true;
            seen->cancel_reply = reply;
            seen->jobs.push_back(reply);
          } else {
            // Only a finished job refuses.
            EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
          }
        }
        if (kp.delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(kp.delay_us));
        server_->Kill(SIGKILL);
        std::lock_guard<std::mutex> lock(mu);
        killed = true;
        cv.notify_all();
      });
    };

    int64_t composition_seen = 0;
    bool phase_baseline_or_later = false;
    auto on_event = [&](const pb::WatchJobEvent& ev) {
      pb::JobPhase phase = pb::JOB_PHASE_UNSPECIFIED;
      if (ev.has_job()) phase = ev.job().progress().phase();
      if (ev.has_progress()) phase = ev.progress().phase();
      if (phase >= pb::JOB_PHASE_BASELINE) phase_baseline_or_later = true;
      if (ev.has_job()) {
        // Composition steps stored before this stream started.
        composition_seen = std::max<int64_t>(0, ev.job().result_count() - singles_);
      }
      if (ev.has_result() && ev.result().kind() == pb::RESULT_KIND_COMPOSITION) {
        composition_seen = ev.result().index() + 1 - singles_;
      }
      bool fire = false;
      switch (kp.kind) {
        case KillPoint::kTime:
          break;
        case KillPoint::kAfterResults:
          fire = ev.has_result() ? ev.result().index() + 1 >= kp.k
                                 : ev.has_job() && ev.job().result_count() >= kp.k;
          break;
        case KillPoint::kBaseline:
          fire = phase_baseline_or_later;
          break;
        case KillPoint::kComposing:
          fire = (kp.k == 0 && phase == pb::JOB_PHASE_COMPOSING) ||
                 (kp.k > 0 && composition_seen >= kp.k);
          break;
      }
      if (fire) kill();
    };

    const Clock::time_point start = Clock::now();
    std::thread watcher([&] {
      WatchInto(id, seen, &mu, on_event);
      std::lock_guard<std::mutex> lock(mu);
      stream_ended = true;
      cv.notify_all();
    });
    std::atomic<bool> stop_polling{false};
    std::thread poller([&] {
      while (!stop_polling.load()) {
        pb::Job j;
        if (GetJob(id, &j)) {
          std::lock_guard<std::mutex> lock(mu);
          seen->jobs.push_back(j);
          if (Terminal(j.state())) seen->terminal = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    });
    {
      std::unique_lock<std::mutex> lock(mu);
      if (kp.kind == KillPoint::kTime) {
        cv.wait_until(lock, start + std::chrono::milliseconds(kp.ms),
                      [&] { return killed || stream_ended; });
      } else {
        // The trigger, or the end of the job (it ended before the trigger).
        const bool done =
            cv.wait_for(lock, std::chrono::seconds(60), [&] { return killed || stream_ended; });
        EXPECT_TRUE(done) << "neither the kill point nor the end of the job came within 60 s";
      }
    }
    kill();  // a time point, or a trigger that never came: kill now
    watcher.join();
    stop_polling = true;
    poller.join();
  }

  // With the server dead: the stored job and results hold everything the
  // client was shown, with dense indices, no plan index twice, and the
  // results of the uninterrupted run; terminal jobs are unchanged.
  pb::Job CheckStore(const std::string& id, const Seen& seen) {
    auto store = laserd::server::JobStore::Open((root_ / "state").string());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return pb::Job();
    auto sj = (*store)->GetJob(id);
    EXPECT_TRUE(sj.ok()) << sj.status();
    auto rs = (*store)->Results(id);
    EXPECT_TRUE(rs.ok()) << rs.status();
    if (!sj.ok() || !rs.ok()) return pb::Job();
    const pb::Job& stored = sj->job;
    const std::vector<pb::Result>& results = *rs;

    EXPECT_EQ(stored.result_count(), static_cast<int64_t>(results.size()))
        << "the job's result_count disagrees with its stored results";
    std::set<int64_t> plan;
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].index(), static_cast<int64_t>(i)) << "stored indices are not dense";
      EXPECT_TRUE(plan.insert(results[i].plan_index()).second)
          << "plan index " << results[i].plan_index() << " stored twice (index " << i << ")";
      if (i < want_.size()) {
        EXPECT_TRUE(MessageDifferencer::Equals(Comparable(results[i]), Comparable(want_[i])))
            << "stored result " << i
            << " differs from the uninterrupted run\n got: " << JsonOf(Comparable(results[i]))
            << "\nwant: " << JsonOf(Comparable(want_[i]));
      } else {
        ADD_FAILURE() << "stored result " << i << " is beyond the uninterrupted run's "
                      << want_.size();
      }
    }
    // Every result a client was shown is stored, unchanged.
    for (const auto& [index, r] : seen.results) {
      if (index >= static_cast<int64_t>(results.size())) {
        ADD_FAILURE() << "result " << index << " was streamed but is not stored (" << results.size()
                      << " stored)";
        continue;
      }
      EXPECT_TRUE(MessageDifferencer::Equals(r, results[index]))
          << "result " << index << " changed after it was streamed\n seen: " << JsonOf(r)
          << "\nstored: " << JsonOf(results[index]);
    }
    // Every job state a client was shown is stored, or was overtaken by a
    // later stored one; never one that disappeared.
    for (const pb::Job& j : seen.jobs) {
      EXPECT_LE(j.result_count(), stored.result_count())
          << "a client saw " << j.result_count() << " results; the store holds "
          << stored.result_count();
      if (j.has_baseline()) {
        EXPECT_TRUE(MessageDifferencer::Equals(j.baseline(), stored.baseline()))
            << "a client saw a baseline the store does not hold";
      }
      if (j.has_best_composition()) {
        EXPECT_TRUE(stored.has_best_composition() &&
                    stored.best_composition().index() >= j.best_composition().index())
            << "a client saw a best composition the store does not hold";
      }
      if (j.progress().has_best()) {
        EXPECT_TRUE(stored.progress().has_best()) << "a client saw a best single the store lost";
      }
      if (j.cancel_requested()) {
        EXPECT_TRUE(stored.cancel_requested() || stored.state() == pb::JOB_STATE_CANCELLED)
            << "a client saw cancel_requested; the store lost it";
      }
      if (Terminal(j.state())) {
        EXPECT_EQ(stored.state(), j.state()) << "a terminal state a client saw changed";
        EXPECT_EQ(stored.result_count(), j.result_count());
      }
      if (j.state() == pb::JOB_STATE_RUNNING) {
        EXPECT_TRUE(stored.state() == pb::JOB_STATE_RUNNING || Terminal(stored.state()))
            << "a client saw RUNNING; the store holds " << pb::JobState_Name(stored.state());
      }
    }
    for (const pb::Evaluation& b : seen.baselines) {
      EXPECT_TRUE(MessageDifferencer::Equals(b, stored.baseline()))
          << "a streamed baseline is not the stored one";
    }
    if (seen.cancel_acked) {
      EXPECT_TRUE(stored.cancel_requested() || stored.state() == pb::JOB_STATE_CANCELLED)
          << "an acknowledged cancellation is not stored";
    }
    // Finished jobs of earlier trials are untouched.
    for (const auto& [tid, tj] : finished_) {
      auto t = (*store)->GetJob(tid);
      EXPECT_TRUE(t.ok() && MessageDifferencer::Equals(t->job, tj))
          << "finished job " << tid << " changed\n was: " << JsonOf(tj)
          << "\n now: " << (t.ok() ? JsonOf(t->job) : t.status().ToString());
    }
    return stored;
  }

  // The uninterrupted run: results, job and wall time.
  void RunReference() {
    pb::Job job;
    ASSERT_TRUE(server_->Create(Spec(), &job, "fault-reference").ok());
    const Clock::time_point t0 = Clock::now();
    grpc::Status st;
    auto evs = server_->Watch(job.id(), 0, &st);
    ASSERT_TRUE(st.ok()) << st.error_message();
    reference_ms_ =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    for (const auto& e : evs) {
      if (e.has_result()) want_.push_back(e.result());
    }
    ASSERT_TRUE(GetJob(job.id(), &want_job_));
    ASSERT_EQ(want_job_.state(), pb::JOB_STATE_SUCCEEDED);
    ASSERT_EQ(want_job_.result_count(), static_cast<int64_t>(want_.size()));
    for (const pb::Result& r : want_) {
      if (r.kind() == pb::RESULT_KIND_SINGLE) ++singles_;
    }
    const int64_t steps = static_cast<int64_t>(want_.size()) - singles_;
    ASSERT_GE(steps, 2) << "the spec must compose several steps to kill between them";
    finished_[job.id()] = want_job_;
    std::cout << "[ fault    ] uninterrupted run: " << singles_ << " singles, " << steps
              << " composition steps, " << reference_ms_ << " ms" << std::endl;
  }

  KillPoint Draw(std::mt19937_64& rng, const pb::Job& stored, bool cancel) {
    const int64_t total = static_cast<int64_t>(want_.size());
    const int64_t steps = total - singles_;
    KillPoint kp;
    // A CancelJob goes with an event, so that it meets a running job.
    const int r = static_cast<int>(cancel ? 25 + rng() % 75 : rng() % 100);
    if (r < 25) {
      kp.kind = KillPoint::kTime;
      kp.ms = static_cast<int64_t>(rng() % static_cast<uint64_t>(reference_ms_ * 11 / 10 + 1));
    } else if (r < 65) {
      kp.kind = KillPoint::kAfterResults;
      const int64_t from = std::min(stored.result_count() + 1, total);
      kp.k = from + static_cast<int64_t>(rng() % static_cast<uint64_t>(total - from + 1));
    } else if (r < 78 && !stored.has_baseline()) {
      kp.kind = KillPoint::kBaseline;
      kp.delay_us = static_cast<int64_t>(rng() % 4000);
    } else {
      kp.kind = KillPoint::kComposing;
      kp.k = static_cast<int64_t>(rng() % static_cast<uint64_t>(steps));
    }
    if (kp.kind != KillPoint::kBaseline && rng() % 2 == 0) {
      kp.delay_us = static_cast<int64_t>(rng() % 2000);
    }
    kp.cancel_first = cancel;
    return kp;
  }

  std::vector<pb::Result> want_;
  pb::Job want_job_;
  int64_t singles_ = 0;
  int64_t reference_ms_ = 0;
  std::map<std::string, pb::Job> finished_;  // terminal jobs as they ended
  // Where kills landed (by what the store held), over all trials.
  std::map<std::string, int> landed_;
};

TEST_F(ServerFaultInjectionTest, RandomKillsLoseNothingDuplicateNothingAndResumeToTheSameResults) {
  ASSERT_NO_FATAL_FAILURE(RunReference());
  const int64_t total = static_cast<int64_t>(want_.size());

  std::vector<uint64_t> seeds;
  if (const char* s = std::getenv("LASERD_FAULT_SEED"); s != nullptr && *s != '\0') {
    seeds.push_back(std::strtoull(s, nullptr, 10));
  } else {
    int trials = kDefaultTrials;
    if (const char* t = std::getenv("LASERD_FAULT_TRIALS"); t != nullptr && *t != '\0') {
      trials = std::max(1, std::atoi(t));
    }
    for (int i = 0; i < trials; ++i) seeds.push_back(kBaseSeed + i);
  }

  int mid_sweep_kills = 0;
  for (uint64_t seed : seeds) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun: LASERD_FAULT_SEED=", seed, ")"));
    std::mt19937_64 rng(seed);
    const int kills = 1 + static_cast<int>(rng() % 3);
    const bool cancel = rng() % 4 == 0;  // the last kill follows a CancelJob
    std::cout << "[ fault    ] seed " << seed << ": " << kills << " kill(s)"
              << (cancel ? ", the last after CancelJob" : "") << std::endl;

    pb::Job job;
    ASSERT_TRUE(server_->Create(Spec(), &job, absl::StrCat("fault-", seed)).ok());
    Seen seen;
    pb::Job stored;  // as the store held it at the last kill
    for (int i = 0; i < kills && !seen.terminal && !seen.cancel_acked; ++i) {
      const KillPoint kp = Draw(rng, stored, cancel && i == kills - 1);
      RunUntilKill(job.id(), kp, &seen);
      stored = CheckStore(job.id(), seen);
      const int64_t n = stored.result_count();
      const std::string where = Terminal(stored.state()) ? "after the job ended"
                                : !stored.has_baseline() ? "before the baseline was stored"
                                : n == 0                 ? "after the baseline, before any result"
                                : n < singles_           ? "among the singles"
                                                         : "during composition";
      ++landed_[where];
      if (n > 0 && n < total) ++mid_sweep_kills;
      std::cout << "[ fault    ]   kill " << i + 1 << " (" << kp.Describe() << "): store held " << n
                << "/" << total << " results, " << pb::JobState_Name(stored.state()) << ", "
                << where << std::endl;
      if (HasFatalFailure() || HasFailure()) return;
      server_->Start();
    }

    // The client reconnects at its next index until the job ends.
    std::mutex mu;
    grpc::Status st = WatchInto(job.id(), &seen, &mu, nullptr);
    ASSERT_TRUE(st.ok()) << st.error_message();
    pb::Job done;
    ASSERT_TRUE(GetJob(job.id(), &done));
    ASSERT_TRUE(Terminal(done.state())) << JsonOf(done);
    for (size_t i = 0; i < seen.stream.size(); ++i) {
      ASSERT_EQ(seen.stream[i].index(), static_cast<int64_t>(i));
    }
    if (seen.cancel_acked) {
      EXPECT_EQ(done.state(), pb::JOB_STATE_CANCELLED)
          << "an acknowledged cancellation did not end the job CANCELLED";
      // Stopped within one result of the acknowledgement, and not run again
      // after the restart.
      EXPECT_LE(done.result_count(), seen.cancel_reply.result_count() + 1);
      EXPECT_EQ(done.result_count(), stored.result_count()) << "the job ran again after restart";
      EXPECT_EQ(static_cast<int64_t>(seen.stream.size()), done.result_count());
      for (size_t i = 0; i < seen.stream.size(); ++i) {
        EXPECT_TRUE(MessageDifferencer::Equals(Comparable(seen.stream[i]), Comparable(want_[i])))
            << "result " << i;
      }
    } else {
      EXPECT_EQ(done.state(), pb::JOB_STATE_SUCCEEDED) << JsonOf(done);
      ASSERT_EQ(static_cast<int64_t>(seen.stream.size()), total)
          << "the client saw " << seen.stream.size() << " results of " << total;
      for (int64_t i = 0; i < total; ++i) {
        EXPECT_TRUE(MessageDifferencer::Equals(Comparable(seen.stream[i]), Comparable(want_[i])))
            << "result " << i << "\n got: " << JsonOf(Comparable(seen.stream[i]))
            << "\nwant: " << JsonOf(Comparable(want_[i]));
      }
      pb::Job want = ComparableJob(want_job_);
      want.set_request_id(done.request_id());
      pb::Job got = ComparableJob(done);
      got.set_request_id(done.request_id());
      EXPECT_TRUE(MessageDifferencer::Equals(got, want))
          << "the resumed job differs from the uninterrupted one\n got: " << JsonOf(got)
          << "\nwant: " << JsonOf(want);
    }
    finished_[job.id()] = done;
    if (HasFailure()) return;
  }
  std::cout << "[ fault    ] kills landed:";
  for (const auto& [where, count] : landed_) std::cout << " " << where << " " << count << ";";
  std::cout << std::endl;
  if (seeds.size() >= static_cast<size_t>(kDefaultTrials)) {
    EXPECT_GT(mid_sweep_kills, 0) << "no kill landed while the sweep was running";
  }
}

}  // namespace
