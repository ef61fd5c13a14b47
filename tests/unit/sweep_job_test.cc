// The one sweep driver (server/sweep_job.h) on the tiny Llama fixture: the
// order in which it calls its sink, the results it builds (dense indices,
// deltas against the baseline, the stack of each composition step), the
// progress (done of total, best single, best stack), resuming from stored
// results to the same results as one run, recorded times, and a sink error
// stopping the run.
#include "server/sweep_job.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/model/loaded_model.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/example_outputs.h"
#include "server/sweep_io.h"
#include "tests/support/fixtures.h"

namespace laserd::server {
namespace {

namespace fs = std::filesystem;
namespace pb = ::laser::v1;
using google::protobuf::util::MessageDifferencer;

// A SweepSink that records every call (the test double of the results file
// and the job store); it can fail the n-th StoreResult.
class RecordingSink : public SweepSink {
 public:
  absl::Status Planned(const laser::SweepRunner&, const pb::Progress& p) override {
    calls.push_back("Planned");
    planned_total = p.interventions_total();
    return absl::OkStatus();
  }
  absl::Status Continue() override {
    calls.push_back("Continue");
    return absl::OkStatus();
  }
  // Asked inside long work; stops the run once `interrupt_after` were asked.
  absl::Status Interrupt() override {
    if (interrupt_after >= 0 && interrupts >= interrupt_after) {
      ++interrupts_after_stop;
      return absl::CancelledError("stop asked");
    }
    ++interrupts;
    return absl::OkStatus();
  }
  absl::Status EnterPhase(pb::JobPhase phase) override {
    calls.push_back(pb::JobPhase_Name(phase));
    return absl::OkStatus();
  }
  absl::Status StoreBaseline(const pb::Evaluation& b, const pb::ExampleOutputs& o) override {
    calls.push_back("StoreBaseline");
    baseline = b;
    baseline_outputs = o;
    return absl::OkStatus();
  }
  absl::Status StoreBaselineOutputs(const pb::ExampleOutputs& o) override {
    calls.push_back("StoreBaselineOutputs");
    baseline_outputs = o;
    return absl::OkStatus();
  }
  absl::Status StoreResult(const pb::Result& r, const SweepProgress& s,
                           const pb::ExampleOutputs* o) override {
    if (static_cast<int>(results.size()) == fail_at) {
      return absl::CancelledError("job cancelled");
    }
    calls.push_back("StoreResult");
    results.push_back(r);
    progress.push_back(s);
    outputs.push_back(o ? std::optional<pb::ExampleOutputs>(*o) : std::nullopt);
    return absl::OkStatus();
  }
  void SinglesRunning(laser::SweepRunner&, bool running) override {
    calls.push_back(running ? "SinglesRunning(true)" : "SinglesRunning(false)");
  }

  int fail_at = -1;
  int interrupt_after = -1;  // -1: never stop
  int interrupts = 0, interrupts_after_stop = 0;
  std::vector<std::string> calls;
  int64_t planned_total = 0;
  pb::Evaluation baseline;
  pb::ExampleOutputs baseline_outputs;
  std::vector<pb::Result> results;
  std::vector<std::optional<pb::ExampleOutputs>> outputs;
  std::vector<SweepProgress> progress;
};

class SweepJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir =
        fs::temp_directory_path() / ("laserd_sweep_job_test_" + std::to_string(getpid()));
    test_support::MakeTinyLlamaDir(dir);
    dir_ = new std::string(dir.string());
    std::ofstream(dir / "data.jsonl") << test_support::kTenExamples;
    auto lm = model::LoadModel(*dir_, "cpu");
    ASSERT_TRUE(lm.ok()) << lm.status();
    lm_ = new model::LoadedModel(*std::move(lm));
    auto ds = eval::LoadDataset((dir / "data.jsonl").string());
    ASSERT_TRUE(ds.ok()) << ds.status();
    ds_ = new eval::Dataset(*std::move(ds));
  }
  static void TearDownTestSuite() {
    delete ds_;
    delete lm_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // Two types of two layers at two ranks, then greedy composition.
  static std::unique_ptr<laser::SweepRunner> Runner() {
    laser::SweepConfig c;
    c.matrix_types = {"attn.q", "mlp.out"};
    c.layer_indices = {0, 1};
    c.ranks = {0.05, 0.5};
    c.svd.method = kernels::SvdMethod::kExact;
    c.split.val_fraction = 0.3;
    c.compose = true;
    c.keep_examples = true;  // as SweepConfigFromSpec sets it
    auto r = laser::SweepRunner::Create(lm_->model.get(), *lm_->tokenizer, *ds_, c);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }

  // The job "sweep-test" run once, uninterrupted, into `whole`.
  static SweepJob WholeRun(RecordingSink* whole) {
    SweepJob job;
    job.id = "sweep-test";
    auto runner = Runner();
    EXPECT_NE(runner, nullptr);
    if (runner != nullptr) EXPECT_TRUE(RunSweepJob(*runner, job, *whole).ok());
    return job;
  }

  static std::string* dir_;
  static model::LoadedModel* lm_;
  static eval::Dataset* ds_;
};
std::string* SweepJobTest::dir_ = nullptr;
model::LoadedModel* SweepJobTest::lm_ = nullptr;
eval::Dataset* SweepJobTest::ds_ = nullptr;

TEST_F(SweepJobTest, OneRunCallsTheSinkInOrderWithCompleteResultsAndProgress) {
  auto runner = Runner();
  ASSERT_NE(runner, nullptr);
  const int64_t singles = runner->shard_interventions();
  ASSERT_EQ(singles, 8);
  RecordingSink sink;
  SweepJob job;
  job.id = "sweep-test";
  auto out = RunSweepJob(*runner, job, sink);
  ASSERT_TRUE(out.ok()) << out.status();

  ASSERT_GT(sink.results.size(), static_cast<size_t>(singles));  // at least one composition step
  std::vector<std::string> want = {
      "Planned",  "Continue",           "JOB_PHASE_BASELINE",  "StoreBaseline",
      "Continue", "JOB_PHASE_SWEEPING", "SinglesRunning(true)"};
  want.insert(want.end(), singles, "StoreResult");
  want.push_back("SinglesRunning(false)");
  want.push_back("JOB_PHASE_COMPOSING");
  want.insert(want.end(), sink.results.size() - singles, "StoreResult");
  EXPECT_EQ(sink.calls, want);
  EXPECT_EQ(sink.planned_total, singles);
  EXPECT_TRUE(MessageDifferencer::Equals(sink.baseline, out->baseline));
  EXPECT_EQ(out->results, static_cast<int64_t>(sink.results.size()));

  const pb::Result* best = nullptr;
  const pb::Result* best_stack = nullptr;
  for (size_t i = 0; i < sink.results.size(); ++i) {
    const pb::Result& r = sink.results[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(r.job_id(), "sweep-test");
    EXPECT_EQ(r.index(), static_cast<int64_t>(i));
    EXPECT_EQ(r.plan_index(), static_cast<int64_t>(i));  // unsharded: plan order
    EXPECT_EQ(r.kind(), i < static_cast<size_t>(singles) ? pb::RESULT_KIND_SINGLE
                                                         : pb::RESULT_KIND_COMPOSITION);
    EXPECT_TRUE(MessageDifferencer::Equals(
        r.validation_delta(), Deltas(r.metrics().validation(), out->baseline.validation())));
    EXPECT_TRUE(MessageDifferencer::Equals(r.test_delta(),
                                           Deltas(r.metrics().test(), out->baseline.test())));
    EXPECT_FALSE(r.has_create_time());
    EXPECT_FALSE(r.has_svd_duration());
    if (r.kind() == pb::RESULT_KIND_SINGLE) {
      const auto& v = r.metrics().validation();
      if (!best || laser::BetterOnValidation(v.accuracy(), v.log_loss(),
                                             best->metrics().validation().accuracy(),
                                             best->metrics().validation().log_loss())) {
        best = &r;
      }
    } else {
      // Step n stacks n earlier interventions.
      EXPECT_EQ(r.stacked_on_size(), static_cast<int>(i - singles));
      if (r.kept()) best_stack = &r;
    }
    const SweepProgress& s = sink.progress[i];
    EXPECT_EQ(s.progress.interventions_done(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(s.progress.interventions_total(), std::max<int64_t>(singles, i + 1));
    EXPECT_LE(s.progress.fraction(), 1.0);
    ASSERT_TRUE(s.progress.has_best());
    EXPECT_TRUE(MessageDifferencer::Equals(s.progress.best(), *best));
    ASSERT_EQ(s.best_composition.has_value(), best_stack != nullptr);
    if (best_stack) {
      EXPECT_TRUE(MessageDifferencer::Equals(*s.best_composition, *best_stack));
    }
  }
  EXPECT_TRUE(MessageDifferencer::Equals(out->standing.progress.best(), *best));
  EXPECT_EQ(out->standing.progress.phase(), pb::JOB_PHASE_COMPOSING);
}

TEST_F(SweepJobTest, ResumingFromStoredResultsGivesWhatOneRunGives) {
  RecordingSink whole;
  const SweepJob job = WholeRun(&whole);
  auto runner = Runner();
  ASSERT_NE(runner, nullptr);

  for (size_t kept : {size_t{3}, size_t{8}, whole.results.size() - 1}) {
    SCOPED_TRACE(kept);
    SweepJob resumed = job;
    resumed.stored.assign(whole.results.begin(), whole.results.begin() + kept);
    resumed.baseline = whole.baseline;
    RecordingSink rest;
    auto r = Runner();
    ASSERT_NE(r, nullptr);
    auto out = RunSweepJob(*r, resumed, rest);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(std::count(rest.calls.begin(), rest.calls.end(), "StoreBaseline"), 0);
    // No outcomes were stored with the baseline: they are scored again.
    EXPECT_EQ(std::count(rest.calls.begin(), rest.calls.end(), "StoreBaselineOutputs"), 1);
    EXPECT_TRUE(MessageDifferencer::Equals(rest.baseline_outputs, whole.baseline_outputs));
    ASSERT_EQ(rest.results.size(), whole.results.size() - kept);
    for (size_t i = 0; i < rest.results.size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(rest.results[i], whole.results[kept + i]))
          << rest.results[i].DebugString() << "\nvs\n"
          << whole.results[kept + i].DebugString();
    }
    EXPECT_EQ(out->results, static_cast<int64_t>(whole.results.size()));
    EXPECT_TRUE(MessageDifferencer::Equals(out->standing.progress.best(),
                                           whole.progress.back().progress.best()));
    EXPECT_EQ(out->standing.best_composition.has_value(),
              whole.progress.back().best_composition.has_value());
  }
}

TEST_F(SweepJobTest, ServedJobsRecordTimesAndASinkErrorStopsTheRun) {
  auto runner = Runner();
  ASSERT_NE(runner, nullptr);
  RecordingSink sink;
  SweepJob job;
  job.id = "job-1";
  job.record_times = true;
  job.elapsed_before_ns = int64_t{5} * 1000000000;
  ASSERT_TRUE(RunSweepJob(*runner, job, sink).ok());
  for (const pb::Result& r : sink.results) {
    EXPECT_TRUE(r.has_create_time());
    EXPECT_TRUE(r.has_svd_duration());
    EXPECT_TRUE(r.has_eval_duration());
  }
  // Earlier runs' time counts in elapsed.
  EXPECT_GE(sink.progress.back().progress.elapsed().seconds(), 5);
  EXPECT_TRUE(sink.progress.back().progress.has_eta());

  RecordingSink failing;
  failing.fail_at = 2;
  auto r = Runner();
  ASSERT_NE(r, nullptr);
  auto out = RunSweepJob(*r, job, failing);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(failing.results.size(), 2u);
  EXPECT_EQ(failing.calls.back(), "SinglesRunning(false)");
}

// Every result that becomes the best single, and every composition step,
// carries its paired tests against the baseline, computed from the outcomes
// the sink is given; other singles carry none. Outputs reach the sink only
// with keep_example_outputs; the significance is the same either way.
TEST_F(SweepJobTest, NewBestsAndCompositionStepsCarryTheirSignificance) {
  RecordingSink plain, keeping;
  WholeRun(&plain);
  SweepJob job;
  job.id = "sweep-test";
  job.keep_example_outputs = true;
  auto runner = Runner();
  ASSERT_NE(runner, nullptr);
  ASSERT_TRUE(RunSweepJob(*runner, job, keeping).ok());
  ASSERT_EQ(plain.results.size(), keeping.results.size());
  ASSERT_EQ(keeping.baseline_outputs.examples_size(), 10);
  EXPECT_EQ(keeping.baseline_outputs.result_index(), -1);
  EXPECT_EQ(keeping.baseline_outputs.plan_index(), -1);
  int validation = 0;
  for (int i = 0; i < 10; ++i) {
    const pb::ExampleOutcome& o = keeping.baseline_outputs.examples(i);
    EXPECT_EQ(o.index(), i);
    // split.val_fraction 0.3 of 10, first-fraction rule: 0, 1, 2 validate.
    EXPECT_EQ(o.split(), i < 3 ? pb::EXAMPLE_SPLIT_VALIDATION : pb::EXAMPLE_SPLIT_TEST);
    EXPECT_GT(o.answer_tokens(), 0);
    EXPECT_LT(o.answer_logprob(), 0);
    EXPECT_TRUE(o.generated_text().empty());
    validation += o.split() == pb::EXAMPLE_SPLIT_VALIDATION;
  }
  EXPECT_EQ(validation, 3);
  int64_t correct = 0;
  for (const auto& o : keeping.baseline_outputs.examples()) {
    correct += o.split() == pb::EXAMPLE_SPLIT_TEST && o.correct();
  }
  EXPECT_EQ(correct, keeping.baseline.test().correct());

  const pb::Result* best = nullptr;
  int tested = 0;
  for (size_t i = 0; i < keeping.results.size(); ++i) {
    SCOPED_TRACE(i);
    const pb::Result& r = keeping.results[i];
    EXPECT_TRUE(MessageDifferencer::Equals(r, plain.results[i]));
    EXPECT_FALSE(plain.outputs[i].has_value());
    ASSERT_TRUE(keeping.outputs[i].has_value());
    const pb::ExampleOutputs& o = *keeping.outputs[i];
    EXPECT_EQ(o.job_id(), "sweep-test");
    EXPECT_EQ(o.result_index(), r.index());
    EXPECT_EQ(o.plan_index(), r.plan_index());
    ASSERT_EQ(o.examples_size(), 10);
    int64_t val_correct = 0;
    for (const auto& e : o.examples()) {
      val_correct += e.split() == pb::EXAMPLE_SPLIT_VALIDATION && e.correct();
    }
    EXPECT_EQ(val_correct, r.metrics().validation().correct());
    bool new_best = false;
    if (r.kind() == pb::RESULT_KIND_SINGLE) {
      const auto& v = r.metrics().validation();
      new_best = !best || laser::BetterOnValidation(v.accuracy(), v.log_loss(),
                                                    best->metrics().validation().accuracy(),
                                                    best->metrics().validation().log_loss());
      if (new_best) best = &r;
    }
    const bool want = new_best || r.kind() == pb::RESULT_KIND_COMPOSITION;
    EXPECT_EQ(r.has_significance(), want);
    if (!want) continue;
    ++tested;
    auto sig = SignificanceProto(keeping.baseline_outputs, o);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(MessageDifferencer::Equals(r.significance(), *sig));
    EXPECT_EQ(r.significance().result_index(), r.index());
    EXPECT_EQ(r.significance().alpha(), 0.05);
    EXPECT_EQ(r.significance().bootstrap_resamples(), 10000);
    EXPECT_EQ(r.significance().validation().examples(), 3);
    EXPECT_EQ(r.significance().test().examples(), 7);
    EXPECT_NEAR(r.significance().test().accuracy_delta(), r.test_delta().accuracy(), 1e-9);
    EXPECT_NEAR(r.significance().validation().log_loss_delta(), r.validation_delta().log_loss(),
                1e-9);
    EXPECT_EQ(keeping.progress[i].progress.best().has_significance(), true);
  }
  EXPECT_GE(tested, 2);
  EXPECT_TRUE(keeping.progress.back().progress.best().has_significance());
}

// A resume given the baseline's stored outcomes does not score it again.
TEST_F(SweepJobTest, ResumingWithStoredBaselineOutputsSkipsTheBaseline) {
  RecordingSink whole;
  const SweepJob job = WholeRun(&whole);
  SweepJob resumed = job;
  resumed.stored.assign(whole.results.begin(), whole.results.begin() + 3);
  resumed.baseline = whole.baseline;
  resumed.baseline_outputs = whole.baseline_outputs;
  RecordingSink rest;
  auto r = Runner();
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(RunSweepJob(*r, resumed, rest).ok());
  EXPECT_EQ(std::count(rest.calls.begin(), rest.calls.end(), "JOB_PHASE_BASELINE"), 0);
  EXPECT_EQ(std::count(rest.calls.begin(), rest.calls.end(), "StoreBaselineOutputs"), 0);
  ASSERT_EQ(rest.results.size(), whole.results.size() - 3);
  for (size_t i = 0; i < rest.results.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(rest.results[i], whole.results[3 + i]));
  }
}

// Long work asks the sink whether to stop (before every scoring batch and
// every matrix of a decomposition), far more often than once per
// intervention; a stop asked at any of those points ends the run at once with
// its status, having stored fewer results than the plan holds.
TEST_F(SweepJobTest, AStopAskedInsideLongWorkEndsTheRunAtOnce) {
  RecordingSink whole;
  const SweepJob job = WholeRun(&whole);
  ASSERT_GT(whole.interrupts, static_cast<int>(whole.results.size()));
  for (int after : {0, 1, 2, whole.interrupts / 3, whole.interrupts / 2, whole.interrupts - 1}) {
    SCOPED_TRACE(after);
    RecordingSink sink;
    sink.interrupt_after = after;
    auto runner = Runner();
    ASSERT_NE(runner, nullptr);
    auto out = RunSweepJob(*runner, job, sink);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
    EXPECT_EQ(sink.interrupts_after_stop, 1);  // nothing more was asked, nothing more ran
    EXPECT_LT(sink.results.size(), whole.results.size());
    // The model is left unedited: a fresh run scores the same baseline.
    auto fresh = Runner();
    ASSERT_NE(fresh, nullptr);
    auto base = fresh->Baseline();
    ASSERT_TRUE(base.ok());
    EXPECT_TRUE(MessageDifferencer::Equals(EvaluationProto(*base), whole.baseline));
  }
}

// Asking changes nothing that is computed: the same bits with and without.
TEST_F(SweepJobTest, AskingWhetherToStopChangesNoResult) {
  auto plain = Runner();
  auto asked = Runner();
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(asked, nullptr);
  int asks = 0;
  asked->set_interrupt([&asks] {
    ++asks;
    return absl::OkStatus();
  });
  auto b1 = plain->Baseline();
  auto b2 = asked->Baseline();
  ASSERT_TRUE(b1.ok() && b2.ok());
  std::vector<laser::SweepResult> r1, r2;
  ASSERT_TRUE(plain
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          r1.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  ASSERT_TRUE(asked
                  ->Run({},
                        [&](const laser::SweepResult& r) {
                          r2.push_back(r);
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_GT(asks, 0);
  auto same = [](const eval::Aggregate& a, const eval::Aggregate& b) {
    return a.count == b.count && a.accuracy == b.accuracy && a.log_loss == b.log_loss &&
           a.topk_accuracy == b.topk_accuracy;
  };
  EXPECT_TRUE(same(b1->validation, b2->validation) && same(b1->test, b2->test));
  ASSERT_EQ(r1.size(), r2.size());
  for (size_t i = 0; i < r1.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(r1[i].intervention.relative_error, r2[i].intervention.relative_error);
    EXPECT_TRUE(same(r1[i].metrics.validation, r2[i].metrics.validation));
    EXPECT_TRUE(same(r1[i].metrics.test, r2[i].metrics.test));
  }
}

}  // namespace
}  // namespace laserd::server
