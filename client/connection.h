// How laserctl reaches a laserd server: the global flags (--server, --token,
// --token-file, --tls-ca, --tls, --timeout) with their environment fallbacks
// (LASERD_SERVER, LASERD_TOKEN), and the channel with the three service stubs.
#ifndef LASERD_CLIENT_CONNECTION_H_
#define LASERD_CLIENT_CONNECTION_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"

namespace laserd::client {

struct ConnectionOptions {
  std::string server;  // HOST:PORT; empty: LASERD_SERVER, else localhost:50051
  std::string token;   // empty: the --token-file's contents, else LASERD_TOKEN
  std::string token_file;
  std::string tls_ca;   // PEM root certificates; enables TLS
  bool tls = false;     // TLS with the system's root certificates
  double timeout = 30;  // deadline of each unary call in seconds (0: none)
};

// The global flags of laserctl, bound to `*o`.
void AddConnectionFlags(CLI::App& app, ConnectionOptions* o);

class Connection {
 public:
  explicit Connection(const ConnectionOptions& o) : o_(o) {}

  // Resolves the server and token (flags, files, environment) and opens the channel.
  absl::Status Init();

  // A context with the token and, unless `streaming`, the deadline.
  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const;

  ::laser::v1::SweepService::Stub& sweeps() { return *sweeps_; }
  ::laser::v1::ModelService::Stub& models() { return *models_; }
  ::laser::v1::DatasetService::Stub& datasets() { return *datasets_; }

 private:
  ConnectionOptions o_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::laser::v1::SweepService::Stub> sweeps_;
  std::unique_ptr<::laser::v1::ModelService::Stub> models_;
  std::unique_ptr<::laser::v1::DatasetService::Stub> datasets_;
};

// Connects with `o` and runs `command` on the connection; when the connection
// cannot be set up (e.g. an unreadable token file) the error is reported and
// its exit code returned instead.
int WithConnection(const ConnectionOptions& o, const std::function<int(Connection&)>& command);

}  // namespace laserd::client

#endif  // LASERD_CLIENT_CONNECTION_H_
