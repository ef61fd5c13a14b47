// The one place where engine errors (absl::Status) become gRPC statuses:
// errors are values everywhere inside laserd and are mapped to gRPC codes
// only at the edge, by the gRPC shells and the HTTP API.
#ifndef LASERD_SERVER_GRPC_STATUS_H_
#define LASERD_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace laserd::server {

// Same code (absl and gRPC share google.rpc.Code numbering), same message.
grpc::Status ToGrpc(const absl::Status& s);
grpc::StatusCode ToGrpcCode(absl::StatusCode c);
// "OK", "INVALID_ARGUMENT", ... (metrics labels).
const char* GrpcCodeName(grpc::StatusCode c);

}  // namespace laserd::server

#endif  // LASERD_SERVER_GRPC_STATUS_H_
