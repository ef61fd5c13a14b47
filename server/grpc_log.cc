#include "server/grpc_log.h"

#include <memory>
#include <string_view>

#include "grpc/support/log.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

std::shared_ptr<spdlog::logger>& GrpcLogger() {
  static auto* logger = new std::shared_ptr<spdlog::logger>();
  return *logger;
}

void LogGrpcLine(gpr_log_func_args* args) {
  const std::shared_ptr<spdlog::logger>& logger = GrpcLogger();
  if (!logger) return;
  spdlog::level::level_enum level = spdlog::level::info;
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      level = spdlog::level::debug;
      break;
    case GPR_LOG_SEVERITY_INFO:
      level = spdlog::level::info;
      break;
    case GPR_LOG_SEVERITY_ERROR:
      level = spdlog::level::err;
      break;
  }
  std::string_view file = args->file != nullptr ? args->file : "";
  if (const size_t slash = file.find_last_of('/'); slash != std::string_view::npos) {
    file.remove_prefix(slash + 1);
  }
  logger->log(level, "[{}:{}] {}", file, args->line, args->message != nullptr ? args->message : "");
}

}  // namespace

void RouteGrpcLogsToSpdlog() {
  const auto& sinks = spdlog::default_logger()->sinks();
  auto logger = std::make_shared<spdlog::logger>("grpc", sinks.begin(), sinks.end());
  // gRPC already filtered by GRPC_VERBOSITY; let everything it logs through.
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::err);
  GrpcLogger() = std::move(logger);
  gpr_set_log_function(LogGrpcLine);
}

}  // namespace laserd::server
