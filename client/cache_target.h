// The cache service's address as a gRPC channel target. The plugin's `addr` (and
// ClientOptions::addr) takes one of:
//
//   HOST:PORT              one name or address; a name resolves (DNS) to every address it
//                          has, so a headless Service's name reaches each ready replica
//   IP:PORT,IP:PORT,...    several replicas by address (all IPv4, or all [IPv6])
//   dns:///HOST:PORT       as HOST:PORT, said as a gRPC target
//   dns://SERVER/HOST:PORT HOST resolved by the DNS server SERVER (IP[:PORT])
//
// Calls and streams are spread over every address (round robin), and a name is resolved
// again whenever a connection ends, so replicas that come (a scale-up, after the service's
// --max_connection_age) and go (a rollout) are followed.
#ifndef TLSCACHE_CLIENT_CACHE_TARGET_H_
#define TLSCACHE_CLIENT_CACHE_TARGET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlscache::client {

struct CacheTarget {
  std::string uri;        // for grpc::CreateCustomChannel
  std::string authority;  // the name TLS checks the service's certificate against
  // A list's scheme ("ipv4:", "ipv6:") and addresses; empty for a name.
  std::string list_scheme;
  std::vector<std::string> addresses;
};

// The target's URI with a list's addresses rotated by `by` (a name's URI as it is). A
// process connects to the addresses in order and its first stream goes to the first to
// answer: rotating by the process ID spreads the streams of a server's workers over the
// replicas, where each would otherwise start at the first.
std::string RotatedUri(const CacheTarget& target, size_t by);

// The target, or InvalidArgument saying what is wrong with `addr` (without the setting's
// name: callers add it).
absl::StatusOr<CacheTarget> ParseCacheTarget(absl::string_view addr);

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_CACHE_TARGET_H_
