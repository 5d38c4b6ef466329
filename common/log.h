// Minimal leveled logging to stderr, one line per message: "<time> <LEVEL> <message>".
//
// Never pass secrets (session bytes, keys) to it: messages are plain text for operators.
// Thread-safe: each message is written with a single write(2).
#ifndef TLSCACHE_COMMON_LOG_H_
#define TLSCACHE_COMMON_LOG_H_

#include <atomic>
#include <cstdint>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlscache {

enum class LogLevel { kInfo, kWarning, kError };

void LogMessage(LogLevel level, absl::string_view message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogMessage(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogMessage(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogMessage(LogLevel::kError, absl::StrFormat(format, args...));
}

// Lets one message through per `interval`, for conditions that can repeat on every call (a
// cache that refuses us, values that do not open): Allow() is true for the first caller after
// the interval has passed. Thread-safe and lock-free.
class LogLimiter {
 public:
  explicit LogLimiter(absl::Duration interval) : interval_ns_(absl::ToInt64Nanoseconds(interval)) {}
  bool Allow();

 private:
  const int64_t interval_ns_;
  std::atomic<int64_t> last_ns_{INT64_MIN / 2};
};

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_LOG_H_
