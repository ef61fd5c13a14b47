// The gRPC services of laser.v1 (proto/laser/v1): thin shells that
// authorize each call, run its handler, map the status and record the call
// for /metrics.
#ifndef LASERD_SERVER_GRPC_SERVICES_H_
#define LASERD_SERVER_GRPC_SERVICES_H_

#include "grpcpp/grpcpp.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/server_state.h"

namespace laserd::server {

class SweepServiceImpl final : public ::laser::v1::SweepService::CallbackService {
 public:
  explicit SweepServiceImpl(ServerState* state) : state_(state) {}
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
  grpc::ServerUnaryReactor* ListExampleOutputs(
      grpc::CallbackServerContext* ctx, const ::laser::v1::ListExampleOutputsRequest* req,
      ::laser::v1::ListExampleOutputsResponse* resp) override;
  grpc::ServerUnaryReactor* GetSignificance(grpc::CallbackServerContext* ctx,
                                            const ::laser::v1::GetSignificanceRequest* req,
                                            ::laser::v1::Significance* resp) override;

 private:
  ServerState* state_;
};

class ModelServiceImpl final : public ::laser::v1::ModelService::CallbackService {
 public:
  explicit ModelServiceImpl(ServerState* state) : state_(state) {}
  grpc::ServerUnaryReactor* DescribeModel(grpc::CallbackServerContext* ctx,
                                          const ::laser::v1::DescribeModelRequest* req,
                                          ::laser::v1::ModelInfo* resp) override;
  grpc::ServerUnaryReactor* GetSpectrum(grpc::CallbackServerContext* ctx,
                                        const ::laser::v1::GetSpectrumRequest* req,
                                        ::laser::v1::Spectrum* resp) override;

 private:
  ServerState* state_;
};

class DatasetServiceImpl final : public ::laser::v1::DatasetService::CallbackService {
 public:
  explicit DatasetServiceImpl(ServerState* state) : state_(state) {}
  grpc::ServerReadReactor<::laser::v1::UploadDatasetRequest>* UploadDataset(
      grpc::CallbackServerContext* ctx, ::laser::v1::Dataset* resp) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const ::laser::v1::ListDatasetsRequest* req,
                                         ::laser::v1::ListDatasetsResponse* resp) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const ::laser::v1::GetDatasetRequest* req,
                                       ::laser::v1::Dataset* resp) override;
  grpc::ServerUnaryReactor* DeleteDataset(grpc::CallbackServerContext* ctx,
                                          const ::laser::v1::DeleteDatasetRequest* req,
                                          google::protobuf::Empty* resp) override;

 private:
  ServerState* state_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_GRPC_SERVICES_H_
