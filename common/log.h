// Minimal leveled logging to stderr, one line per message: "<time> <LEVEL> <message>".
//
// Never pass secrets (session bytes, keys) to it: messages are plain text for operators.
// Thread-safe: each message is written with a single write(2).
#ifndef TLSCACHE_COMMON_LOG_H_
#define TLSCACHE_COMMON_LOG_H_

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

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

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_LOG_H_
