// What the HTTP side of `laserd serve` samples: the values of /metrics taken
// at scrape time, and the JSON bodies of /api/status and /api/jobs.
#ifndef LASERD_SERVER_STATUS_JSON_H_
#define LASERD_SERVER_STATUS_JSON_H_

#include <string>

#include "nlohmann/json.hpp"
#include "server/prometheus.h"
#include "server/server_state.h"

namespace laserd::server {

// The text of `j`, with every invalid UTF-8 byte of its strings replaced by
// U+FFFD: a body may echo request bytes (a path, a job id, a query value), and
// nlohmann's plain dump() throws on invalid UTF-8.
std::string DumpJson(const nlohmann::json& j);

// Jobs by state, queue depth, throughput, serving.
PrometheusMetrics::Snapshot SampleServer(ServerState& s);
// {"serving", "model", "model_sha256", "jobs", "queue_depth", ...};
// "running_job" (the running job's id, "" when idle) only when
// `show_job_ids`: /api/status answers without a token, and with --tokens a
// job id is for token holders only (server/http_api.cc decides).
std::string StatusJson(ServerState& s, bool show_job_ids);
// {"jobs": [Job, ...]}, the running job as it is now.
std::string JobsJson(ServerState& s);

}  // namespace laserd::server

#endif  // LASERD_SERVER_STATUS_JSON_H_
