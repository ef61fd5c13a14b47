#include "server/malformed_request.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/server_context.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

class MalformedRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  MalformedRequestInterceptor(ServerRpcInfo* info, PrometheusMetrics* metrics)
      : info_(info), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    // Only a unary or server-streaming call receives its one request before
    // the handler: there a null message is a request that did not parse
    // (a missing one does not parse either). For the streaming-request kinds a
    // null message is also the end of the stream, so they are left alone.
    const bool request_with_call = info_->type() == ServerRpcInfo::Type::UNARY ||
                                   info_->type() == ServerRpcInfo::Type::SERVER_STREAMING;
    if (request_with_call &&
        m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        m->GetRecvMessage() == nullptr) {
      malformed_ = true;
      const std::string method = info_->method();
      metrics_->RecordMalformedRequest(ShortMethodName(method));
      spdlog::warn("rpc {} from {}: malformed request: {}", ShortMethodName(method),
                   info_->server_context()->peer(), MalformedRequestMessage(method));
    }
    if (malformed_ && m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        m->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      m->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       MalformedRequestMessage(info_->method())));
    }
    m->Proceed();
  }

 private:
  ServerRpcInfo* info_;
  PrometheusMetrics* metrics_;
  bool malformed_ = false;
};

}  // namespace

std::string ShortMethodName(const std::string& method) {
  const size_t slash = method.find_last_of('/');
  return slash == std::string::npos ? method : method.substr(slash + 1);
}

std::string MalformedRequestMessage(const std::string& method) {
  // "/laser.v1.SweepService/ListJobs" -> "laser.v1.SweepService.ListJobs".
  std::string full = method.empty() || method[0] != '/' ? method : method.substr(1);
  absl::StrReplaceAll({{"/", "."}}, &full);
  const google::protobuf::MethodDescriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full);
  const std::string type = d != nullptr ? d->input_type()->full_name() : "request message";
  return absl::StrCat(ShortMethodName(method), ": the request is not a valid ", type,
                      " (its bytes do not parse as that protobuf message)");
}

grpc::experimental::Interceptor* MalformedRequestInterceptorFactory::CreateServerInterceptor(
    ServerRpcInfo* info) {
  return new MalformedRequestInterceptor(info, metrics_);
}

}  // namespace laserd::server
