#include "tools/keysync/keysync_metrics.h"

#include <unistd.h>

#include "common/log.h"
#include "common/textfile.h"

namespace tlscache::keysync {

void KeysyncMetrics::Write() {
  if (path.empty()) return;
  const double applied = applied_at == absl::InfinitePast()
                             ? 0
                             : absl::ToDoubleSeconds(applied_at - absl::UnixEpoch());
  absl::Status s = WriteTextfile(path, {{"namespace", ns}},
                                 {{"tlscache_keysync_ring_version",
                                   "the ticket key ring version the server holds",
                                   false,
                                   static_cast<double>(version),
                                   {}},
                                  {"tlscache_keysync_applied_seconds",
                                   "when the server took that ring (Unix seconds)",
                                   false,
                                   applied,
                                   {}},
                                  {"tlscache_keysync_reloads_total",
                                   "--on_change runs (server reloads)",
                                   true,
                                   static_cast<double>(reloads),
                                   {}},
                                  {"tlscache_keysync_runtime_updates_total",
                                   "keys set through HAProxy's runtime API",
                                   true,
                                   static_cast<double>(runtime_updates),
                                   {}},
                                  {"tlscache_keysync_failures_total",
                                   "rings not applied (each retried)",
                                   true,
                                   static_cast<double>(failures),
                                   {}}});
  if (!s.ok() && !write_failing) LogWarning("keysync: metrics file: %s", s.message());
  write_failing = !s.ok();
}

void KeysyncMetrics::Remove() {
  if (!path.empty()) unlink(path.c_str());
}

}  // namespace tlscache::keysync
