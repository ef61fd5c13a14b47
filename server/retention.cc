#include "server/retention.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

absl::Time ToAbslTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

absl::StatusOr<absl::Duration> ParseJobRetention(const std::string& flag) {
  if (flag.empty()) return absl::ZeroDuration();
  absl::Duration d;
  int64_t days = 0;
  absl::string_view v = flag;
  if (absl::ConsumeSuffix(&v, "d") && absl::SimpleAtoi(v, &days) && days >= 0) {
    return absl::Hours(24) * days;
  }
  if (!absl::ParseDuration(flag, &d) || d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--job-retention: '", flag,
                     "' is not a duration such as 720h, 7d, 90m or 30s (0: keep every job)"));
  }
  return d;
}

absl::Duration RetentionCheckInterval(absl::Duration retention) {
  return std::clamp(retention / 10, absl::Seconds(1), absl::Minutes(10));
}

absl::StatusOr<int> JobRetention::DeleteExpired(absl::Time now) {
  if (retention_ <= absl::ZeroDuration()) return 0;
  const absl::Time cutoff = now - retention_;
  LASERD_ASSIGN_OR_RETURN(const std::vector<StoredJob> jobs, store_.ListJobs());
  int deleted = 0;
  for (const StoredJob& sj : jobs) {
    const pb::Job& j = sj.job;
    if (!Terminal(j.state())) continue;
    const absl::Time ended = ToAbslTime(j.has_end_time() ? j.end_time() : j.update_time());
    if (ended >= cutoff) continue;
    // Through the runner: it refuses a job that is not finished (never one
    // that was requeued meanwhile) and tells the job's watchers.
    const absl::Status st = jobs_.Delete(j.id(), /*force=*/false);
    if (st.ok()) {
      ++deleted;
      spdlog::info("job {} deleted by --job-retention ({} ended {})", j.id(), StateName(j.state()),
                   absl::FormatTime(ended, absl::UTCTimeZone()));
    } else if (st.code() != absl::StatusCode::kNotFound) {
      spdlog::warn("--job-retention: job {}: {}", j.id(), st.ToString());
    }
  }
  return deleted;
}

absl::Status JobRetention::Start() {
  if (retention_ <= absl::ZeroDuration()) return absl::OkStatus();
  LASERD_ASSIGN_OR_RETURN(const int n, DeleteExpired(absl::Now()));
  spdlog::info("--job-retention {}: {} finished job(s) deleted at start; checked every {}",
               absl::FormatDuration(retention_), n,
               absl::FormatDuration(RetentionCheckInterval(retention_)));
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void JobRetention::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void JobRetention::Loop() {
  const auto interval = absl::ToChronoMilliseconds(RetentionCheckInterval(retention_));
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval, [&] { return stop_; })) {
    lock.unlock();
    if (auto n = DeleteExpired(absl::Now()); !n.ok()) {
      spdlog::warn("--job-retention: {}", n.status().ToString());
    }
    lock.lock();
  }
}

}  // namespace laserd::server
