// PluginConfig: the plugin's settings, from a "key=value;key=value" string (tlscache_attach)
// or from TLSCACHE_<KEY> environment variables (the preload library). Both accept the same
// keys; an unknown key or a bad value is an error that names it.
//
//   addr        the cache service (required): HOST:PORT (a name reaches every address it
//               resolves to, as a headless Service's does), IP:PORT,IP:PORT,... (several
//               replicas), or dns://[SERVER]/HOST:PORT; calls are spread round robin
//               (client/cache_target.h)
//   namespace   [A-Za-z0-9._-]{1,64}, default "default"
//   timeout_ms  lookup deadline, 1..1000, default 20
//   connect_timeout_ms  how long a process's first handshakes may wait, once, for its
//               connection to the cache (and with tickets=farm for the key ring), 0..10000,
//               default 500
//   sid_ctx     farm-wide session ID context, 1..32 bytes (default: the application's)
//   tickets     off: TLS 1.3 issues stateful tickets kept in the cache (the default of
//               tlscache_attach); farm: stateless tickets under the farm's key ring. Unset
//               in the environment: the application's own choice stays.
//   near_cache_mb  the bound of each process's near cache (the sessions the farm pushes to
//               it, client/session_follower.h), 0..4096 MiB, default 16; 0 turns the near
//               cache and the Follow stream off (every lookup and store a unary call)
//   ca_file, cert_file, key_file   TLS / mTLS to the cache service
//   stats_interval  seconds between one-line counter summaries on stderr, 0 (default): none;
//               used by the preload library (tlscache_stats() serves applications)
//   metrics_file  the preload library keeps each process's counters in a node_exporter
//               textfile beside it: /DIR/NAME.prom becomes /DIR/NAME.<pid>.prom, rewritten
//               every 5 seconds, removed at a clean exit
#ifndef TLSCACHE_PLUGINS_OPENSSL_CONFIG_H_
#define TLSCACHE_PLUGINS_OPENSSL_CONFIG_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tlscache::openssl {

enum class TicketMode { kApplication, kOff, kFarm };

struct PluginConfig {
  std::string addr;
  std::string ns = "default";
  absl::Duration timeout = absl::Milliseconds(20);
  absl::Duration connect_timeout = absl::Milliseconds(500);
  std::string sid_ctx;  // empty: leave the application's
  TicketMode tickets = TicketMode::kOff;
  size_t near_cache_bytes = size_t{16} << 20;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  absl::Duration stats_interval = absl::ZeroDuration();
  std::string metrics_file;
};

absl::StatusOr<PluginConfig> ParsePluginConfig(absl::string_view text);

// From TLSCACHE_ADDR, TLSCACHE_NAMESPACE, ... in `environ` (a NULL-terminated array of
// "NAME=value"). NotFound when TLSCACHE_ADDR is not set; InvalidArgument naming the variable
// for a bad value or an unknown TLSCACHE_ variable.
absl::StatusOr<PluginConfig> PluginConfigFromEnvironment(char** environ);

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_CONFIG_H_
