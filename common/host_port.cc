#include "common/host_port.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tlscache {

HostPortRules PeerRules(int default_port) {
  HostPortRules rules;
  rules.host_required = true;
  rules.default_port = default_port;
  rules.min_port = 1;
  return rules;
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, const HostPortRules& rules) {
  absl::string_view host = address;
  absl::string_view port;
  bool has_port = false;
  const bool bracketed = absl::StartsWith(address, "[");
  if (bracketed) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("unterminated '['");
    host = address.substr(1, close - 1);
    const absl::string_view after = address.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return absl::InvalidArgumentError("junk after ']'");
      port = after.substr(1);
      has_port = true;
    }
    if (host.empty()) return absl::InvalidArgumentError("no host in '[]'");
  } else if (const size_t colon = address.rfind(':'); colon != absl::string_view::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    has_port = true;
    // An unbracketed IPv6 literal ("::1:80") would be ambiguous.
    if (absl::StrContains(host, ':') && !rules.bare_ipv6) {
      return absl::InvalidArgumentError("an IPv6 address goes in brackets: [IPV6]:PORT");
    }
  }
  for (char c : host) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c)) || c == '/' || c == ',' || c == '@' ||
        c == '[' || c == ']' || (c == ':' && !bracketed && !rules.bare_ipv6)) {
      return absl::InvalidArgumentError("the host has a character no host name has");
    }
  }
  if (host.empty() && rules.host_required) return absl::InvalidArgumentError("no host");
  HostPort parsed;
  parsed.host = std::string(host);
  if (!has_port) {
    if (rules.default_port < 0) return absl::InvalidArgumentError("no port");
    parsed.port = rules.default_port;
    return parsed;
  }
  if (!absl::SimpleAtoi(port, &parsed.port) || parsed.port < rules.min_port ||
      parsed.port > 65535 || !absl::ascii_isdigit(static_cast<unsigned char>(port.front()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("port '", port, "' is not within ", rules.min_port, "..65535"));
  }
  return parsed;
}

absl::StatusOr<HostPort> SplitHostPort(absl::string_view address) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(address);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(address, ": expected HOST:PORT (", parsed.status().message(), ")"));
  }
  return parsed;
}

}  // namespace tlscache
