// gRPC's own log lines (gRPC 1.51 logs through gpr_log) written by spdlog, so
// that they come out in the format of laserd's other lines (JSON lines under
// `laserd serve`) with "logger":"grpc". gRPC still chooses which lines to log
// (GRPC_VERBOSITY: ERROR unless set; GRPC_TRACE).
#ifndef LASERD_SERVER_GRPC_LOG_H_
#define LASERD_SERVER_GRPC_LOG_H_

namespace laserd::server {

// Installs the gpr log function: every later gRPC log line goes to a logger
// named "grpc" writing to the sinks of spdlog's default logger, at the
// line's severity (DEBUG, INFO, ERROR), its message prefixed with the gRPC
// source file's name and line ("[chttp2_server.cc:1234] ..."). Call it after
// the default logger and its format are set, before gRPC is first used.
void RouteGrpcLogsToSpdlog();

}  // namespace laserd::server

#endif  // LASERD_SERVER_GRPC_LOG_H_
