#include "server/grpc_services.h"

#include <chrono>

#include "base/status_macros.h"
#include "server/grpc_status.h"
#include "server/upload_reactor.h"
#include "server/watch_reactor.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using Clock = std::chrono::steady_clock;

// Authorizes, runs `fn`, maps its status, finishes and records the RPC.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(ServerState* state, grpc::CallbackServerContext* ctx,
                                const char* method, bool write, Fn fn) {
  const auto t0 = Clock::now();
  absl::Status st = state->auth.Authorize(ctx, write);
  if (st.ok()) st = fn();
  grpc::Status gs = ToGrpc(st);
  state->prometheus.RecordRpc(method, GrpcCodeName(gs.error_code()),
                              std::chrono::duration<double>(Clock::now() - t0).count());
  if (!gs.ok() && gs.error_code() != grpc::StatusCode::NOT_FOUND) {
    spdlog::info("rpc {} -> {}: {}", method, GrpcCodeName(gs.error_code()), gs.error_message());
  }
  auto* r = ctx->DefaultReactor();
  r->Finish(gs);
  return r;
}

template <typename T>
absl::Status Assign(absl::StatusOr<T> v, T* out) {
  LASERD_ASSIGN_OR_RETURN(*out, std::move(v));
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* SweepServiceImpl::CreateSweep(grpc::CallbackServerContext* ctx,
                                                        const pb::CreateSweepRequest* req,
                                                        pb::Job* resp) {
  return Unary(state_, ctx, "CreateSweep", true,
               [&] { return Assign(state_->sweeps.CreateSweep(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                   const pb::GetJobRequest* req, pb::Job* resp) {
  return Unary(state_, ctx, "GetJob", false,
               [&] { return Assign(state_->sweeps.GetJob(req->job_id()), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                     const pb::ListJobsRequest* req,
                                                     pb::ListJobsResponse* resp) {
  return Unary(state_, ctx, "ListJobs", false,
               [&] { return Assign(state_->sweeps.ListJobs(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                      const pb::CancelJobRequest* req,
                                                      pb::Job* resp) {
  return Unary(state_, ctx, "CancelJob", true,
               [&] { return Assign(state_->sweeps.CancelJob(req->job_id()), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                      const pb::DeleteJobRequest* req,
                                                      google::protobuf::Empty*) {
  return Unary(state_, ctx, "DeleteJob", true, [&] { return state_->sweeps.DeleteJob(*req); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListResults(grpc::CallbackServerContext* ctx,
                                                        const pb::ListResultsRequest* req,
                                                        pb::ListResultsResponse* resp) {
  return Unary(state_, ctx, "ListResults", false,
               [&] { return Assign(state_->sweeps.ListResults(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListExampleOutputs(
    grpc::CallbackServerContext* ctx, const pb::ListExampleOutputsRequest* req,
    pb::ListExampleOutputsResponse* resp) {
  return Unary(state_, ctx, "ListExampleOutputs", false,
               [&] { return Assign(state_->sweeps.ListExampleOutputs(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::GetSignificance(grpc::CallbackServerContext* ctx,
                                                            const pb::GetSignificanceRequest* req,
                                                            pb::Significance* resp) {
  return Unary(state_, ctx, "GetSignificance", false,
               [&] { return Assign(state_->sweeps.GetSignificance(*req), resp); });
}

grpc::ServerWriteReactor<pb::WatchJobEvent>* SweepServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const pb::WatchJobRequest* req) {
  const auto t0 = Clock::now();
  auto* w = new WatchReactor(&state_->jobs, req->job_id(), req->from_result_index());
  absl::Status st = state_->auth.Authorize(ctx, false);
  if (st.ok()) st = state_->sweeps.StartWatch(*req, w);
  const grpc::Status gs = ToGrpc(st);
  state_->prometheus.RecordRpc("WatchJob", GrpcCodeName(gs.error_code()),
                               std::chrono::duration<double>(Clock::now() - t0).count());
  if (!gs.ok()) w->FinishWith(gs);
  return w;
}

grpc::ServerUnaryReactor* ModelServiceImpl::DescribeModel(grpc::CallbackServerContext* ctx,
                                                          const pb::DescribeModelRequest*,
                                                          pb::ModelInfo* resp) {
  return Unary(state_, ctx, "DescribeModel", false,
               [&] { return Assign(state_->models.DescribeModel(), resp); });
}
grpc::ServerUnaryReactor* ModelServiceImpl::GetSpectrum(grpc::CallbackServerContext* ctx,
                                                        const pb::GetSpectrumRequest* req,
                                                        pb::Spectrum* resp) {
  return Unary(state_, ctx, "GetSpectrum", false,
               [&] { return Assign(state_->models.GetSpectrum(*req), resp); });
}

grpc::ServerReadReactor<pb::UploadDatasetRequest>* DatasetServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, pb::Dataset* resp) {
  return new UploadReactor(state_, ctx, resp);
}
grpc::ServerUnaryReactor* DatasetServiceImpl::ListDatasets(grpc::CallbackServerContext* ctx,
                                                           const pb::ListDatasetsRequest* req,
                                                           pb::ListDatasetsResponse* resp) {
  return Unary(state_, ctx, "ListDatasets", false,
               [&] { return Assign(state_->datasets.ListDatasets(*req), resp); });
}
grpc::ServerUnaryReactor* DatasetServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                         const pb::GetDatasetRequest* req,
                                                         pb::Dataset* resp) {
  return Unary(state_, ctx, "GetDataset", false,
               [&] { return Assign(state_->datasets.GetDataset(req->dataset_id()), resp); });
}
grpc::ServerUnaryReactor* DatasetServiceImpl::DeleteDataset(grpc::CallbackServerContext* ctx,
                                                            const pb::DeleteDatasetRequest* req,
                                                            google::protobuf::Empty*) {
  return Unary(state_, ctx, "DeleteDataset", true,
               [&] { return state_->datasets.DeleteDataset(req->dataset_id()); });
}

}  // namespace laserd::server
