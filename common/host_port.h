// HOST:PORT addresses as the server's --listen flags take them.
#ifndef TLSCACHE_COMMON_HOST_PORT_H_
#define TLSCACHE_COMMON_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlscache {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal; "" for every interface
  int port = 0;      // 0..65535 (0: any free port)
};

// "HOST:PORT", "[IPV6]:PORT" or ":PORT"; InvalidArgument naming `address` otherwise.
absl::StatusOr<HostPort> SplitHostPort(absl::string_view address);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_HOST_PORT_H_
