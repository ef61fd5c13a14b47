// The logic of laser.v1.DatasetService: uploaded datasets are checked
// (parsed as JSONL records), stored under their SHA-256 and listed.
#ifndef LASERD_SERVER_DATASET_HANDLERS_H_
#define LASERD_SERVER_DATASET_HANDLERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "laser/v1/dataset.pb.h"
#include "server/job_store.h"

namespace laserd::server {

class DatasetHandlers {
 public:
  explicit DatasetHandlers(JobStore& store) : store_(store) {}

  // The end of an upload: `bytes` as received.
  absl::StatusOr<::laser::v1::Dataset> StoreDataset(const std::string& display_name,
                                                    const std::string& expected_sha256,
                                                    const std::string& bytes);
  absl::StatusOr<::laser::v1::ListDatasetsResponse> ListDatasets(
      const ::laser::v1::ListDatasetsRequest& req);
  absl::StatusOr<::laser::v1::Dataset> GetDataset(const std::string& id);

 private:
  JobStore& store_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_DATASET_HANDLERS_H_
