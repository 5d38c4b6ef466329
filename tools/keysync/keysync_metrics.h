// A keysync's counters, kept in a node_exporter textfile (common/textfile.h) when it has one.
#ifndef TLSCACHE_TOOLS_KEYSYNC_KEYSYNC_METRICS_H_
#define TLSCACHE_TOOLS_KEYSYNC_KEYSYNC_METRICS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/time/time.h"

namespace tlscache::keysync {

struct KeysyncMetrics {
  KeysyncMetrics(std::string file, std::string ring_namespace)
      : path(std::move(file)), ns(std::move(ring_namespace)) {}

  // Rewrites the file (no file: nothing); a failure is logged once until it succeeds again.
  void Write();
  // At a clean exit: the file goes, so that no stale copy is read as a live keysync.
  void Remove();

  const std::string path;
  const std::string ns;
  uint64_t version = 0;                          // the ring version the server holds
  absl::Time applied_at = absl::InfinitePast();  // when it took it
  uint64_t reloads = 0;                          // --on_change runs
  uint64_t runtime_updates = 0;                  // HAProxy `set ssl tls-key` calls
  uint64_t failures = 0;                         // rings not applied (retried)
  bool write_failing = false;
};

}  // namespace tlscache::keysync

#endif  // TLSCACHE_TOOLS_KEYSYNC_KEYSYNC_METRICS_H_
