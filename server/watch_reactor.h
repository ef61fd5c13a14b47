// The server-streaming reactor of WatchJob: the job, its stored results, then
// live events, written in order one at a time.
#ifndef LASERD_SERVER_WATCH_REACTOR_H_
#define LASERD_SERVER_WATCH_REACTOR_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::server {

class JobRunner;

class WatchReactor : public grpc::ServerWriteReactor<::laser::v1::WatchJobEvent> {
 public:
  WatchReactor(JobRunner* jobs, std::string job_id, int64_t next_index)
      : jobs_(jobs), job_id_(std::move(job_id)), next_index_(next_index) {}
  const std::string& job_id() const { return job_id_; }
  // Queues an event; a result below the next expected index is dropped (it was
  // replayed already). `terminal`: finish after it.
  void Push(const ::laser::v1::WatchJobEvent& ev, bool terminal);
  void FinishWith(const grpc::Status& s);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void WriteNextLocked();
  JobRunner* jobs_;
  std::string job_id_;
  std::recursive_mutex mu_;
  std::vector<::laser::v1::WatchJobEvent> q_;
  size_t q_head_ = 0;
  ::laser::v1::WatchJobEvent cur_;
  int64_t next_index_;
  bool writing_ = false, finish_after_ = false, finished_ = false;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_WATCH_REACTOR_H_
