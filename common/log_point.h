// LogPoint: a place in a namespace's change log (the service's FollowResponse.position), and
// the one rule by which the service and its followers decide whether numbered changes go on
// from there or leave a gap.
#ifndef TLSCACHE_COMMON_LOG_POINT_H_
#define TLSCACHE_COMMON_LOG_POINT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tlscache {

// After change `seq` of log `log_id`; seq 0 with no log ID: before a log that had not begun.
struct LogPoint {
  std::string log_id;
  uint64_t seq = 0;

  bool operator==(const LogPoint& other) const {
    return log_id == other.log_id && seq == other.seq;
  }
};

// Whether changes of `log_id` numbered from `first` go on from `at`: nothing between is
// missing (they may repeat some before it).
inline bool ContinuesFrom(const LogPoint& at, absl::string_view log_id, uint64_t first) {
  if (at.seq == 0 && at.log_id.empty()) return first == 1;  // the log had not begun
  return at.log_id == log_id && first <= at.seq + 1;
}

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_LOG_POINT_H_
