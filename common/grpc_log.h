// gRPC's own log lines, routed through tlscache's log (common/log.h) so that a process
// writes one format. gRPC still filters by GRPC_VERBOSITY (ERROR by default).
#ifndef TLSCACHE_COMMON_GRPC_LOG_H_
#define TLSCACHE_COMMON_GRPC_LOG_H_

namespace tlscache {

void RouteGrpcLogs();

// While quiet, gRPC's lines are dropped: for steps whose failures tlscache reports itself
// (binding the listening port), so that an operator reads one clear line, not two.
void SetGrpcLogsQuiet(bool quiet);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_GRPC_LOG_H_
