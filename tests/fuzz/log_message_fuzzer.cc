// Fuzzes the change-log message a replica reads from Redis pub/sub (server/store/redis/
// log_message.h): anyone who can publish on the store can send any bytes. A message that parses
// has a hex epoch within its bound, a first number of at least 1 that the changes cannot carry
// past 2^64, and at least one change, each with a session ID and a payload within their bounds;
// encoded again, it parses to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "common/validation.h"
#include "server/store/redis/log_message.h"

namespace {

constexpr size_t kMaxPayload = 1024;

bool Same(const tlscache::server::redis::LogMessage& a,
          const tlscache::server::redis::LogMessage& b) {
  if (a.epoch != b.epoch || a.first_seq != b.first_seq || a.entries.size() != b.entries.size()) {
    return false;
  }
  for (size_t i = 0; i < a.entries.size(); ++i) {
    if (a.entries[i].session_id != b.entries[i].session_id ||
        a.entries[i].payload.view() != b.entries[i].payload.view()) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlscache::server::redis;
  const absl::string_view message(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseLogMessage(message, kMaxPayload);
  if (!parsed.ok()) return 0;
  if (parsed->epoch.empty() || parsed->epoch.size() > kMaxEpochBytes || parsed->first_seq == 0 ||
      parsed->entries.empty() || parsed->first_seq > UINT64_MAX - parsed->entries.size()) {
    std::abort();
  }
  for (const tlscache::server::LogEntry& entry : parsed->entries) {
    if (entry.session_id.empty() || entry.session_id.size() > tlscache::kMaxSessionIdBytes ||
        entry.payload.empty() || entry.payload.size() > kMaxPayload) {
      std::abort();
    }
  }
  auto again = ParseLogMessage(EncodeLogMessage(parsed->epoch, parsed->first_seq, parsed->entries),
                               kMaxPayload);
  if (!again.ok() || !Same(*parsed, *again)) std::abort();
  return 0;
}
