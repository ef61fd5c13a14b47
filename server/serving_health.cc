#include "server/serving_health.h"

#include <utility>

namespace laserd::server {

void ServingHealth::SetObserver(std::function<void(bool serving)> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::move(observer);
  if (observer_) observer_(model_ready_ && store_fault_.ok());
}

void ServingHealth::SetModelReady(bool ready) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool before = model_ready_ && store_fault_.ok();
  model_ready_ = ready;
  ChangedLocked(before);
}

void ServingHealth::SetStoreFault(const absl::Status& fault) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool before = model_ready_ && store_fault_.ok();
  store_fault_ = fault;
  ChangedLocked(before);
}

void ServingHealth::ChangedLocked(bool before) {
  const bool now = model_ready_ && store_fault_.ok();
  if (now != before && observer_) observer_(now);
}

bool ServingHealth::serving() const {
  std::lock_guard<std::mutex> lock(mu_);
  return model_ready_ && store_fault_.ok();
}

absl::Status ServingHealth::store_fault() const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_fault_;
}

}  // namespace laserd::server
