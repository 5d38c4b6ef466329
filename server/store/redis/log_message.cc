#include "server/store/redis/log_message.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/validation.h"

namespace tlscache::server::redis {
namespace {

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("change log message: ", why));
}

// Takes "LENGTH:BYTES," off the front of `in`, at most `max` bytes.
absl::StatusOr<absl::string_view> TakeNetstring(absl::string_view* in, size_t max) {
  const size_t colon = in->find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > 20) return Bad("no length");
  size_t length = 0;
  const absl::string_view digits = in->substr(0, colon);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return Bad("a length not in decimal");
  }
  if (!absl::SimpleAtoi(digits, &length) || length > max) return Bad("a length out of bounds");
  if (in->size() < colon + 1 + length + 1 || (*in)[colon + 1 + length] != ',') {
    return Bad("a value cut short");
  }
  const absl::string_view value = in->substr(colon + 1, length);
  in->remove_prefix(colon + 1 + length + 1);
  return value;
}

}  // namespace

absl::StatusOr<LogMessage> ParseLogMessage(absl::string_view message, size_t max_payload_bytes) {
  if (!absl::ConsumePrefix(&message, kLogMessageMagic)) return Bad("not a v1 message");
  LogMessage parsed;
  const size_t bar = message.find('|');
  if (bar == absl::string_view::npos || bar == 0 || bar > kMaxEpochBytes) return Bad("no epoch");
  for (char c : message.substr(0, bar)) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return Bad("an epoch not in hex");
  }
  parsed.epoch = std::string(message.substr(0, bar));
  message.remove_prefix(bar + 1);
  const size_t seq_end = message.find('|');
  if (seq_end == absl::string_view::npos || seq_end == 0 || seq_end > 20) return Bad("no number");
  for (char c : message.substr(0, seq_end)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return Bad("a number not in decimal");
  }
  if (!absl::SimpleAtoi(message.substr(0, seq_end), &parsed.first_seq) || parsed.first_seq == 0) {
    return Bad("a number out of range");
  }
  message.remove_prefix(seq_end + 1);
  while (!message.empty()) {
    absl::StatusOr<absl::string_view> id = TakeNetstring(&message, kMaxSessionIdBytes);
    if (!id.ok()) return id.status();
    absl::StatusOr<absl::string_view> payload = TakeNetstring(&message, max_payload_bytes);
    if (!payload.ok()) return payload.status();
    if (id->empty() || payload->empty()) return Bad("an empty session ID or payload");
    parsed.entries.push_back(LogEntry{std::string(*id), SecretBytes(*payload)});
  }
  if (parsed.entries.empty()) return Bad("no change");
  if (parsed.first_seq > UINT64_MAX - parsed.entries.size()) return Bad("numbers out of range");
  return parsed;
}

std::string EncodeLogMessage(absl::string_view epoch, uint64_t first_seq,
                             const std::vector<LogEntry>& entries) {
  std::string out = absl::StrCat(kLogMessageMagic, epoch, "|", first_seq, "|");
  for (const LogEntry& entry : entries) {
    absl::StrAppend(&out, entry.session_id.size(), ":", entry.session_id, ",",
                    entry.payload.size(), ":", entry.payload.view(), ",");
  }
  return out;
}

}  // namespace tlscache::server::redis
