#include "common/grpc_log.h"

#include <grpc/support/log.h>

#include <atomic>

#include "common/log.h"

namespace tlscache {
namespace {

std::atomic<bool> quiet{false};

void LogGrpc(gpr_log_func_args* args) {
  if (quiet.load(std::memory_order_relaxed)) return;
  LogLevel level = LogLevel::kInfo;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = LogLevel::kError;
  LogMessage(level, absl::StrFormat("grpc %s:%d: %s", args->file, args->line, args->message));
}

}  // namespace

void RouteGrpcLogs() { gpr_set_log_function(&LogGrpc); }

void SetGrpcLogsQuiet(bool value) { quiet.store(value, std::memory_order_relaxed); }

}  // namespace tlscache
