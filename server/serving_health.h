// Whether `laserd serve` answers SERVING (grpc.health.v1, /api/status,
// laserd_up): its model is resident and its job store takes writes. The job
// runner reports a store write that failed (and the first that succeeds
// again) here; `laserd serve` observes every change and sets the gRPC health
// statuses from it.
#ifndef LASERD_SERVER_SERVING_HEALTH_H_
#define LASERD_SERVER_SERVING_HEALTH_H_

#include <functional>
#include <mutex>

#include "absl/status/status.h"

namespace laserd::server {

class ServingHealth {
 public:
  // Called with the new value after every change (and once at once), under
  // this object's lock: it must not call back into it. Empty: none.
  void SetObserver(std::function<void(bool serving)> observer);
  void SetModelReady(bool ready);
  // The error of the store write that failed; OK once a write succeeds again.
  void SetStoreFault(const absl::Status& fault);

  bool serving() const;
  // OK while the store takes writes.
  absl::Status store_fault() const;

 private:
  void ChangedLocked(bool before);
  mutable std::mutex mu_;
  bool model_ready_ = false;
  absl::Status store_fault_;
  std::function<void(bool)> observer_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_SERVING_HEALTH_H_
