#include "engine/eval/run.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace laserd::eval {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string Fmt(double v, int prec) {
  return std::isfinite(v) ? absl::StrFormat("%.*f", prec, v) : std::string("-");
}

}  // namespace

absl::StatusOr<EvalReport> EvalLoaded(model::LoadedModel& lm, const Dataset& ds,
                                      const EvalConfig& cfg) {
  EvalReport r;
  r.model_path = cfg.model_path;
  r.data_path = ds.source;
  r.device = lm.backend->name();
  const model::ModelConfig& mc = lm.model->config();
  r.arch = mc.model_type.empty() ? model::ArchName(mc.arch) : mc.model_type;
  r.tokenizer_source = lm.tokenizer_source;
  r.parameters = lm.model->ParameterCount();
  r.context = mc.max_positions;
  r.adds_bos = lm.tokenizer->adds_bos();
  r.split_options = cfg.split;
  r.topk = cfg.score.topk;
  r.examples = static_cast<int64_t>(ds.examples.size());

  LASERD_ASSIGN_OR_RETURN(auto split, MakeSplit(r.examples, cfg.split));
  r.split = std::move(split);

  LASERD_ASSIGN_OR_RETURN(auto tokenized, TokenizeDataset(*lm.tokenizer, ds, mc.max_positions));
  for (const TokenizedExample& ex : tokenized) {
    for (const TokenizedSequence& s : ex.seqs) {
      ++r.sequences;
      r.tokens += static_cast<int64_t>(s.tokens.size());
      r.answer_tokens += s.answer_tokens();
      r.boundary_mismatches += s.boundary_mismatch ? 1 : 0;
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  LASERD_ASSIGN_OR_RETURN(auto results, ScoreExamples(*lm.model, tokenized, cfg.score));
  r.score_seconds = Seconds(t0);
  r.results = std::move(results);
  r.match = cfg.match;
  const auto t1 = std::chrono::steady_clock::now();
  LASERD_RETURN_IF_ERROR(
      ApplyMatchRule(*lm.model, *lm.tokenizer, ds.examples, cfg.match, &r.results));
  r.generate_seconds = Seconds(t1);

  r.splits.push_back({"validation", ComputeAggregate(r.results, r.topk, &r.split.validation)});
  r.splits.push_back({"test", ComputeAggregate(r.results, r.topk, &r.split.test)});
  r.splits.push_back({"all", ComputeAggregate(r.results, r.topk)});
  return r;
}

absl::StatusOr<EvalReport> RunEval(const EvalConfig& cfg) {
  // Cheap checks first, so a typo does not cost a model load.
  if (!(cfg.split.val_fraction > 0.0 && cfg.split.val_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction must be in (0, 1), got ", cfg.split.val_fraction));
  }
  if (cfg.score.topk.empty()) return absl::InvalidArgumentError("topk: empty list");
  LASERD_RETURN_IF_ERROR(ValidateMatchOptions(cfg.match));
  if (cfg.score.batch_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_tokens must be positive, got ", cfg.score.batch_tokens));
  }
  LASERD_ASSIGN_OR_RETURN(auto ds, LoadDataset(cfg.data_path));
  const auto t0 = std::chrono::steady_clock::now();
  LASERD_ASSIGN_OR_RETURN(auto lm,
                          model::LoadModel(cfg.model_path, cfg.device, cfg.tokenizer_path));
  const double load_seconds = Seconds(t0);
  LASERD_ASSIGN_OR_RETURN(auto report, EvalLoaded(lm, ds, cfg));
  report.load_seconds = load_seconds;
  if (!cfg.per_example_out.empty()) {
    std::ofstream out(cfg.per_example_out, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot open ", cfg.per_example_out, " for writing"));
    }
    absl::Status st = WritePerExampleJsonl(report.results, report.topk, report.split, out);
    if (!st.ok())
      return absl::Status(st.code(), absl::StrCat(cfg.per_example_out, ": ", st.message()));
  }
  return report;
}

nlohmann::json ReportJson(const EvalReport& r) {
  nlohmann::json j;
  j["model"] = {{"path", r.model_path},  {"arch", r.arch},     {"parameters", r.parameters},
                {"context", r.context},  {"device", r.device}, {"tokenizer", r.tokenizer_source},
                {"adds_bos", r.adds_bos}};
  j["data"] = {{"path", r.data_path},
               {"examples", r.examples},
               {"sequences", r.sequences},
               {"tokens", r.tokens},
               {"answer_tokens", r.answer_tokens},
               {"boundary_mismatches", r.boundary_mismatches}};
  j["split"] = {{"mode", SplitModeName(r.split_options.mode)},
                {"val_fraction", r.split_options.val_fraction},
                {"validation", r.split.validation.size()},
                {"test", r.split.test.size()}};
  if (r.split_options.mode == SplitMode::kShuffle) j["split"]["seed"] = r.split_options.seed;
  j["match"] = {{"rule", MatchRuleName(r.match.rule)}};
  if (IsGenerationRule(r.match.rule)) {
    j["match"]["max_new_tokens"] = r.match.max_new_tokens;
    j["match"]["stop_strings"] = r.match.stop_strings;
    j["match"]["match_prompt"] = r.match.match_prompt;
  }
  nlohmann::json m = nlohmann::json::object();
  for (const SplitAggregates& s : r.splits) m[s.name] = AggregateJson(s.agg);
  j["metrics"] = m;
  j["timing"] = {
      {"load_seconds", r.load_seconds},
      {"score_seconds", r.score_seconds},
      {"generate_seconds", r.generate_seconds},
      {"tokens_per_second",
       r.score_seconds > 0 ? nlohmann::json(r.tokens / r.score_seconds) : nlohmann::json()}};
  return j;
}

std::string FormatReport(const EvalReport& r) {
  std::string s;
  absl::StrAppendFormat(&s, "model    %s (%s, %d parameters, context %d) on %s\n", r.model_path,
                        r.arch, r.parameters, r.context, r.device);
  absl::StrAppendFormat(&s, "data     %s: %d examples, %d sequences, %d tokens (%d answer)\n",
                        r.data_path, r.examples, r.sequences, r.tokens, r.answer_tokens);
  if (r.split_options.mode == SplitMode::kShuffle) {
    absl::StrAppendFormat(
        &s, "split    shuffle (seed %d, validation fraction %g): %d validation, %d test\n",
        r.split_options.seed, r.split_options.val_fraction, r.split.validation.size(),
        r.split.test.size());
  } else {
    absl::StrAppendFormat(&s, "split    first %g of the file: %d validation, %d test\n",
                          r.split_options.val_fraction, r.split.validation.size(),
                          r.split.test.size());
  }
  if (r.boundary_mismatches > 0) {
    absl::StrAppendFormat(&s,
                          "note     %d sequences tokenize differently at the prompt/answer "
                          "boundary (lm-eval rule applied)\n",
                          r.boundary_mismatches);
  }
  const bool gen = IsGenerationRule(r.match.rule);
  if (gen) {
    absl::StrAppendFormat(&s, "match    %s on greedy generation (max %d new tokens%s%s)\n",
                          MatchRuleName(r.match.rule), r.match.max_new_tokens,
                          r.match.stop_strings.empty() ? "" : ", stop strings",
                          r.match.match_prompt ? ", prompt included" : "");
  } else {
    absl::StrAppendFormat(&s, "match    %s\n", MatchRuleName(r.match.rule));
  }
  s += "\n";
  std::vector<std::string> head = {"split", "count", "accuracy", "log-loss"};
  for (int k : r.topk) head.push_back(absl::StrCat("top-", k));
  if (gen) head.push_back("f1");
  std::vector<std::vector<std::string>> rows = {head};
  for (const SplitAggregates& sp : r.splits) {
    std::vector<std::string> row = {sp.name, absl::StrCat(sp.agg.count), Fmt(sp.agg.accuracy, 2),
                                    Fmt(sp.agg.log_loss, 4)};
    for (double t : sp.agg.topk_accuracy) row.push_back(Fmt(t, 2));
    if (gen) row.push_back(Fmt(sp.agg.f1, 2));
    rows.push_back(row);
  }
  std::vector<size_t> width(head.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      s += c == 0 ? row[c] + pad : "  " + pad + row[c];
    }
    s += "\n";
  }
  s += "\naccuracy and top-k in %, log-loss = mean of -logprob/answer_tokens (nats)\n";
  absl::StrAppendFormat(&s, "time     load %.2fs, scoring %.2fs (%.0f tokens/s)", r.load_seconds,
                        r.score_seconds, r.score_seconds > 0 ? r.tokens / r.score_seconds : 0.0);
  if (gen) absl::StrAppendFormat(&s, ", generation %.2fs", r.generate_seconds);
  s += "\n";
  return s;
}

}  // namespace laserd::eval
