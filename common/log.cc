#include "common/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tlscache {

void LogMessage(LogLevel level, absl::string_view message) {
  const char* name = "INFO";
  if (level == LogLevel::kWarning) name = "WARNING";
  if (level == LogLevel::kError) name = "ERROR";
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   name, " ", message, "\n");
  // A short write to stderr loses a log line at worst; there is nothing better to do with it.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

bool LogLimiter::Allow() {
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_ns_.load(std::memory_order_relaxed);
  return now - last >= interval_ns_ && last_ns_.compare_exchange_strong(last, now);
}

}  // namespace tlscache
