// What a served job's spec becomes for the engine: its SweepConfig and its
// dataset (uploaded, or a file under one of the server's --data-dir), with
// errors that name the spec field. CreateSweep checks a spec with these and
// the worker builds the job's sweep from them.
#ifndef LASERD_SERVER_JOB_SPEC_H_
#define LASERD_SERVER_JOB_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/dataset.h"
#include "engine/laser/sweep.h"
#include "laser/v1/sweep.pb.h"
#include "server/job_store.h"

namespace laserd::server {

class JobInputs {
 public:
  JobInputs(JobStore& store, std::vector<std::string> data_dirs, int64_t cache_budget_bytes)
      : store_(&store), data_dirs_(std::move(data_dirs)), cache_budget_bytes_(cache_budget_bytes) {}

  absl::StatusOr<laser::SweepConfig> Config(const ::laser::v1::SweepSpec& spec) const;
  // The spec's dataset; `source` names it ("dataset <id>" or the path).
  // `sha256`, when given, receives the lowercase hex SHA-256 of its bytes
  // (for an uploaded dataset, its id): what a job created from it is pinned to.
  absl::StatusOr<eval::Dataset> Dataset(const ::laser::v1::SweepSpec& spec, std::string* source,
                                        std::string* sha256 = nullptr) const;
  // The dataset a job starts (or resumes) on: Dataset(spec), checked against
  // `pinned_sha256`, the digest stored at the job's creation. When the bytes
  // differ, FAILED_PRECONDITION naming the path and both digests, unless
  // spec.dataset.allow_changed_file. An empty `pinned_sha256` (a job stored
  // before digests were recorded) is not checked. `sha256` receives the
  // digest of the bytes read.
  absl::StatusOr<eval::Dataset> PinnedDataset(const ::laser::v1::SweepSpec& spec,
                                              const std::string& pinned_sha256, std::string* source,
                                              std::string* sha256) const;

 private:
  JobStore* store_;
  std::vector<std::string> data_dirs_;
  int64_t cache_budget_bytes_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_JOB_SPEC_H_
