#include "client/cache_target.h"

#include <arpa/inet.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/host_port.h"

namespace tlscache::client {
namespace {

enum class Family { kName, kIpv4, kIpv6 };

Family FamilyOf(const std::string& host) {
  unsigned char buffer[16];
  if (inet_pton(AF_INET, host.c_str(), buffer) == 1) return Family::kIpv4;
  if (inet_pton(AF_INET6, host.c_str(), buffer) == 1) return Family::kIpv6;
  return Family::kName;
}

std::string Bracketed(const HostPort& address) {
  return FamilyOf(address.host) == Family::kIpv6 ? absl::StrCat("[", address.host, "]")
                                                 : address.host;
}

absl::StatusOr<HostPort> Peer(absl::string_view address) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(address, PeerRules());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not HOST:PORT: ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace

absl::StatusOr<CacheTarget> ParseCacheTarget(absl::string_view addr) {
  if (addr.empty()) return absl::InvalidArgumentError("empty (HOST:PORT)");
  if (absl::ConsumePrefix(&addr, "dns:")) {
    const bool authority = absl::ConsumePrefix(&addr, "//");
    const size_t slash = addr.find('/');  // after the DNS server, if any
    if (!authority || slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "a dns: target is dns:///HOST:PORT or dns://SERVER/HOST:PORT");
    }
    const absl::string_view server = addr.substr(0, slash);
    if (!server.empty()) {
      absl::StatusOr<HostPort> dns = ParseHostPort(server, PeerRules(/*default_port=*/53));
      if (!dns.ok() || FamilyOf(dns->host) == Family::kName) {
        return absl::InvalidArgumentError(
            absl::StrCat("DNS server '", server, "' is not IP[:PORT]"));
      }
    }
    absl::StatusOr<HostPort> name = Peer(addr.substr(slash + 1));
    if (!name.ok()) return name.status();
    CacheTarget target;
    target.uri = absl::StrCat("dns://", addr);
    target.authority = absl::StrCat(Bracketed(*name), ":", name->port);
    return target;
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(addr, ',');
  std::vector<std::string> addresses;
  Family family = Family::kName;
  for (absl::string_view part : parts) {
    absl::StatusOr<HostPort> address = Peer(part);
    if (!address.ok()) return address.status();
    const Family this_family = FamilyOf(address->host);
    if (parts.size() > 1) {
      if (this_family == Family::kName) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", part, "': a list of replicas takes IP addresses; give replicas by name as "
            "one DNS name that resolves to each (a headless Service)"));
      }
      if (!addresses.empty() && this_family != family) {
        return absl::InvalidArgumentError("a list of replicas is all IPv4 or all IPv6");
      }
    }
    family = this_family;
    addresses.push_back(absl::StrCat(Bracketed(*address), ":", address->port));
  }
  CacheTarget target;
  if (addresses.size() == 1) {
    target.uri = absl::StrCat("dns:///", addresses[0]);
    target.authority = addresses[0];
    return target;
  }
  target.list_scheme = family == Family::kIpv4 ? "ipv4:" : "ipv6:";
  target.authority = addresses[0];
  target.addresses = std::move(addresses);
  target.uri = RotatedUri(target, 0);
  return target;
}

std::string RotatedUri(const CacheTarget& target, size_t by) {
  if (target.addresses.empty()) return target.uri;
  std::vector<std::string> rotated = target.addresses;
  std::rotate(rotated.begin(), rotated.begin() + by % rotated.size(), rotated.end());
  return absl::StrCat(target.list_scheme, absl::StrJoin(rotated, ","));
}

}  // namespace tlscache::client
