#include "server/status_json.h"

#include <vector>

#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace laserd::server {

namespace pb = ::laser::v1;

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

PrometheusMetrics::Snapshot SampleServer(ServerState& s) {
  PrometheusMetrics::Snapshot snap;
  for (pb::JobState st : {pb::JOB_STATE_QUEUED, pb::JOB_STATE_RUNNING, pb::JOB_STATE_SUCCEEDED,
                          pb::JOB_STATE_FAILED, pb::JOB_STATE_CANCELLED}) {
    snap.jobs_by_state[StateName(st)] = 0;
  }
  if (auto jobs = s.store->ListJobs(); jobs.ok()) {
    for (const StoredJob& j : *jobs) ++snap.jobs_by_state[StateName(j.job.state())];
  }
  const JobRunner::Load load = s.jobs.CurrentLoad();
  snap.queue_depth = load.queue_depth;
  snap.interventions_per_second = load.interventions_per_second;
  snap.serving = s.health.serving();
  return snap;
}

std::string StatusJson(ServerState& s, bool show_job_ids) {
  const PrometheusMetrics::Snapshot snap = SampleServer(s);
  const bool ready = s.model.ready();
  nlohmann::json j;
  j["serving"] = snap.serving;
  j["model"] = ready ? s.model.info().name() : "";
  j["model_sha256"] = ready ? s.model.info().sha256() : "";
  j["jobs"] = snap.jobs_by_state;
  j["queue_depth"] = snap.queue_depth;
  j["interventions_total"] = s.prometheus.interventions_total();
  j["interventions_per_second"] = snap.interventions_per_second;
  j["process_rss_bytes"] = ProcessRssBytes();
  j["devices"] = ready ? s.model.device_names() : std::vector<std::string>{};
  if (show_job_ids) j["running_job"] = s.jobs.CurrentLoad().running_job;
  j["store_error"] = std::string(s.health.store_fault().message());
  return DumpJson(j);
}

std::string JobsJson(ServerState& s) {
  nlohmann::json arr = nlohmann::json::array();
  auto jobs = s.store->ListJobs();
  if (jobs.ok()) {
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    for (StoredJob& sj : *jobs) {
      s.jobs.Refresh(&sj.job);
      std::string text;
      if (google::protobuf::util::MessageToJsonString(sj.job, &text, o).ok()) {
        arr.push_back(nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false));
      }
    }
  }
  return DumpJson(nlohmann::json{{"jobs", arr}});
}

}  // namespace laserd::server
