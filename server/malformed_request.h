// Requests whose bytes are not a valid protobuf of the method's request type.
//
// gRPC 1.51's callback API parses a unary or server-streaming request before
// the handler runs; when that fails it never calls the handler and answers
// UNIMPLEMENTED with an empty message. This server interceptor sees the failed
// parse (the received message is null at POST_RECV_MESSAGE), logs it, counts
// it (laserd_rpc_malformed_requests_total{method}) and replaces that status by
// INVALID_ARGUMENT naming the method and its request type.
//
// Client-streaming requests (UploadDataset) are not covered: gRPC reports a
// message that does not parse to the reactor exactly as the end of the stream
// (docs/server.md, "Malformed requests").
#ifndef LASERD_SERVER_MALFORMED_REQUEST_H_
#define LASERD_SERVER_MALFORMED_REQUEST_H_

#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "server/prometheus.h"

namespace laserd::server {

// The message of the INVALID_ARGUMENT status for a request to `method` (the
// gRPC path, "/laser.v1.SweepService/ListJobs") that did not parse:
// "ListJobs: the request is not a valid laser.v1.ListJobsRequest (its bytes do
// not parse as that protobuf message)".
std::string MalformedRequestMessage(const std::string& method);

// The method's name without its service ("/laser.v1.SweepService/ListJobs" ->
// "ListJobs"), as laserd_rpc_requests_total names methods.
std::string ShortMethodName(const std::string& method);

class MalformedRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MalformedRequestInterceptorFactory(PrometheusMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  PrometheusMetrics* metrics_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_MALFORMED_REQUEST_H_
