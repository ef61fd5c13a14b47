// The logic of laser.v1.SweepService, in absl terms: checking requests and
// specs, listing and ordering results; the jobs themselves change state in
// the JobRunner.
#ifndef LASERD_SERVER_SWEEP_HANDLERS_H_
#define LASERD_SERVER_SWEEP_HANDLERS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "laser/v1/sweep.pb.h"
#include "server/job_runner.h"
#include "server/job_spec.h"
#include "server/job_store.h"
#include "server/resident_model.h"

namespace laserd::server {

class WatchReactor;

// Labels of one job (spec.labels), beyond the shape of each key and value:
// at most kMaxLabels labels, and keys and values together at most
// kMaxLabelBytes, so that one job is far below a List page's byte budget
// (server/paging.h). Past either: INVALID_ARGUMENT naming the limit.
inline constexpr int kMaxLabels = 64;
inline constexpr int64_t kMaxLabelBytes = 16 * 1024;

class SweepHandlers {
 public:
  SweepHandlers(JobStore& store, ResidentModel& model, JobRunner& jobs, JobInputs inputs,
                int64_t max_grid)
      : store_(store),
        model_(model),
        jobs_(jobs),
        inputs_(std::move(inputs)),
        max_grid_(max_grid) {}

  absl::StatusOr<::laser::v1::Job> CreateSweep(const ::laser::v1::CreateSweepRequest& req);
  absl::StatusOr<::laser::v1::Job> GetJob(const std::string& id);
  absl::StatusOr<::laser::v1::ListJobsResponse> ListJobs(const ::laser::v1::ListJobsRequest& req);
  absl::StatusOr<::laser::v1::Job> CancelJob(const std::string& id);
  absl::Status DeleteJob(const ::laser::v1::DeleteJobRequest& req);
  absl::StatusOr<::laser::v1::ListResultsResponse> ListResults(
      const ::laser::v1::ListResultsRequest& req);
  absl::StatusOr<::laser::v1::ListExampleOutputsResponse> ListExampleOutputs(
      const ::laser::v1::ListExampleOutputsRequest& req);
  absl::StatusOr<::laser::v1::Significance> GetSignificance(
      const ::laser::v1::GetSignificanceRequest& req);
  // Starts a watch: queues the job and the replay on `w` and registers it for
  // live events (or finishes it after the replay for a finished job).
  absl::Status StartWatch(const ::laser::v1::WatchJobRequest& req, WatchReactor* w);

 private:
  JobStore& store_;
  ResidentModel& model_;
  JobRunner& jobs_;
  const JobInputs inputs_;
  const int64_t max_grid_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_SWEEP_HANDLERS_H_
