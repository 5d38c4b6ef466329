// Conversions between absl::Status, the error type of all tlscache code, and grpc::Status,
// which only the gRPC edges (services, clients) see.
#ifndef TLSCACHE_COMMON_STATUS_UTIL_H_
#define TLSCACHE_COMMON_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tlscache {

// Keeps the code and the message; the codes of both libraries are the canonical gRPC codes.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_STATUS_UTIL_H_
