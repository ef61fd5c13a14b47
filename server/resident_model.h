// The model `laserd serve` holds resident: one loaded copy per device (the
// first is the one described, read by GetSpectrum and used for baselines and
// composition; a sweep's matrices are spread over all of them), its
// description, and the lock that keeps spectrum readers off a model while a
// sweep edits it.
#ifndef LASERD_SERVER_RESIDENT_MODEL_H_
#define LASERD_SERVER_RESIDENT_MODEL_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "laser/v1/model.pb.h"

namespace laserd::server {

class ResidentModel {
 public:
  // Loads `path` on `devices` (blocking) and describes it; ready() after it.
  absl::Status Load(const std::string& path, const std::vector<std::string>& devices,
                    const std::string& tokenizer, int64_t cache_budget_bytes);
  bool ready() const { return ready_.load(); }
  // UNAVAILABLE until the model is loaded.
  absl::Status Ready() const;

  const ::laser::v1::ModelInfo& info() const { return info_; }
  const std::vector<std::string>& device_names() const { return device_names_; }
  const model::LoadedModel& first() const { return first_; }
  // Every replica's model, the first one's first.
  std::vector<model::Model*> models() const;

  // Held by a sweep while it edits the first replica.
  std::unique_lock<std::mutex> LockForSweep() { return std::unique_lock<std::mutex>(mu_); }
  // Between two interventions of a sweep on one replica: lets waiting spectrum
  // readers have the (unedited) model. With several replicas this is done by
  // the edit hook instead (ShareWhileSweeping).
  void YieldToReaders(const laser::SweepRunner& runner, std::unique_lock<std::mutex>& sweep_lock);
  // With several replicas, while Run() works: the sweep's lock is released and
  // the first replica is locked only while one of its interventions is applied
  // (`sharing` false: the hook is removed and the lock taken back).
  void ShareWhileSweeping(laser::SweepRunner& runner, std::unique_lock<std::mutex>& sweep_lock,
                          bool sharing);
  // Runs `read` on the unedited first replica, ahead of a running sweep's next
  // intervention.
  template <typename Fn>
  auto ReadUnedited(Fn read) {
    ++readers_waiting_;
    std::lock_guard<std::mutex> lock(mu_);
    --readers_waiting_;
    return read(first_);
  }

 private:
  void WaitForReaders() const;

  model::LoadedModel first_;
  std::vector<model::LoadedModel> others_;
  std::vector<std::string> device_names_;  // one per replica, the first one's first
  ::laser::v1::ModelInfo info_;
  std::atomic<bool> ready_{false};
  std::mutex mu_;
  std::atomic<int> readers_waiting_{0};
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_RESIDENT_MODEL_H_
