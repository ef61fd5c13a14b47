#include "server/sweep_handlers.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "engine/laser/rank.h"
#include "engine/model/architecture.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/example_outputs.h"
#include "server/paging.h"
#include "server/sweep_io.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

bool ValidLabelKey(const std::string& k) {
  if (k.empty() || k.size() > 63) return false;
  for (char c : k) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status CheckRequest(const pb::CreateSweepRequest& req) {
  const std::string& rid = req.request_id();
  if (rid.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: ", rid.size(), " characters; at most 128"));
  }
  for (char c : rid) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("request_id: only printable ASCII characters are allowed");
    }
  }
  if (!req.has_spec()) return absl::InvalidArgumentError("spec: required");
  if (req.spec().labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(absl::StrCat("spec.labels: ", req.spec().labels_size(),
                                                   " labels; the limit is ", kMaxLabels));
  }
  int64_t label_bytes = 0;
  for (const auto& [k, v] : req.spec().labels()) label_bytes += k.size() + v.size();
  if (label_bytes > kMaxLabelBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.labels: ", label_bytes, " bytes of keys and values; the limit is ", kMaxLabelBytes));
  }
  for (const auto& [k, v] : req.spec().labels()) {
    if (!ValidLabelKey(k)) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.labels: key '", k, "' is not 1-63 characters of [a-z0-9_.-]"));
    }
    if (v.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.labels[", k, "]: value of ", v.size(), " characters; at most 255"));
    }
  }
  return absl::OkStatus();
}

// The job an earlier request with this request_id created: the same job when
// the spec is the same (a retry), ALREADY_EXISTS when not; nullopt when none.
std::optional<absl::StatusOr<pb::Job>> EarlierRequest(JobStore& store, const std::string& rid,
                                                      const pb::SweepSpec& spec) {
  auto prev = store.FindByRequestId(rid);
  if (!prev) return std::nullopt;
  if (google::protobuf::util::MessageDifferencer::Equals(prev->job.spec(), spec)) {
    return absl::StatusOr<pb::Job>(prev->job);
  }
  return absl::StatusOr<pb::Job>(absl::AlreadyExistsError(absl::StrCat(
      "request_id: '", rid, "' created job ", prev->job.id(), " with a different spec")));
}

using SortKey = std::variant<double, std::string>;
using KeyFn = std::function<SortKey(const pb::Result&)>;

absl::StatusOr<KeyFn> ResultField(const std::string& f) {
  if (f == "index") return KeyFn([](const pb::Result& r) { return SortKey(double(r.index())); });
  if (f == "plan_index") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.plan_index())); });
  }
  if (f == "matrix_type") {
    return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().matrix_type()); });
  }
  if (f == "layer") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.intervention().layer())); });
  }
  if (f == "rho") return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().rho()); });
  if (f == "rank") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.intervention().rank())); });
  }
  if (f == "relative_error") {
    return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().relative_error()); });
  }
  std::vector<std::string> parts = absl::StrSplit(f, absl::MaxSplits('.', 1));
  if (parts.size() == 2) {
    const std::string split = parts[0], metric = parts[1];
    const bool delta = split == "validation_delta" || split == "test_delta";
    if (split == "validation" || split == "test" || delta) {
      const bool val = absl::StartsWith(split, "validation");
      int k = 0;
      absl::string_view m = metric;
      const bool topk = absl::ConsumePrefix(&m, "top_k_accuracy.") && absl::SimpleAtoi(m, &k);
      if (metric == "accuracy" || metric == "log_loss" || topk ||
          (!delta && (metric == "examples" || metric == "correct"))) {
        return KeyFn([=](const pb::Result& r) -> SortKey {
          if (delta) {
            const pb::MetricDeltas& d = val ? r.validation_delta() : r.test_delta();
            if (metric == "accuracy") return d.accuracy();
            if (metric == "log_loss") return d.log_loss();
            auto it = d.top_k_accuracy().find(k);
            return it == d.top_k_accuracy().end() ? 0.0 : it->second;
          }
          const pb::Metrics& mm = val ? r.metrics().validation() : r.metrics().test();
          if (metric == "accuracy") return mm.accuracy();
          if (metric == "log_loss") return mm.log_loss();
          if (metric == "examples") return double(mm.examples());
          if (metric == "correct") return double(mm.correct());
          auto it = mm.top_k_accuracy().find(k);
          return it == mm.top_k_accuracy().end() ? 0.0 : it->second;
        });
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("order_by: unknown field '", f, "'"));
}

// order_by: "<field>[ asc|desc], ..." → (key, descending) pairs.
absl::StatusOr<std::vector<std::pair<KeyFn, bool>>> ResultOrder(const std::string& order_by) {
  std::vector<std::pair<KeyFn, bool>> order;
  for (absl::string_view item : absl::StrSplit(order_by, ',', absl::SkipWhitespace())) {
    std::vector<std::string> w = absl::StrSplit(item, ' ', absl::SkipEmpty());
    bool desc = false;
    if (w.size() == 2 && (w[1] == "desc" || w[1] == "asc")) {
      desc = w[1] == "desc";
    } else if (w.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "order_by: '", absl::StripAsciiWhitespace(item), "' is not '<field>[ desc]'"));
    }
    LASERD_ASSIGN_OR_RETURN(KeyFn fn, ResultField(w[0]));
    order.push_back({std::move(fn), desc});
  }
  return order;
}

}  // namespace

absl::StatusOr<pb::Job> SweepHandlers::CreateSweep(const pb::CreateSweepRequest& req) {
  LASERD_RETURN_IF_ERROR(model_.Ready());
  LASERD_RETURN_IF_ERROR(CheckRequest(req));
  const std::string& rid = req.request_id();
  const pb::SweepSpec& spec = req.spec();
  if (!rid.empty() && !req.validate_only()) {
    if (auto prev = EarlierRequest(store_, rid, spec)) return *std::move(prev);
  }
  const pb::ModelInfo& mi = model_.info();
  if (!spec.model().empty() && spec.model() != mi.name() && spec.model() != mi.sha256()) {
    return absl::FailedPreconditionError(absl::StrCat("spec.model: '", spec.model(),
                                                      "' is not the served model ('", mi.name(),
                                                      "', sha256 ", mi.sha256(), ")"));
  }
  LASERD_ASSIGN_OR_RETURN(const laser::SweepConfig cfg, inputs_.Config(spec));
  std::string source, dataset_sha256;
  LASERD_ASSIGN_OR_RETURN(const eval::Dataset ds, inputs_.Dataset(spec, &source, &dataset_sha256));
  // Full validation against the model and the dataset (types, layers, ranks,
  // record kinds, context length): the same runner the job will build.
  auto runner =
      laser::SweepRunner::Create(model_.first().model.get(), *model_.first().tokenizer, ds, cfg);
  if (!runner.ok()) return SpecError(runner.status(), "spec: ");
  const int64_t total = (*runner)->shard_interventions();
  pb::Job job;
  job.set_request_id(rid);
  *job.mutable_spec() = spec;
  // The job is pinned to these bytes: every start compares (JobInputs::PinnedDataset).
  job.set_dataset_sha256(dataset_sha256);
  job.mutable_progress()->set_interventions_total(total);
  job.set_validation_examples(static_cast<int64_t>((*runner)->split().validation.size()));
  job.set_test_examples(static_cast<int64_t>((*runner)->split().test.size()));
  runner->reset();
  if (total > max_grid_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "spec: the sweep has ", total, " interventions; this server's --max-grid is ", max_grid_));
  }
  if (req.validate_only()) return job;
  auto queued = jobs_.Enqueue(std::move(job));
  if (!queued.ok()) {
    if (queued.status().code() == absl::StatusCode::kAlreadyExists && !rid.empty()) {
      // A concurrent retry won.
      if (auto prev = EarlierRequest(store_, rid, spec)) return *std::move(prev);
    }
    return queued.status();
  }
  spdlog::info("job {} created: {} interventions, priority {}", queued->id(), total,
               spec.priority());
  return queued;
}

absl::StatusOr<pb::Job> SweepHandlers::GetJob(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  return jobs_.Get(id);
}

absl::StatusOr<pb::ListJobsResponse> SweepHandlers::ListJobs(const pb::ListJobsRequest& req) {
  LASERD_ASSIGN_OR_RETURN(const Page page,
                          RequestedPage(req.page_token(), req.page_size(), 50, 1000));
  for (int i = 0; i < req.states_size(); ++i) {
    if (!pb::JobState_IsValid(req.states(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("states[", i, "]: unknown state ", req.states(i)));
    }
  }
  LASERD_ASSIGN_OR_RETURN(std::vector<StoredJob> jobs, store_.ListJobs());
  std::vector<pb::Job> match;
  for (StoredJob& sj : jobs) {
    const pb::Job& j = sj.job;
    if (req.states_size() > 0 &&
        std::find(req.states().begin(), req.states().end(), j.state()) == req.states().end()) {
      continue;
    }
    bool ok = true;
    for (const auto& [k, v] : req.labels()) {
      auto it = j.spec().labels().find(k);
      if (it == j.spec().labels().end() || it->second != v) ok = false;
    }
    if (ok) match.push_back(std::move(sj.job));
  }
  pb::ListJobsResponse resp;
  resp.set_total_size(static_cast<int64_t>(match.size()));
  resp.set_next_page_token(CopyPage(page, match, resp.mutable_jobs()));
  return resp;
}

absl::StatusOr<pb::Job> SweepHandlers::CancelJob(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  return jobs_.Cancel(id);
}

absl::Status SweepHandlers::DeleteJob(const pb::DeleteJobRequest& req) {
  if (req.job_id().empty()) return absl::InvalidArgumentError("job_id: required");
  return jobs_.Delete(req.job_id(), req.force());
}

absl::StatusOr<pb::ListResultsResponse> SweepHandlers::ListResults(
    const pb::ListResultsRequest& req) {
  LASERD_ASSIGN_OR_RETURN(const Page page,
                          RequestedPage(req.page_token(), req.page_size(), 100, 10000));
  LASERD_ASSIGN_OR_RETURN(const auto order, ResultOrder(req.order_by()));
  // An expert's matrix matches "moe.in[3]" and, for every expert, "moe.in".
  std::set<std::string> types, expert_bases;
  const auto& bases = model::ExpertMatrixBaseTypes();
  for (int i = 0; i < req.matrix_types_size(); ++i) {
    if (std::find(bases.begin(), bases.end(), req.matrix_types(i)) != bases.end()) {
      expert_bases.insert(req.matrix_types(i));
      continue;
    }
    auto t = laser::CanonicalMatrixType(req.matrix_types(i));
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix_types[", i, "]: ", t.status().message()));
    }
    types.insert(*t);
  }
  LASERD_ASSIGN_OR_RETURN(const pb::Job job, GetJob(req.job_id()));
  LASERD_ASSIGN_OR_RETURN(std::vector<pb::Result> all, store_.Results(req.job_id()));
  std::vector<pb::Result> rs;
  for (pb::Result& r : all) {
    const pb::Intervention& iv = r.intervention();
    const std::string name = MatrixName(iv);
    if ((!types.empty() || !expert_bases.empty()) && !types.count(name) &&
        !(iv.has_expert() && expert_bases.count(iv.matrix_type()))) {
      continue;
    }
    if (req.layers_size() > 0 && std::find(req.layers().begin(), req.layers().end(),
                                           r.intervention().layer()) == req.layers().end()) {
      continue;
    }
    if (req.kind() != pb::RESULT_KIND_UNSPECIFIED && r.kind() != req.kind()) continue;
    rs.push_back(std::move(r));
  }
  std::stable_sort(rs.begin(), rs.end(), [&](const pb::Result& a, const pb::Result& b) {
    for (const auto& [fn, desc] : order) {
      SortKey ka = fn(a), kb = fn(b);
      if (ka == kb) continue;
      return desc ? kb < ka : ka < kb;
    }
    return a.index() < b.index();
  });
  pb::ListResultsResponse resp;
  resp.set_total_size(static_cast<int64_t>(rs.size()));
  resp.set_next_page_token(CopyPage(page, rs, resp.mutable_results()));
  if (job.has_baseline()) *resp.mutable_baseline() = job.baseline();
  return resp;
}

absl::StatusOr<pb::ListExampleOutputsResponse> SweepHandlers::ListExampleOutputs(
    const pb::ListExampleOutputsRequest& req) {
  LASERD_ASSIGN_OR_RETURN(const Page page,
                          RequestedPage(req.page_token(), req.page_size(), 10, 1000));
  if (req.has_result_index() && req.result_index() < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("result_index: ", req.result_index(), " is below -1 (the baseline)"));
  }
  LASERD_ASSIGN_OR_RETURN(const pb::Job job, GetJob(req.job_id()));
  const int64_t from = req.has_result_index() ? req.result_index() : -1;
  const int64_t to =
      req.has_result_index() ? req.result_index() : std::numeric_limits<int64_t>::max();
  LASERD_ASSIGN_OR_RETURN(const int64_t total, store_.CountExampleOutputs(job.id(), from, to));
  LASERD_ASSIGN_OR_RETURN(const std::vector<pb::ExampleOutputs> items,
                          store_.ReadExampleOutputs(job.id(), from, to, page.size, page.offset));
  pb::ListExampleOutputsResponse resp;
  resp.set_total_size(total);
  CopyPage(Page{0, page.size}, items, resp.mutable_outputs());
  const int64_t next = page.offset + resp.outputs_size();
  if (next < total) resp.set_next_page_token(std::to_string(next));
  return resp;
}

absl::StatusOr<pb::Significance> SweepHandlers::GetSignificance(
    const pb::GetSignificanceRequest& req) {
  LASERD_ASSIGN_OR_RETURN(const pb::Job job, GetJob(req.job_id()));
  if (!job.has_baseline()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), ": the baseline is not computed yet"));
  }
  int64_t index = 0;
  if (req.has_result_index()) {
    index = req.result_index();
    if (index < 0 || index >= job.result_count()) {
      return absl::NotFoundError(absl::StrCat("result_index: job ", job.id(), " has ",
                                              job.result_count(), " results, no index ", index));
    }
  } else if (job.progress().has_best()) {
    // The best single always carries its significance (the driver tests every new best).
    if (job.progress().best().has_significance()) return job.progress().best().significance();
    index = job.progress().best().index();
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " has no single result yet"));
  }
  LASERD_ASSIGN_OR_RETURN(const std::vector<pb::Result> rs, store_.Results(job.id(), index));
  if (rs.empty() || rs[0].index() != index) {
    return absl::NotFoundError(
        absl::StrCat("result_index: job ", job.id(), " has no result ", index));
  }
  if (rs[0].has_significance()) return rs[0].significance();
  LASERD_ASSIGN_OR_RETURN(const auto base, store_.ReadExampleOutputs(job.id(), -1, -1, 1));
  LASERD_ASSIGN_OR_RETURN(const auto edited, store_.ReadExampleOutputs(job.id(), index, index, 1));
  if (base.empty() || edited.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job.id(), " did not keep the example outputs of result ", index,
        " (spec.keep_example_outputs); without them only the best single and the composition "
        "steps carry their significance"));
  }
  return SignificanceProto(base[0], edited[0]);
}

absl::Status SweepHandlers::StartWatch(const pb::WatchJobRequest& req, WatchReactor* w) {
  if (req.job_id().empty()) return absl::InvalidArgumentError("job_id: required");
  if (req.from_result_index() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("from_result_index: ", req.from_result_index(), " is negative"));
  }
  return jobs_.Watch(req.job_id(), req.from_result_index(), w);
}

}  // namespace laserd::server
