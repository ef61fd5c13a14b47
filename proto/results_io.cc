#include "proto/results_io.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "nlohmann/json.hpp"

namespace laserd::api {

namespace pb = ::laser::v1;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

std::string JsonLine(const google::protobuf::Message& m) {
  JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.add_whitespace = false;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!st.ok()) return "{}";  // only for messages with unset required Any types
  // The printer emits map entries in hash order, which differs between
  // processes; sort every map (top_k_accuracy) by its integer key so that the
  // same results always give the same bytes. Fields keep the proto's order.
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(out, nullptr, false);
  if (j.is_discarded()) return out;
  std::function<void(nlohmann::ordered_json&)> canon = [&](nlohmann::ordered_json& v) {
    if (v.is_array()) {
      for (auto& e : v) canon(e);
    } else if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it.key() == "top_k_accuracy" && it.value().is_object()) {
          std::vector<std::pair<long long, nlohmann::ordered_json>> kv;
          for (auto e = it.value().begin(); e != it.value().end(); ++e) {
            kv.push_back({std::atoll(e.key().c_str()), e.value()});
          }
          std::sort(kv.begin(), kv.end(),
                    [](const auto& a, const auto& b) { return a.first < b.first; });
          nlohmann::ordered_json sorted = nlohmann::ordered_json::object();
          for (auto& [k, val] : kv) sorted[std::to_string(k)] = val;
          it.value() = std::move(sorted);
        } else {
          canon(it.value());
        }
      }
    }
  };
  canon(j);
  return j.dump();
}

std::string SignificanceMarker(const pb::Significance& s) {
  const bool v = s.validation().significant(), t = s.test().significant();
  if (v && t) return "[sig val+test]";
  if (v) return "[sig val]";
  if (t) return "[sig test]";
  return "[n.s.]";
}

std::string SignificanceLine(const pb::Significance& s) {
  auto split = [&](const char* name, const pb::SplitSignificance& x) {
    return absl::StrFormat(
        "%s acc %+.2f pp [%+.2f, %+.2f] p=%.3g (+%d/-%d)%s, log-loss %+.4f [%+.4f, %+.4f]", name,
        x.accuracy_delta(), x.accuracy_ci_low(), x.accuracy_ci_high(), x.p_value(), x.improved(),
        x.worsened(), x.significant() ? " *" : "", x.log_loss_delta(), x.log_loss_ci_low(),
        x.log_loss_ci_high());
  };
  return absl::StrFormat("%s alpha %g, %g%% CI: %s | %s", SignificanceMarker(s), s.alpha(),
                         100 * s.confidence(), split("validation", s.validation()),
                         split("test", s.test()));
}

absl::StatusOr<ResultsFile> ParseResultsFile(const std::string& text, const std::string& name) {
  ResultsFile f;
  JsonParseOptions opts;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    const size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    const std::string line = text.substr(pos, (complete ? nl : text.size()) - pos);
    const size_t next = complete ? nl + 1 : text.size();
    google::protobuf::util::Status st;
    if (line_no == 1) {
      st = google::protobuf::util::JsonStringToMessage(line, &f.header, opts);
      if (st.ok() && complete) f.has_header = true;
    } else {
      pb::Result r;
      st = google::protobuf::util::JsonStringToMessage(line, &r, opts);
      if (st.ok() && complete) f.results.push_back(std::move(r));
    }
    if (!st.ok() || !complete) {
      if (next < text.size()) {
        return absl::DataLossError(absl::StrCat(
            name, " line ", line_no, ": not a laser.v1.", line_no == 1 ? "Job" : "Result", ": ",
            st.ok() ? std::string("no newline") : st.message().ToString()));
      }
      f.truncated_tail = true;
      break;
    }
    pos = next;
    f.valid_bytes = static_cast<int64_t>(pos);
  }
  return f;
}

absl::StatusOr<std::string> MergeResults(
    const std::vector<std::pair<std::string, std::string>>& inputs, bool allow_incomplete) {
  if (inputs.empty()) return absl::InvalidArgumentError("merge: no input files");
  std::vector<ResultsFile> files;
  for (const auto& [name, text] : inputs) {
    LASERD_ASSIGN_OR_RETURN(ResultsFile f, ParseResultsFile(text, name));
    if (!f.has_header) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": no header line (a laser.v1.Job); not a sweep results file"));
    }
    if (f.truncated_tail) {
      return absl::FailedPreconditionError(
          absl::StrCat(name,
                       ": the last line is incomplete (the run was interrupted); finish it with "
                       "`laserd sweep --resume`"));
    }
    files.push_back(std::move(f));
  }
  const pb::Job& head = files[0].header;
  const std::string& first = inputs[0].first;
  for (size_t i = 1; i < files.size(); ++i) {
    const pb::Job& other = files[i].header;
    google::protobuf::util::MessageDifferencer diff;
    std::string report;
    diff.ReportDifferencesToString(&report);
    if (!diff.Compare(head.spec(), other.spec())) {
      return absl::FailedPreconditionError(absl::StrCat(
          inputs[i].first, " and ", first, " come from different sweeps: their specs differ (",
          first, " -> ", inputs[i].first, "): ", report));
    }
    if (head.id() != other.id()) {
      return absl::FailedPreconditionError(
          absl::StrCat(inputs[i].first, " (", other.id(), ") and ", first, " (", head.id(),
                       ") come from different sweeps: the specs agree, so the models differ"));
    }
  }
  std::map<int64_t, std::pair<const pb::Result*, size_t>> by_plan;
  for (size_t i = 0; i < files.size(); ++i) {
    for (const pb::Result& r : files[i].results) {
      auto [it, fresh] = by_plan.emplace(r.plan_index(), std::make_pair(&r, i));
      if (!fresh) {
        return absl::FailedPreconditionError(
            absl::StrCat("plan_index ", r.plan_index(), " appears in both ",
                         inputs[it->second.second].first, " and ", inputs[i].first));
      }
    }
  }
  const int64_t total = head.progress().interventions_total();
  if (!allow_incomplete) {
    std::vector<int64_t> missing;
    for (int64_t p = 0; p < total; ++p) {
      if (!by_plan.count(p)) missing.push_back(p);
    }
    if (!missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 10; ++i) {
        absl::StrAppend(&list, i ? ", " : "", missing[i]);
      }
      if (missing.size() > 10) absl::StrAppend(&list, ", ...");
      return absl::FailedPreconditionError(absl::StrCat(
          "merge: ", missing.size(), " of ", total, " planned results are missing (plan_index ",
          list, "); is a shard file absent or unfinished?"));
    }
  }
  std::string out = absl::StrCat(JsonLine(head), "\n");
  int64_t index = 0;
  // Each shard tested its own bests; one run tests the singles that are the
  // best so far in plan order (higher validation accuracy, ties by lower
  // log-loss, the first of equals staying), each of which was also the best
  // of its shard so far and carries the same test. Other singles' tests go.
  const pb::Result* best = nullptr;
  for (const auto& [plan, ref] : by_plan) {
    pb::Result r = *ref.first;
    r.set_index(index++);
    r.set_shard_index(0);
    if (r.kind() == pb::RESULT_KIND_SINGLE) {
      const pb::Metrics& v = r.metrics().validation();
      const bool new_best =
          best == nullptr || (v.accuracy() != best->metrics().validation().accuracy()
                                  ? v.accuracy() > best->metrics().validation().accuracy()
                                  : v.log_loss() < best->metrics().validation().log_loss());
      if (new_best) {
        best = ref.first;
      } else {
        r.clear_significance();
      }
    }
    if (r.has_significance()) r.mutable_significance()->set_result_index(r.index());
    absl::StrAppend(&out, JsonLine(r), "\n");
  }
  return out;
}

}  // namespace laserd::api
