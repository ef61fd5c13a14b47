// What the HTTP side of `laserd serve` samples: the values of /metrics taken
// at scrape time, and the JSON bodies of /api/status and /api/jobs.
#ifndef LASERD_SERVER_STATUS_JSON_H_
#define LASERD_SERVER_STATUS_JSON_H_

#include <string>

#include "server/prometheus.h"
#include "server/server_state.h"

namespace laserd::server {

// Jobs by state, queue depth, throughput, serving.
PrometheusMetrics::Snapshot SampleServer(ServerState& s);
// {"serving", "model", "model_sha256", "jobs", "queue_depth", ...}
std::string StatusJson(ServerState& s);
// {"jobs": [Job, ...]}, the running job as it is now.
std::string JobsJson(ServerState& s);

}  // namespace laserd::server

#endif  // LASERD_SERVER_STATUS_JSON_H_
