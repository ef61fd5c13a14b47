// laserd serve: the gRPC services of proto/laser/v1 over one resident model
// (DESIGN.md §4, docs/server.md). One worker thread runs one job at a time;
// the others wait in a queue ordered by priority, then arrival. Jobs, results
// and datasets live in the JobStore; every result is committed before it is
// streamed to watchers.
#ifndef LASERD_SERVER_SERVICE_H_
#define LASERD_SERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/run.h"
#include "engine/laser/sweep.h"
#include "grpcpp/grpcpp.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/job_store.h"
#include "server/metrics.h"

namespace laserd::server {

struct ServeOptions {
  std::string model, device = "auto", tokenizer;
  // Several devices (--devices, entries as laser::ParseDeviceList returns
  // them): one resident replica each; empty = the one `device`.
  std::vector<std::string> devices;
  std::string listen = "127.0.0.1:50051";
  std::string http_listen;  // empty: no HTTP endpoint
  std::string state_dir;
  std::string tokens_file;  // empty: no authentication
  std::string tls_cert, tls_key, tls_client_ca;
  // Directories whose JSONL files specs may name by dataset.path.
  std::vector<std::string> data_dirs;
  int64_t max_message_bytes = 16 << 20;
  int64_t max_dataset_bytes = 64 << 20;
  int64_t max_grid = 100000;
  int64_t max_queued = 1000;
  int64_t cache_budget_mb = 1024;
};

// Bearer tokens (`<token> read|write [name]` per line; '#' comments).
struct TokenInfo {
  bool write = false;
  std::string name;
};
absl::StatusOr<std::map<std::string, TokenInfo>> ReadTokens(const std::string& path);

class WatchReactor;

// The server's state and every RPC's logic, in absl terms.
class Core {
 public:
  Core(ServeOptions opts, std::unique_ptr<JobStore> store, std::map<std::string, TokenInfo> tokens);
  ~Core();

  // Loads the model (blocking); health turns SERVING after it.
  absl::Status LoadModel();
  bool resident() const { return resident_.load(); }
  // Requeues unfinished jobs and starts the worker.
  absl::Status Start();
  void Stop();

  // UNAUTHENTICATED / PERMISSION_DENIED unless the call carries a token with
  // the scope; OK when no tokens are configured.
  absl::Status Authorize(const grpc::CallbackServerContext* ctx, bool write) const;
  // The same check on the value of an `authorization` header or metadata
  // entry (nullptr: none was sent); `carrier` names it in messages ("metadata"
  // for gRPC, "header" for the HTTP API of server/http_api.h).
  absl::Status AuthorizeBearer(const std::string* authorization, bool write,
                               absl::string_view carrier = "metadata") const;

  absl::StatusOr<::laser::v1::Job> CreateSweep(const ::laser::v1::CreateSweepRequest& req);
  absl::StatusOr<::laser::v1::Job> GetJob(const std::string& id);
  absl::StatusOr<::laser::v1::ListJobsResponse> ListJobs(const ::laser::v1::ListJobsRequest& req);
  absl::StatusOr<::laser::v1::Job> CancelJob(const std::string& id);
  absl::Status DeleteJob(const ::laser::v1::DeleteJobRequest& req);
  absl::StatusOr<::laser::v1::ListResultsResponse> ListResults(
      const ::laser::v1::ListResultsRequest& req);
  // Starts a watch: queues the job and the replay on `w` and registers it for
  // live events (or finishes it after the replay for a terminal job).
  absl::Status StartWatch(const ::laser::v1::WatchJobRequest& req, WatchReactor* w);
  void EndWatch(WatchReactor* w);

  absl::StatusOr<::laser::v1::ModelInfo> DescribeModel();
  absl::StatusOr<::laser::v1::Spectrum> GetSpectrum(const ::laser::v1::GetSpectrumRequest& req);

  absl::StatusOr<::laser::v1::Dataset> StoreDataset(const std::string& display_name,
                                                    const std::string& expected_sha256,
                                                    const std::string& bytes);
  absl::StatusOr<::laser::v1::ListDatasetsResponse> ListDatasets(
      const ::laser::v1::ListDatasetsRequest& req);
  absl::StatusOr<::laser::v1::Dataset> GetDataset(const std::string& id);

  const ServeOptions& options() const { return opts_; }
  Metrics& metrics() { return metrics_; }
  Metrics::Snapshot Sample();
  // JSON for the HTTP status endpoints.
  std::string StatusJson();
  std::string JobsJson();

 private:
  struct Queued {
    std::string id;
    int32_t priority;
    int64_t seq;
  };
  void WorkerLoop();
  void RunJob(const std::string& id);
  // Under mu_: store the running job and publish an event to its watchers.
  void PublishLocked(const std::string& job_id, const ::laser::v1::WatchJobEvent& ev,
                     bool terminal);
  absl::Status SaveRunningLocked();
  void FinishRunning(const absl::Status& st);
  absl::StatusOr<eval::Dataset> ResolveDataset(const ::laser::v1::SweepSpec& spec,
                                               std::string* source);
  absl::StatusOr<laser::SweepConfig> ConfigFor(const ::laser::v1::SweepSpec& spec);
  absl::Status ModelReady() const;

  ServeOptions opts_;
  std::unique_ptr<JobStore> store_;
  std::map<std::string, TokenInfo> tokens_;
  Metrics metrics_;

  // The model; model_mu_ is held by the worker while it edits the model, and
  // released between interventions when a spectrum request waits. With
  // --devices, lm_ is the first replica (the one described, read by
  // GetSpectrum, and used for baselines and composition) and replicas_ holds
  // the others; a sweep's matrices are spread over all of them.
  eval::LoadedModel lm_;
  std::vector<eval::LoadedModel> replicas_;
  std::vector<std::string> device_names_;  // one per replica, lm_'s first
  std::atomic<bool> resident_{false};
  ::laser::v1::ModelInfo model_info_;
  std::mutex model_mu_;
  std::atomic<int> spectrum_waiting_{0};
  std::condition_variable model_cv_;
  std::mutex spectra_mu_;
  std::map<std::pair<std::string, int64_t>, ::laser::v1::Spectrum> spectra_;

  // Queue, running job, watchers.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;
  bool stop_ = false;
  std::string running_id_;
  ::laser::v1::Job running_;  // the running job's current state (canonical copy)
  bool cancel_ = false;
  bool running_deleted_ = false;
  double ips_ = 0;
  std::map<std::string, std::set<WatchReactor*>> watchers_;
  std::thread worker_;
};

// Server-streaming reactor of WatchJob: a queue of events written in order.
class WatchReactor : public grpc::ServerWriteReactor<::laser::v1::WatchJobEvent> {
 public:
  WatchReactor(Core* core, std::string job_id, int64_t next_index)
      : core_(core), job_id_(std::move(job_id)), next_index_(next_index) {}
  const std::string& job_id() const { return job_id_; }
  // Queues an event; a result below the next expected index is dropped (it was
  // replayed already). `terminal`: finish after it.
  void Push(const ::laser::v1::WatchJobEvent& ev, bool terminal);
  void FinishWith(const grpc::Status& s);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  // Called when registered (or refused) to start writing.
  void Begin();

 private:
  void WriteNextLocked();
  Core* core_;
  std::string job_id_;
  std::recursive_mutex mu_;
  std::vector<::laser::v1::WatchJobEvent> q_;
  size_t q_head_ = 0;
  ::laser::v1::WatchJobEvent cur_;
  int64_t next_index_;
  bool writing_ = false, finish_after_ = false, finished_ = false, started_ = false;
};

// The gRPC services: thin shells that authorize, time and map statuses.
class SweepServiceImpl final : public ::laser::v1::SweepService::CallbackService {
 public:
  explicit SweepServiceImpl(Core* core) : core_(core) {}
  grpc::ServerUnaryReactor* CreateSweep(grpc::CallbackServerContext* ctx,
                                        const ::laser::v1::CreateSweepRequest* req,
                                        ::laser::v1::Job* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const ::laser::v1::GetJobRequest* req,
                                   ::laser::v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const ::laser::v1::ListJobsRequest* req,
                                     ::laser::v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const ::laser::v1::CancelJobRequest* req,
                                      ::laser::v1::Job* resp) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const ::laser::v1::DeleteJobRequest* req,
                                      google::protobuf::Empty* resp) override;
  grpc::ServerWriteReactor<::laser::v1::WatchJobEvent>* WatchJob(
      grpc::CallbackServerContext* ctx, const ::laser::v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* ListResults(grpc::CallbackServerContext* ctx,
                                        const ::laser::v1::ListResultsRequest* req,
                                        ::laser::v1::ListResultsResponse* resp) override;

 private:
  Core* core_;
};

class ModelServiceImpl final : public ::laser::v1::ModelService::CallbackService {
 public:
  explicit ModelServiceImpl(Core* core) : core_(core) {}
  grpc::ServerUnaryReactor* DescribeModel(grpc::CallbackServerContext* ctx,
                                          const ::laser::v1::DescribeModelRequest* req,
                                          ::laser::v1::ModelInfo* resp) override;
  grpc::ServerUnaryReactor* GetSpectrum(grpc::CallbackServerContext* ctx,
                                        const ::laser::v1::GetSpectrumRequest* req,
                                        ::laser::v1::Spectrum* resp) override;

 private:
  Core* core_;
};

class DatasetServiceImpl final : public ::laser::v1::DatasetService::CallbackService {
 public:
  explicit DatasetServiceImpl(Core* core) : core_(core) {}
  grpc::ServerReadReactor<::laser::v1::UploadDatasetRequest>* UploadDataset(
      grpc::CallbackServerContext* ctx, ::laser::v1::Dataset* resp) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const ::laser::v1::ListDatasetsRequest* req,
                                         ::laser::v1::ListDatasetsResponse* resp) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const ::laser::v1::GetDatasetRequest* req,
                                       ::laser::v1::Dataset* resp) override;

 private:
  Core* core_;
};

// Lowercase hex SHA-256 of `bytes`.
std::string Sha256Hex(const std::string& bytes);

}  // namespace laserd::server

#endif  // LASERD_SERVER_SERVICE_H_
