// laserd's durable state: jobs, their results (and the example outputs of
// the baseline and of the results of jobs that keep them) and uploaded
// datasets in one SQLite database (WAL mode, synchronous=FULL) under
// --state-dir. Every write is one transaction, committed before the caller
// streams what it wrote, so a killed server loses nothing it has reported; a
// write that fails leaves the store as it was (its transaction rolled back)
// and says why: RESOURCE_EXHAUSTED for a full disk, DATA_LOSS for a damaged
// file, UNAVAILABLE for a store another connection keeps locked, INTERNAL for
// anything else.
// Thread-safe (one connection behind a mutex).
#ifndef LASERD_SERVER_JOB_STORE_H_
#define LASERD_SERVER_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "laser/v1/dataset.pb.h"
#include "laser/v1/sweep.pb.h"

struct sqlite3;

namespace laserd::server {

// A job as stored: the Job message plus its arrival number (FIFO order).
struct StoredJob {
  ::laser::v1::Job job;
  int64_t seq = 0;
};

class JobStore {
 public:
  // Opens (creating if needed) DIR/laserd.db after checking it: DATA_LOSS
  // when it is damaged (empty, not SQLite, PRAGMA quick_check fails, tables
  // missing), FAILED_PRECONDITION when a newer laserd wrote it; the file is
  // then left as it was.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& dir);
  ~JobStore();

  // Inserts a new job; ALREADY_EXISTS when its id or request_id is taken.
  absl::StatusOr<int64_t> InsertJob(const ::laser::v1::Job& job);
  // Replaces the stored job (spec, state, progress, ...); NOT_FOUND if deleted.
  // With `baseline_outputs`, also stores (or replaces) the baseline's example
  // outputs (index -1), in the same transaction.
  absl::Status UpdateJob(const ::laser::v1::Job& job,
                         const ::laser::v1::ExampleOutputs* baseline_outputs = nullptr);
  absl::StatusOr<StoredJob> GetJob(const std::string& id);
  std::optional<StoredJob> FindByRequestId(const std::string& request_id);
  // Every job, newest first.
  absl::StatusOr<std::vector<StoredJob>> ListJobs();
  // Deletes a job, its results and example outputs; NOT_FOUND if absent.
  absl::Status DeleteJob(const std::string& id);

  // In one transaction: stores `r` (its index must be the job's result count)
  // and the updated job. NOT_FOUND if the job was deleted; ALREADY_EXISTS when
  // the plan_index is stored already (never duplicated). With `outputs`, the
  // result's example outputs are stored in the same transaction.
  absl::Status AppendResult(const ::laser::v1::Result& r, const ::laser::v1::Job& updated,
                            const ::laser::v1::ExampleOutputs* outputs = nullptr);
  // Stored example outputs of a job with from <= index <= to (-1 is the
  // baseline's), in index order, at most `limit` after skipping `offset`;
  // and how many there are.
  absl::StatusOr<std::vector<::laser::v1::ExampleOutputs>> ReadExampleOutputs(
      const std::string& job_id, int64_t from, int64_t to, int64_t limit, int64_t offset = 0);
  absl::StatusOr<int64_t> CountExampleOutputs(const std::string& job_id, int64_t from, int64_t to);
  // Results with index >= from, in index order.
  absl::StatusOr<std::vector<::laser::v1::Result>> Results(const std::string& job_id,
                                                           int64_t from = 0);
  absl::StatusOr<std::set<int64_t>> PlanIndices(const std::string& job_id);

  // Datasets (content-addressed; inserting an existing id is a no-op).
  // `quota_bytes` > 0: RESOURCE_EXHAUSTED, with the sizes, when storing a new
  // dataset would take the stored datasets' bytes over it (checked and
  // inserted under the store's lock, so concurrent uploads cannot both pass).
  absl::Status PutDataset(const ::laser::v1::Dataset& meta, const std::string& bytes,
                          int64_t quota_bytes = 0);
  // Deletes a dataset: NOT_FOUND when absent, FAILED_PRECONDITION naming the
  // jobs when a queued or running job's spec uses it (checked and deleted
  // under the store's lock).
  absl::Status DeleteDataset(const std::string& id);
  // The bytes of all stored datasets.
  absl::StatusOr<int64_t> DatasetStoreBytes();
  absl::StatusOr<::laser::v1::Dataset> GetDataset(const std::string& id);
  absl::StatusOr<std::string> DatasetBytes(const std::string& id);
  // Newest first.
  absl::StatusOr<std::vector<::laser::v1::Dataset>> ListDatasets();

  // The database's size in pages, and a cap on it (PRAGMA max_page_count of
  // this connection; SQLite never sets it below the current size and returns
  // the cap it set). A write that needs more pages than the cap fails as on a
  // full disk (RESOURCE_EXHAUSTED), which is how the tests fill the disk
  // (`laserd serve --test-store-page-headroom`, docs/server.md).
  absl::StatusOr<int64_t> PageCount();
  absl::StatusOr<int64_t> SetMaxPageCount(int64_t pages);

 private:
  JobStore() = default;
  absl::Status Exec(const char* sql);
  // Ends the failed write transaction: rolls it back unless SQLite did already
  // (it may after SQLITE_FULL or an I/O error) and returns `cause` (with the
  // rollback's error appended when that fails too).
  absl::Status Abandon(absl::Status cause);
  // COMMIT; a failed commit is rolled back (Abandon) and returned.
  absl::Status Commit();
  // PRAGMA quick_check and the schema version: DATA_LOSS for a damaged store,
  // FAILED_PRECONDITION for one of a newer schema.
  absl::Status Check();
  absl::StatusOr<int64_t> DatasetStoreBytesLocked();
  // Inside a write transaction: inserts or replaces one ExampleOutputs row
  // (rolling the transaction back when it fails).
  absl::Status PutExampleOutputsLocked(const std::string& job_id, int64_t idx,
                                       const ::laser::v1::ExampleOutputs& outputs);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_JOB_STORE_H_
