#include "server/server_state.h"

#include <utility>
#include <vector>

namespace laserd::server {

ServerState::ServerState(ServeOptions opts, std::unique_ptr<JobStore> job_store,
                         std::map<std::string, TokenInfo> tokens)
    : options(std::move(opts)),
      store(std::move(job_store)),
      auth(std::move(tokens)),
      jobs(*store, model, prometheus,
           JobInputs(*store, options.data_dirs, options.cache_budget_mb << 20), options.max_queued,
           [this](const absl::Status& fault) { health.SetStoreFault(fault); }),
      sweeps(*store, model, jobs,
             JobInputs(*store, options.data_dirs, options.cache_budget_mb << 20), options.max_grid),
      models(model),
      datasets(*store, options.dataset_quota_bytes) {}

absl::Status ServerState::LoadModel() {
  const std::vector<std::string> devices =
      options.devices.empty() ? std::vector<std::string>{options.device} : options.devices;
  return model.Load(options.model, devices, options.tokenizer, options.cache_budget_mb << 20);
}

}  // namespace laserd::server
