// The client-streaming reactor of UploadDataset: the header, then chunks of
// at most --max-dataset-bytes in all; validated and stored at the end.
#ifndef LASERD_SERVER_UPLOAD_REACTOR_H_
#define LASERD_SERVER_UPLOAD_REACTOR_H_

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "laser/v1/dataset.pb.h"
#include "server/server_state.h"

namespace laserd::server {

class UploadReactor : public grpc::ServerReadReactor<::laser::v1::UploadDatasetRequest> {
 public:
  UploadReactor(ServerState* state, grpc::CallbackServerContext* ctx, ::laser::v1::Dataset* resp);
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& st);
  ServerState* state_;
  ::laser::v1::Dataset* resp_;
  std::chrono::steady_clock::time_point t0_;
  ::laser::v1::UploadDatasetRequest req_;
  ::laser::v1::UploadDatasetHeader header_;
  bool have_header_ = false;
  std::string bytes_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_UPLOAD_REACTOR_H_
