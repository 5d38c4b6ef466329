#include "server/store/redis/cluster_slots.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/host_port.h"

namespace tlscache::server::redis {
namespace {

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (const char c : data) {
    crc ^= static_cast<uint16_t>(static_cast<uint8_t>(c)) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

absl::Status Malformed(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("redis cluster: CLUSTER SLOTS reply: ", why));
}

}  // namespace

int KeySlot(absl::string_view key) {
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) % kClusterSlots;
}

std::optional<Redirect> ParseRedirect(absl::string_view error) {
  const std::vector<absl::string_view> parts = absl::StrSplit(error, ' ');
  if (parts.size() != 3 || (parts[0] != "MOVED" && parts[0] != "ASK")) return std::nullopt;
  Redirect redirect;
  redirect.ask = parts[0] == "ASK";
  HostPortRules rules = PeerRules();
  rules.bare_ipv6 = true;
  absl::StatusOr<HostPort> to = ParseHostPort(parts[2], rules);
  if (!absl::SimpleAtoi(parts[1], &redirect.slot) || redirect.slot < 0 ||
      redirect.slot >= kClusterSlots || !to.ok()) {
    return std::nullopt;
  }
  redirect.to.host = std::move(to->host);
  redirect.to.port = to->port;
  return redirect;
}

absl::StatusOr<std::vector<SlotRange>> ParseClusterSlots(const redisReply& reply,
                                                         absl::string_view fallback_host) {
  if (reply.type != REDIS_REPLY_ARRAY) return Malformed("not an array");
  std::vector<SlotRange> ranges;
  for (size_t i = 0; i < reply.elements; ++i) {
    const redisReply& range = *reply.element[i];
    if (range.type != REDIS_REPLY_ARRAY || range.elements < 3 ||
        range.element[0]->type != REDIS_REPLY_INTEGER ||
        range.element[1]->type != REDIS_REPLY_INTEGER) {
      return Malformed("a range is not [first, last, master, ...]");
    }
    SlotRange parsed;
    const long long first = range.element[0]->integer;
    const long long last = range.element[1]->integer;
    if (first < 0 || last < first || last >= kClusterSlots) {
      return Malformed(absl::StrCat("slots ", first, "..", last, " are out of range"));
    }
    parsed.first = static_cast<int>(first);
    parsed.last = static_cast<int>(last);
    const redisReply& master = *range.element[2];
    if (master.type != REDIS_REPLY_ARRAY || master.elements < 2 ||
        master.element[0]->type != REDIS_REPLY_STRING ||
        master.element[1]->type != REDIS_REPLY_INTEGER || master.element[1]->integer < 1 ||
        master.element[1]->integer > 65535 || master.element[0]->len > 255) {
      return Malformed("a master is not [host, port, ...]");
    }
    parsed.master.host = std::string(master.element[0]->str, master.element[0]->len);
    if (parsed.master.host.empty() || parsed.master.host == "?") {
      parsed.master.host = std::string(fallback_host);
    }
    parsed.master.port = static_cast<int>(master.element[1]->integer);
    ranges.push_back(std::move(parsed));
  }
  return ranges;
}

}  // namespace tlscache::server::redis
