// How laserctl reports an error: one line "laserctl: <message>" on stderr, and
// the process exit code for it (laserctl_core.h's ExitCode).
#ifndef LASERD_CLIENT_FAILURE_H_
#define LASERD_CLIENT_FAILURE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace laserd::client {

// Prints the message; returns `exit_code`.
int Fail(int exit_code, const std::string& message);
// "<what>: <STATUS_CODE>: <server message>", with the exit code of the status code.
int FailRpc(const std::string& what, const grpc::Status& st);
// The status's message, with the exit code of its code.
int FailStatus(const absl::Status& st);

}  // namespace laserd::client

#endif  // LASERD_CLIENT_FAILURE_H_
