#include "server/example_outputs.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace laserd::server {

namespace pb = ::laser::v1;

eval::SignificanceOptions SweepSignificanceOptions() { return eval::SignificanceOptions{}; }

pb::ExampleOutputs ExampleOutputsProto(const std::vector<eval::ExampleResult>& examples,
                                       const eval::Split& split, const std::string& job_id,
                                       int64_t result_index, int64_t plan_index) {
  std::vector<pb::ExampleSplit> which(examples.size(), pb::EXAMPLE_SPLIT_UNSPECIFIED);
  for (int64_t i : split.validation) {
    if (i >= 0 && i < static_cast<int64_t>(which.size())) which[i] = pb::EXAMPLE_SPLIT_VALIDATION;
  }
  for (int64_t i : split.test) {
    if (i >= 0 && i < static_cast<int64_t>(which.size())) which[i] = pb::EXAMPLE_SPLIT_TEST;
  }
  pb::ExampleOutputs out;
  out.set_job_id(job_id);
  out.set_result_index(result_index);
  out.set_plan_index(plan_index);
  out.mutable_examples()->Reserve(static_cast<int>(examples.size()));
  for (size_t i = 0; i < examples.size(); ++i) {
    const eval::ExampleResult& r = examples[i];
    pb::ExampleOutcome* o = out.add_examples();
    o->set_index(static_cast<int64_t>(i));
    o->set_split(which[i]);
    o->set_correct(r.correct);
    o->set_answer_logprob(r.logprob);
    o->set_answer_tokens(r.answer_tokens);
    if (r.kind == eval::ExampleKind::kChoice) o->set_chosen(static_cast<int32_t>(r.chosen));
    // The compared continuation (valid UTF-8: undecodable bytes are U+FFFD).
    if (r.generated) o->set_generated_text(r.generated_text);
  }
  return out;
}

namespace {

double LogLoss(const pb::ExampleOutcome& o) {
  return o.answer_tokens() > 0 ? -o.answer_logprob() / static_cast<double>(o.answer_tokens()) : 0;
}

void Fill(const eval::SplitTest& t, pb::SplitSignificance* s) {
  s->set_examples(t.examples);
  s->set_improved(t.improved);
  s->set_worsened(t.worsened);
  s->set_p_value(t.p_value);
  s->set_significant(t.significant);
  s->set_accuracy_delta(t.accuracy_delta);
  s->set_accuracy_ci_low(t.accuracy_ci_low);
  s->set_accuracy_ci_high(t.accuracy_ci_high);
  s->set_log_loss_delta(t.log_loss_delta);
  s->set_log_loss_ci_low(t.log_loss_ci_low);
  s->set_log_loss_ci_high(t.log_loss_ci_high);
}

}  // namespace

absl::StatusOr<pb::Significance> SignificanceProto(const pb::ExampleOutputs& baseline,
                                                   const pb::ExampleOutputs& edited,
                                                   const eval::SignificanceOptions& options) {
  if (baseline.examples_size() != edited.examples_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "significance: the baseline has ", baseline.examples_size(), " example outputs, result ",
        edited.result_index(), " has ", edited.examples_size()));
  }
  std::vector<eval::PairedOutcome> bv, ev, bt, et;
  for (int i = 0; i < baseline.examples_size(); ++i) {
    const pb::ExampleOutcome& b = baseline.examples(i);
    const pb::ExampleOutcome& e = edited.examples(i);
    if (b.index() != e.index() || b.split() != e.split()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "significance: example output ", i, " of result ", edited.result_index(),
          " is not the baseline's example (index ", e.index(), " vs ", b.index(), ")"));
    }
    const bool val = b.split() == pb::EXAMPLE_SPLIT_VALIDATION;
    if (!val && b.split() != pb::EXAMPLE_SPLIT_TEST) continue;
    (val ? bv : bt).push_back({b.correct(), LogLoss(b)});
    (val ? ev : et).push_back({e.correct(), LogLoss(e)});
  }
  pb::Significance s;
  s.set_result_index(edited.result_index());
  s.set_alpha(options.alpha);
  s.set_confidence(options.confidence);
  s.set_bootstrap_resamples(static_cast<int32_t>(options.resamples));
  s.set_bootstrap_seed(options.seed);
  eval::SignificanceOptions test_options = options;
  test_options.seed = options.seed + 1;  // the test split's own stream
  auto v = eval::PairedTest(bv, ev, options);
  if (!v.ok()) return v.status();
  auto t = eval::PairedTest(bt, et, test_options);
  if (!t.ok()) return t.status();
  Fill(*v, s.mutable_validation());
  Fill(*t, s.mutable_test());
  return s;
}

std::string ExampleOutputsPath(const std::string& results_path) {
  if (absl::EndsWith(results_path, ".jsonl")) {
    return absl::StrCat(results_path.substr(0, results_path.size() - 6), ".examples.jsonl");
  }
  return absl::StrCat(results_path, ".examples.jsonl");
}

}  // namespace laserd::server
