#include "server/resident_model.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/laser/replicas.h"
#include "server/model_description.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

absl::Status ResidentModel::Load(const std::string& path, const std::vector<std::string>& devices,
                                 const std::string& tokenizer, int64_t cache_budget_bytes) {
  const auto t0 = std::chrono::steady_clock::now();
  if (devices.size() == 1) {
    LASERD_ASSIGN_OR_RETURN(first_, model::LoadModel(path, devices[0], tokenizer));
  } else {
    LASERD_ASSIGN_OR_RETURN(std::vector<model::LoadedModel> loaded,
                            laser::LoadReplicas(path, devices, tokenizer));
    first_ = std::move(loaded[0]);
    for (size_t i = 1; i < loaded.size(); ++i) others_.push_back(std::move(loaded[i]));
  }
  device_names_.push_back(laser::ReplicaDeviceName(devices[0], first_));
  for (size_t i = 1; i < devices.size(); ++i) {
    device_names_.push_back(laser::ReplicaDeviceName(devices[i], others_[i - 1]));
  }
  LASERD_ASSIGN_OR_RETURN(info_,
                          DescribeLoadedModel(path, first_, device_names_, cache_budget_bytes));
  ready_ = true;
  spdlog::info("model resident: {} ({}, {} layers, {} parameters) on {} in {:.2f} s", info_.name(),
               info_.architecture(), first_.model->config().layers, info_.parameter_count(),
               absl::StrJoin(device_names_, ", "),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return absl::OkStatus();
}

absl::Status ResidentModel::Ready() const {
  if (!ready_) return absl::UnavailableError("the model is loading; retry when health is SERVING");
  return absl::OkStatus();
}

std::vector<model::Model*> ResidentModel::models() const {
  std::vector<model::Model*> out = {first_.model.get()};
  for (const model::LoadedModel& r : others_) out.push_back(r.model.get());
  return out;
}

void ResidentModel::WaitForReaders() const {
  while (readers_waiting_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void ResidentModel::YieldToReaders(const laser::SweepRunner& runner,
                                   std::unique_lock<std::mutex>& sweep_lock) {
  if (runner.replica_count() != 1 || readers_waiting_.load() == 0) return;
  sweep_lock.unlock();
  WaitForReaders();
  sweep_lock.lock();
}

void ResidentModel::ShareWhileSweeping(laser::SweepRunner& runner,
                                       std::unique_lock<std::mutex>& sweep_lock, bool sharing) {
  if (runner.replica_count() == 1) return;
  if (!sharing) {
    runner.set_edit_hook(nullptr);
    sweep_lock.lock();
    return;
  }
  // Results are committed on the sweep's thread while the replicas keep
  // working: the first replica's worker holds the lock only while its model is
  // edited, so a spectrum request reads it unedited between two of its
  // interventions.
  sweep_lock.unlock();
  runner.set_edit_hook([this](size_t replica, bool editing) {
    if (replica != 0) return;
    if (editing) {
      WaitForReaders();
      mu_.lock();
    } else {
      mu_.unlock();
    }
  });
}

}  // namespace laserd::server
