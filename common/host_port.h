// HOST:PORT addresses, parsed by one function wherever they enter: the server's --listen
// flags, the store URLs (redis://, redis-sentinel://, redis-cluster://), Redis Cluster
// redirections, tlscache-tls-server's --listen and the plugin's `addr`.
//
//   HOST:PORT       a name or an IPv4 address
//   [IPV6]:PORT     an IPv6 literal, in brackets
//   :PORT           every interface (only where HostPortRules::host_required is false)
//   HOST, [IPV6]    the default port (only where HostPortRules::default_port is set)
#ifndef TLSCACHE_COMMON_HOST_PORT_H_
#define TLSCACHE_COMMON_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlscache {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal; "" for every interface
  int port = 0;      // 0..65535 (0: any free port, where min_port allows it)
};

struct HostPortRules {
  bool host_required = false;
  int default_port = -1;  // the port of an address without one; -1: the port is required
  int min_port = 0;       // 1 where the address is a peer to connect to
  // "::1:7001" as Redis writes its redirections: the last colon ends the host. Elsewhere an
  // IPv6 literal goes in brackets.
  bool bare_ipv6 = false;
};

// The rules of a peer to connect to: a host, a port in 1..65535, or else `default_port` (-1:
// the port is required).
HostPortRules PeerRules(int default_port = -1);

// The address, or InvalidArgument saying what is wrong with it ("no host", "port '70000' is
// not within 1..65535", ...), without the address itself: callers name the setting.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, const HostPortRules& rules = {});

// ParseHostPort with the default rules (a listening address), the error naming `address`:
// "ADDRESS: expected HOST:PORT (why)".
absl::StatusOr<HostPort> SplitHostPort(absl::string_view address);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_HOST_PORT_H_
