// Everything one `laserd serve` process shares between its gRPC services,
// its HTTP API and its worker: the options, the job store, the bearer
// tokens, the Prometheus counters, the serving health (model resident, store
// writable: the runner reports store faults to it), the resident model, the
// job runner, and the handlers of the three laser.v1 services over them.
#ifndef LASERD_SERVER_SERVER_STATE_H_
#define LASERD_SERVER_SERVER_STATE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/auth.h"
#include "server/dataset_handlers.h"
#include "server/job_runner.h"
#include "server/job_store.h"
#include "server/model_handlers.h"
#include "server/prometheus.h"
#include "server/resident_model.h"
#include "server/serve_options.h"
#include "server/serving_health.h"
#include "server/sweep_handlers.h"

namespace laserd::server {

struct ServerState {
  ServerState(ServeOptions opts, std::unique_ptr<JobStore> job_store,
              std::map<std::string, TokenInfo> tokens);

  // Loads the model (blocking); `laserd serve` then starts the runner and
  // marks the model ready in `health`.
  absl::Status LoadModel();

  const ServeOptions options;
  const std::unique_ptr<JobStore> store;
  const BearerAuth auth;
  PrometheusMetrics prometheus;
  ServingHealth health;
  ResidentModel model;
  JobRunner jobs;
  SweepHandlers sweeps;
  ModelHandlers models;
  DatasetHandlers datasets;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_SERVER_STATE_H_
