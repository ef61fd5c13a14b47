// The logic of laser.v1.DatasetService: uploaded datasets are checked
// (parsed as JSONL records), stored under their SHA-256 within the store's
// quota, listed, and deleted when no queued or running job uses them.
#ifndef LASERD_SERVER_DATASET_HANDLERS_H_
#define LASERD_SERVER_DATASET_HANDLERS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "laser/v1/dataset.pb.h"
#include "server/job_store.h"

namespace laserd::server {

class DatasetHandlers {
 public:
  // `quota_bytes` > 0: the most bytes all stored datasets may take
  // (--dataset-quota-bytes); 0: no quota.
  explicit DatasetHandlers(JobStore& store, int64_t quota_bytes = 0)
      : store_(store), quota_bytes_(quota_bytes) {}

  // The end of an upload: `bytes` as received.
  absl::StatusOr<::laser::v1::Dataset> StoreDataset(const std::string& display_name,
                                                    const std::string& expected_sha256,
                                                    const std::string& bytes);
  absl::StatusOr<::laser::v1::ListDatasetsResponse> ListDatasets(
      const ::laser::v1::ListDatasetsRequest& req);
  absl::StatusOr<::laser::v1::Dataset> GetDataset(const std::string& id);
  // NOT_FOUND when absent; FAILED_PRECONDITION naming the queued or running
  // jobs that use it.
  absl::Status DeleteDataset(const std::string& id);

 private:
  JobStore& store_;
  const int64_t quota_bytes_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_DATASET_HANDLERS_H_
