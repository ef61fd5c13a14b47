#include "server/watch_reactor.h"

#include "server/job_runner.h"

namespace laserd::server {

namespace pb = ::laser::v1;

void WatchReactor::Push(const pb::WatchJobEvent& ev, bool terminal) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (finished_ || finish_after_) return;
  if (ev.has_result()) {
    if (ev.result().index() < next_index_) return;  // replayed already
    next_index_ = ev.result().index() + 1;
  }
  q_.push_back(ev);
  if (terminal) finish_after_ = true;
  if (!writing_) WriteNextLocked();
}

void WatchReactor::FinishWith(const grpc::Status& s) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (finished_) return;
  if (s.ok()) {
    finish_after_ = true;
    if (!writing_) WriteNextLocked();
  } else {
    finished_ = true;
    Finish(s);
  }
}

void WatchReactor::WriteNextLocked() {
  if (finished_) return;
  if (q_head_ < q_.size()) {
    cur_ = std::move(q_[q_head_++]);
    if (q_head_ == q_.size()) {
      q_.clear();
      q_head_ = 0;
    }
    writing_ = true;
    StartWrite(&cur_);
  } else if (finish_after_) {
    finished_ = true;
    Finish(grpc::Status::OK);
  }
}

void WatchReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  writing_ = false;
  if (!ok) {
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    }
    return;
  }
  WriteNextLocked();
}

void WatchReactor::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!finished_ && !writing_) {
    finished_ = true;
    Finish(grpc::Status::CANCELLED);
  } else {
    finish_after_ = true;
    q_.clear();
    q_head_ = 0;
  }
}

void WatchReactor::OnDone() {
  jobs_->EndWatch(this);
  delete this;
}

}  // namespace laserd::server
