#include "client/laserctl_core.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace laserd::client {

namespace pb = ::laser::v1;
using google::protobuf::util::JsonPrintOptions;

int ExitCodeForStatusCode(int code) {
  switch (code) {
    case 0:
      return kExitOk;
    case 3:   // INVALID_ARGUMENT
    case 6:   // ALREADY_EXISTS
    case 8:   // RESOURCE_EXHAUSTED
    case 9:   // FAILED_PRECONDITION
    case 11:  // OUT_OF_RANGE
      return kExitRejected;
    case 5:  // NOT_FOUND
      return kExitNotFound;
    case 7:   // PERMISSION_DENIED
    case 16:  // UNAUTHENTICATED
      return kExitAuth;
    case 4:   // DEADLINE_EXCEEDED
    case 14:  // UNAVAILABLE
      return kExitUnavailable;
    default:  // CANCELLED, UNKNOWN, ABORTED, UNIMPLEMENTED, INTERNAL, DATA_LOSS
      return kExitError;
  }
}

std::string StatusCodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return absl::StrCat("CODE_", code);
}

bool IsTerminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

int ExitCodeForJobState(pb::JobState s) {
  switch (s) {
    case pb::JOB_STATE_SUCCEEDED:
      return kExitOk;
    case pb::JOB_STATE_FAILED:
      return kExitJobFailed;
    case pb::JOB_STATE_CANCELLED:
      return kExitJobCancelled;
    default:
      return kExitError;
  }
}

namespace {

std::string Num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

absl::Status FlagError(const std::string& flag, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", msg));
}

// Upper-cased enum name with a prefix, accepting the short form.
template <typename E>
absl::StatusOr<E> ParseEnum(const std::string& flag, const std::string& text,
                            const std::string& prefix, bool (*parse)(const std::string&, E*),
                            const std::string& choices) {
  std::string up = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(up, prefix)) up = prefix + up;
  E e;
  if (!parse(up, &e) || up == prefix + "UNSPECIFIED") {
    return FlagError(flag, absl::StrCat("unknown value \"", text, "\" (one of ", choices, ")"));
  }
  return e;
}

}  // namespace

absl::StatusOr<pb::LayerSelection> ParseLayers(const std::string& text) {
  pb::LayerSelection sel;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    auto bad = [&](const std::string& why) {
      return FlagError("--layers", absl::StrCat("\"", part, "\": ", why));
    };
    auto int_of = [&](absl::string_view s, int32_t* v) {
      return absl::SimpleAtoi(s, v) && *v >= 0;
    };
    if (part.find(':') != absl::string_view::npos) {
      std::vector<absl::string_view> f = absl::StrSplit(part, ':');
      if (f.size() > 3) return bad("expected start:stop[:step]");
      pb::LayerRange r;
      int32_t v = 0;
      if (!int_of(f[0], &v)) return bad("start is not a non-negative integer");
      r.set_start(v);
      if (!f[1].empty()) {
        if (!int_of(f[1], &v)) return bad("stop is not a non-negative integer");
        r.set_stop(v);
      }
      if (f.size() == 3 && !f[2].empty()) {
        if (!int_of(f[2], &v) || v == 0) return bad("step is not a positive integer");
        r.set_step(v);
      }
      *sel.add_ranges() = r;
    } else if (part.find('-') != absl::string_view::npos) {
      std::vector<absl::string_view> f = absl::StrSplit(part, '-');
      int32_t a = 0, b = 0;
      if (f.size() != 2 || !int_of(f[0], &a) || !int_of(f[1], &b) || b < a) {
        return bad("expected first-last with first <= last");
      }
      pb::LayerRange r;
      r.set_start(a);
      r.set_stop(b + 1);
      *sel.add_ranges() = r;
    } else {
      int32_t v = 0;
      if (!int_of(part, &v)) return bad("not a non-negative integer");
      sel.add_indices(v);
    }
  }
  return sel;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return FlagError("--label", absl::StrCat("\"", text, "\" is not key=value"));
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

absl::StatusOr<pb::JobState> ParseJobState(const std::string& text) {
  return ParseEnum<pb::JobState>("--state", text, "JOB_STATE_", &pb::JobState_Parse,
                                 "queued, running, succeeded, failed, cancelled");
}

std::string JobStateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  return absl::StartsWith(n, "JOB_STATE_") ? n.substr(10) : n;
}

absl::StatusOr<pb::SweepSpec> ApplySpecFlags(const SpecFlags& f, pb::SweepSpec spec) {
  if (!f.dataset_id.empty() && !f.dataset_path.empty()) {
    return FlagError("--dataset-id", "give either --dataset-id or --dataset-path, not both");
  }
  if (!f.dataset_id.empty()) spec.mutable_dataset()->set_dataset_id(f.dataset_id);
  if (!f.dataset_path.empty()) spec.mutable_dataset()->set_path(f.dataset_path);
  if (f.allow_changed_file) spec.mutable_dataset()->set_allow_changed_file(true);
  if (!f.task.empty()) {
    LASERD_ASSIGN_OR_RETURN(
        const pb::TaskKind t,
        ParseEnum<pb::TaskKind>("--task", f.task, "TASK_KIND_", &pb::TaskKind_Parse,
                                "completion, choice, generation"));
    spec.set_task(t);
  }
  if (!f.match.empty()) {
    LASERD_ASSIGN_OR_RETURN(
        const pb::MatchRule m,
        ParseEnum<pb::MatchRule>("--match", f.match, "MATCH_RULE_", &pb::MatchRule_Parse,
                                 "greedy, top1_decoded, exact, prefix, contains"));
    spec.set_match(m);
  }
  if (f.max_new_tokens) spec.mutable_generation()->set_max_new_tokens(*f.max_new_tokens);
  if (!f.stop_strings.empty()) {
    spec.mutable_generation()->clear_stop_strings();
    for (const std::string& s : f.stop_strings) spec.mutable_generation()->add_stop_strings(s);
  }
  if (f.match_prompt) spec.mutable_generation()->set_match_prompt(true);
  if (!f.matrix_types.empty()) {
    spec.clear_matrix_types();
    for (const auto& m : f.matrix_types) {
      for (absl::string_view s : absl::StrSplit(m, ',', absl::SkipWhitespace())) {
        spec.add_matrix_types(std::string(absl::StripAsciiWhitespace(s)));
      }
    }
  }
  if (!f.experts.empty()) {
    spec.clear_experts();
    for (int32_t e : f.experts) spec.add_experts(e);
  }
  if (!f.layers.empty()) {
    LASERD_ASSIGN_OR_RETURN(*spec.mutable_layers(), ParseLayers(f.layers));
  }
  if (!f.rho.empty() && !f.rate.empty()) {
    return FlagError("--rho", "give either --rho or --rate, not both");
  }
  if (!f.rho.empty()) {
    spec.mutable_rho()->clear_values();
    for (double v : f.rho) spec.mutable_rho()->add_values(v);
  }
  if (!f.rate.empty()) {
    spec.mutable_rate()->clear_values();
    for (double v : f.rate) spec.mutable_rate()->add_values(v);
  }
  if (f.add_suggested_rank) spec.set_add_suggested_rank(true);
  if (!f.svd_method.empty()) {
    LASERD_ASSIGN_OR_RETURN(
        const pb::SvdMethod m,
        ParseEnum<pb::SvdMethod>("--svd", f.svd_method, "SVD_METHOD_", &pb::SvdMethod_Parse,
                                 "auto, exact, randomized, paper"));
    spec.mutable_svd()->set_method(m);
  }
  if (f.oversampling) spec.mutable_svd()->set_oversampling(*f.oversampling);
  if (f.power_iterations) spec.mutable_svd()->set_power_iterations(*f.power_iterations);
  if (f.seed) spec.mutable_svd()->set_seed(*f.seed);
  if (f.round_to_source_dtype) spec.set_round_to_source_dtype(true);
  if (!f.intervention_kinds.empty()) {
    spec.clear_intervention_kinds();
    for (const std::string& k : f.intervention_kinds) {
      LASERD_ASSIGN_OR_RETURN(const pb::InterventionKind kind,
                              ParseEnum<pb::InterventionKind>("--kinds", k, "INTERVENTION_KIND_",
                                                              &pb::InterventionKind_Parse,
                                                              "rank_reduction, zero, prune"));
      spec.add_intervention_kinds(kind);
    }
  }
  if (!f.split.empty()) {
    LASERD_ASSIGN_OR_RETURN(const pb::SplitMode m,
                            ParseEnum<pb::SplitMode>("--split", f.split, "SPLIT_MODE_",
                                                     &pb::SplitMode_Parse, "first, shuffle"));
    spec.mutable_split()->set_mode(m);
  }
  if (f.validation_fraction) spec.mutable_split()->set_validation_fraction(*f.validation_fraction);
  if (f.split_seed) spec.mutable_split()->set_seed(*f.split_seed);
  if (!f.top_k.empty()) {
    spec.clear_top_k();
    for (int32_t k : f.top_k) spec.add_top_k(k);
  }
  if (f.batch_size) spec.mutable_batch()->set_batch_size(*f.batch_size);
  if (f.max_batch_tokens) spec.mutable_batch()->set_max_batch_tokens(*f.max_batch_tokens);
  if (!f.composition.empty()) {
    LASERD_ASSIGN_OR_RETURN(
        const pb::CompositionMode m,
        ParseEnum<pb::CompositionMode>("--composition", f.composition, "COMPOSITION_MODE_",
                                       &pb::CompositionMode_Parse, "none, greedy"));
    spec.mutable_composition()->set_mode(m);
  }
  if (f.max_interventions) spec.mutable_composition()->set_max_interventions(*f.max_interventions);
  if (f.keep_example_outputs) spec.set_keep_example_outputs(true);
  if (f.priority) spec.set_priority(*f.priority);
  for (const auto& l : f.labels) {
    LASERD_ASSIGN_OR_RETURN(const auto kv, ParseLabel(l));
    (*spec.mutable_labels())[kv.first] = kv.second;
  }
  if (!f.model.empty()) spec.set_model(f.model);
  return spec;
}

absl::StatusOr<Format> ParseFormat(const std::string& text) {
  if (text == "table") return Format::kTable;
  if (text == "csv") return Format::kCsv;
  if (text == "json") return Format::kJson;
  return FlagError("--format", absl::StrCat("unknown value \"", text, "\" (table, csv, json)"));
}

namespace {

const std::vector<std::string>& BaseColumns() {
  static const std::vector<std::string> cols = {
      "index",
      "plan_index",
      "kind",
      "matrix_type",
      "layer",
      "expert",
      "rho",
      "rate",
      "rank_source",
      "rank",
      "max_rank",
      "relative_error",
      "svd_method",
      "stacked_on",
      "kept",
      "validation.examples",
      "validation.correct",
      "validation.accuracy",
      "validation.log_loss",
      "test.examples",
      "test.correct",
      "test.accuracy",
      "test.log_loss",
      "validation_delta.accuracy",
      "validation_delta.log_loss",
      "test_delta.accuracy",
      "test_delta.log_loss",
  };
  return cols;
}

std::string ShortEnum(const std::string& name, const std::string& prefix) {
  return absl::AsciiStrToLower(absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name);
}

// "moe.in[3]" for an expert's matrix, else the matrix type.
std::string MatrixName(const pb::Intervention& iv) {
  return iv.has_expert() ? absl::StrCat(iv.matrix_type(), "[", iv.expert(), "]") : iv.matrix_type();
}

std::string InterventionShort(const pb::Intervention& iv) {
  return absl::StrCat(MatrixName(iv), "@", iv.layer(), ":", Num(iv.rho()));
}

}  // namespace

std::vector<std::string> ResultColumns(const std::vector<pb::Result>& results) {
  std::set<int32_t> ks;
  for (const auto& r : results) {
    for (const auto& [k, v] : r.metrics().validation().top_k_accuracy()) ks.insert(k);
    for (const auto& [k, v] : r.metrics().test().top_k_accuracy()) ks.insert(k);
  }
  std::vector<std::string> cols = BaseColumns();
  for (const char* split : {"validation", "test", "validation_delta", "test_delta"}) {
    for (int32_t k : ks) cols.push_back(absl::StrCat(split, ".top_k.", k));
  }
  return cols;
}

std::map<std::string, std::string> FlattenResult(const pb::Result& r) {
  std::map<std::string, std::string> m;
  const pb::Intervention& iv = r.intervention();
  m["index"] = absl::StrCat(r.index());
  m["plan_index"] = absl::StrCat(r.plan_index());
  m["kind"] = ShortEnum(pb::ResultKind_Name(r.kind()), "RESULT_KIND_");
  m["matrix_type"] = iv.matrix_type();
  m["layer"] = absl::StrCat(iv.layer());
  m["expert"] = iv.has_expert() ? absl::StrCat(iv.expert()) : "";
  m["rho"] = Num(iv.rho());
  m["rate"] = iv.has_rate() ? Num(iv.rate()) : "";
  m["rank_source"] = ShortEnum(pb::RankSource_Name(iv.rank_source()), "RANK_SOURCE_");
  m["rank"] = absl::StrCat(iv.rank());
  m["max_rank"] = absl::StrCat(iv.max_rank());
  m["relative_error"] = Num(iv.relative_error());
  m["svd_method"] = ShortEnum(pb::SvdMethod_Name(iv.svd_method()), "SVD_METHOD_");
  std::vector<std::string> stacked;
  for (const auto& s : r.stacked_on()) stacked.push_back(InterventionShort(s));
  m["stacked_on"] = absl::StrJoin(stacked, ";");
  m["kept"] = r.kind() == pb::RESULT_KIND_COMPOSITION ? (r.kept() ? "true" : "false") : "";
  auto metrics = [&](const std::string& split, const pb::Metrics& x) {
    m[split + ".examples"] = absl::StrCat(x.examples());
    m[split + ".correct"] = absl::StrCat(x.correct());
    m[split + ".accuracy"] = Num(x.accuracy());
    m[split + ".log_loss"] = Num(x.log_loss());
    for (const auto& [k, v] : x.top_k_accuracy()) m[absl::StrCat(split, ".top_k.", k)] = Num(v);
  };
  metrics("validation", r.metrics().validation());
  metrics("test", r.metrics().test());
  auto deltas = [&](const std::string& split, const pb::MetricDeltas& x) {
    m[split + ".accuracy"] = Num(x.accuracy());
    m[split + ".log_loss"] = Num(x.log_loss());
    for (const auto& [k, v] : x.top_k_accuracy()) m[absl::StrCat(split, ".top_k.", k)] = Num(v);
  };
  deltas("validation_delta", r.validation_delta());
  deltas("test_delta", r.test_delta());
  return m;
}

std::string TableHeader() {
  return absl::StrFormat("%6s  %-8s %5s %8s %6s %9s  %8s %9s  %8s %9s  %8s", "index", "matrix",
                         "layer", "rho", "rank", "rel_err", "val_acc", "val_loss", "test_acc",
                         "test_loss", "d_val_acc");
}

std::string TableRow(const pb::Result& r) {
  const pb::Intervention& iv = r.intervention();
  std::string matrix = MatrixName(iv);
  if (r.kind() == pb::RESULT_KIND_COMPOSITION) {
    matrix = absl::StrCat("+", matrix, r.kept() ? "" : " (not kept)");
  }
  // The paper's baselines are marked after the matrix.
  if (iv.kind() == pb::INTERVENTION_KIND_ZERO) absl::StrAppend(&matrix, " zero");
  if (iv.kind() == pb::INTERVENTION_KIND_PRUNE) absl::StrAppend(&matrix, " prune");
  return absl::StrFormat("%6d  %-8s %5d %8.4g %6d %9.4f  %8.2f %9.4f  %8.2f %9.4f  %+8.2f",
                         r.index(), matrix, iv.layer(), iv.rho(), iv.rank(), iv.relative_error(),
                         r.metrics().validation().accuracy(), r.metrics().validation().log_loss(),
                         r.metrics().test().accuracy(), r.metrics().test().log_loss(),
                         r.validation_delta().accuracy()) +
         (r.has_significance() ? absl::StrCat("  ", api::SignificanceMarker(r.significance()))
                               : "");
}

namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string FormatResults(const std::vector<pb::Result>& results, Format format) {
  std::string out;
  switch (format) {
    case Format::kJson:
      for (const auto& r : results) absl::StrAppend(&out, JsonLine(r), "\n");
      return out;
    case Format::kCsv: {
      const auto cols = ResultColumns(results);
      std::vector<std::string> head;
      for (const auto& c : cols) head.push_back(CsvField(c));
      absl::StrAppend(&out, absl::StrJoin(head, ","), "\n");
      for (const auto& r : results) {
        auto flat = FlattenResult(r);
        std::vector<std::string> row;
        for (const auto& c : cols) {
          auto it = flat.find(c);
          row.push_back(CsvField(it == flat.end() ? "" : it->second));
        }
        absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
      }
      return out;
    }
    case Format::kTable:
      absl::StrAppend(&out, TableHeader(), "\n");
      for (const auto& r : results) absl::StrAppend(&out, TableRow(r), "\n");
      return out;
  }
  return out;
}

WatchCursor::Verdict WatchCursor::Offer(const pb::Result& r) {
  if (r.index() < next_) return Verdict::kDuplicate;
  if (r.index() > next_) return Verdict::kGap;
  ++next_;
  return Verdict::kAccept;
}

bool BetterResult(const pb::Result& a, const pb::Result& b) {
  const auto& va = a.metrics().validation();
  const auto& vb = b.metrics().validation();
  if (va.accuracy() != vb.accuracy()) return va.accuracy() > vb.accuracy();
  if (va.log_loss() != vb.log_loss()) return va.log_loss() < vb.log_loss();
  return a.index() < b.index();
}

bool BestTable::Add(const pb::Result& r) {
  auto pos = std::lower_bound(rows_.begin(), rows_.end(), r, BetterResult);
  if (static_cast<size_t>(pos - rows_.begin()) >= n_) return false;
  rows_.insert(pos, r);
  if (rows_.size() > n_) rows_.pop_back();
  return true;
}

namespace {
double Seconds(const google::protobuf::Duration& d) { return d.seconds() + d.nanos() * 1e-9; }
}  // namespace

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "-";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

std::string ProgressBar(const pb::Progress& p, int width) {
  const double f = std::clamp(p.fraction(), 0.0, 1.0);
  const int filled = static_cast<int>(std::floor(f * width));
  std::string bar =
      absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
  std::string out = absl::StrFormat("%s %d/%d %3.0f%%", bar, p.interventions_done(),
                                    p.interventions_total(), 100 * f);
  if (p.interventions_per_second() > 0) {
    absl::StrAppend(&out, absl::StrFormat("  %.2f/s", p.interventions_per_second()));
  }
  if (p.has_eta()) absl::StrAppend(&out, "  ETA ", FormatDuration(Seconds(p.eta())));
  return out;
}

std::string ProgressLine(const pb::Progress& p) {
  std::string out =
      absl::StrFormat("progress %d/%d (%.0f%%)", p.interventions_done(), p.interventions_total(),
                      100 * std::clamp(p.fraction(), 0.0, 1.0));
  if (p.interventions_per_second() > 0) {
    absl::StrAppend(&out, absl::StrFormat(" %.2f/s", p.interventions_per_second()));
  }
  if (p.has_eta()) absl::StrAppend(&out, " eta ", FormatDuration(Seconds(p.eta())));
  return out;
}

}  // namespace laserd::client
