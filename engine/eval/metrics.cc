#include "engine/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace laserd::eval {

absl::StatusOr<std::vector<int>> ParseTopK(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int k = 0;
    if (!absl::SimpleAtoi(part, &k) || k < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("topk: '", part, "' is not a positive integer (expected e.g. 1,5,10)"));
    }
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) {
    return absl::InvalidArgumentError(absl::StrCat("topk: '", s, "' lists a value twice"));
  }
  return out;
}

absl::StatusOr<ExampleResult> ScoreExample(
    const TokenizedExample& ex, const std::vector<const std::vector<model::TokenScore>*>& scores,
    const std::vector<int>& topk) {
  if (scores.size() != ex.seqs.size() || ex.seqs.empty()) {
    return absl::InternalError(absl::StrCat("line ", ex.line, ": ", scores.size(),
                                            " score vectors for ", ex.seqs.size(), " sequences"));
  }
  ExampleResult r;
  r.index = ex.index;
  r.line = ex.line;
  r.kind = ex.kind;
  r.label = ex.label;
  std::vector<double> totals(ex.seqs.size());
  for (size_t s = 0; s < ex.seqs.size(); ++s) {
    const TokenizedSequence& seq = ex.seqs[s];
    if (scores[s] == nullptr || static_cast<int64_t>(scores[s]->size()) != seq.answer_tokens()) {
      return absl::InternalError(
          absl::StrCat("line ", ex.line, ": the model returned ", scores[s] ? scores[s]->size() : 0,
                       " scores for a sequence with ", seq.answer_tokens(), " answer tokens"));
    }
    double total = 0;
    for (const model::TokenScore& t : *scores[s]) total += t.logprob;
    totals[s] = total;
  }
  // The gold sequence: the completion, or the labelled choice.
  size_t gold = 0;
  if (ex.kind == ExampleKind::kChoice) {
    if (ex.label < 0 || ex.label >= static_cast<int64_t>(ex.seqs.size())) {
      return absl::InternalError(
          absl::StrCat("line ", ex.line, ": label ", ex.label, " out of range"));
    }
    gold = static_cast<size_t>(ex.label);
    r.choice_logprobs = totals;
    r.chosen = 0;
    for (size_t s = 0; s < totals.size(); ++s) {
      r.choice_tokens.push_back(ex.seqs[s].answer_tokens());
      if (totals[s] > totals[r.chosen]) r.chosen = static_cast<int64_t>(s);  // ties keep lowest
    }
  }
  const TokenizedSequence& seq = ex.seqs[gold];
  const std::vector<model::TokenScore>& sc = *scores[gold];
  r.logprob = totals[gold];
  r.answer_tokens = seq.answer_tokens();
  r.prompt_tokens = seq.answer_start;
  r.boundary_mismatch = seq.boundary_mismatch;
  r.greedy_match = true;
  for (int64_t p = 0; p < r.answer_tokens; ++p) {
    const int32_t gold_id = seq.tokens[seq.answer_start + p];
    r.answer_ids.push_back(gold_id);
    r.greedy_ids.push_back(sc[p].argmax);
    r.token_logprobs.push_back(sc[p].logprob);
    if (sc[p].argmax != gold_id) r.greedy_match = false;
  }
  r.first_greater = sc[0].greater;
  for (int k : topk) r.topk_hits.push_back(r.first_greater < k);
  r.correct = ex.kind == ExampleKind::kChoice ? r.chosen == r.label : r.greedy_match;
  return r;
}

Aggregate ComputeAggregate(const std::vector<ExampleResult>& results, const std::vector<int>& topk,
                           const std::vector<int64_t>* subset) {
  Aggregate a;
  a.topk = topk;
  std::vector<double> hits(topk.size(), 0.0);
  double correct = 0, loss = 0, lp = 0, f1 = 0, pr = 0, rc = 0, gt = 0;
  auto add = [&](const ExampleResult& r) {
    if (r.generated) {
      ++a.generated;
      f1 += r.f1;
      pr += r.precision;
      rc += r.recall;
      gt += static_cast<double>(r.generated_ids.size());
    }
    ++a.count;
    correct += r.correct ? 1 : 0;
    loss += -r.logprob / static_cast<double>(r.answer_tokens);
    lp += r.logprob;
    for (size_t k = 0; k < topk.size() && k < r.topk_hits.size(); ++k) hits[k] += r.topk_hits[k];
  };
  if (subset) {
    for (int64_t i : *subset) add(results[i]);
  } else {
    for (const ExampleResult& r : results) add(r);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double n = static_cast<double>(a.count);
  a.accuracy = a.count ? 100.0 * correct / n : nan;
  a.log_loss = a.count ? loss / n : nan;
  a.mean_logprob = a.count ? lp / n : nan;
  for (double h : hits) a.topk_accuracy.push_back(a.count ? 100.0 * h / n : nan);
  const double g = static_cast<double>(a.generated);
  a.f1 = a.generated ? 100.0 * f1 / g : nan;
  a.precision = a.generated ? 100.0 * pr / g : nan;
  a.recall = a.generated ? 100.0 * rc / g : nan;
  a.generated_tokens = a.generated ? gt / g : nan;
  return a;
}

namespace {
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

nlohmann::json AggregateJson(const Aggregate& a) {
  nlohmann::json j;
  j["count"] = a.count;
  j["accuracy"] = Num(a.accuracy);
  j["log_loss"] = Num(a.log_loss);
  j["mean_logprob"] = Num(a.mean_logprob);
  nlohmann::json tk = nlohmann::json::object();
  for (size_t i = 0; i < a.topk.size(); ++i) {
    tk[absl::StrCat("top", a.topk[i])] = Num(a.topk_accuracy[i]);
  }
  j["topk_accuracy"] = tk;
  if (a.generated > 0) {
    j["generated"] = a.generated;
    j["f1"] = Num(a.f1);
    j["precision"] = Num(a.precision);
    j["recall"] = Num(a.recall);
    j["generated_tokens"] = Num(a.generated_tokens);
  }
  return j;
}

nlohmann::json ExampleJson(const ExampleResult& r, const std::vector<int>& topk,
                           const std::string& split) {
  nlohmann::json j;
  j["index"] = r.index;
  j["line"] = r.line;
  j["split"] = split;
  j["kind"] = ExampleKindName(r.kind);
  j["correct"] = r.correct;
  j["logprob"] = r.logprob;
  j["answer_tokens"] = r.answer_tokens;
  j["prompt_tokens"] = r.prompt_tokens;
  j["greedy_match"] = r.greedy_match;
  j["first_token_rank"] = r.first_greater;  // 0 = the model's top token
  nlohmann::json tk = nlohmann::json::object();
  for (size_t i = 0; i < topk.size() && i < r.topk_hits.size(); ++i) {
    tk[absl::StrCat("top", topk[i])] = static_cast<bool>(r.topk_hits[i]);
  }
  j["topk"] = tk;
  j["answer_ids"] = r.answer_ids;
  j["greedy_ids"] = r.greedy_ids;
  j["token_logprobs"] = r.token_logprobs;
  if (r.boundary_mismatch) j["boundary_mismatch"] = true;
  if (r.generated) {
    j["generated_ids"] = r.generated_ids;
    j["generated_text"] = r.generated_text;
    j["stop_reason"] = r.stop_reason;
    j["f1"] = r.f1;
    j["precision"] = r.precision;
    j["recall"] = r.recall;
  }
  if (r.kind == ExampleKind::kChoice) {
    j["label"] = r.label;
    j["chosen"] = r.chosen;
    j["choice_logprobs"] = r.choice_logprobs;
    j["choice_tokens"] = r.choice_tokens;
  }
  return j;
}

}  // namespace laserd::eval
