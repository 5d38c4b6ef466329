// The plugin's counters as values: PluginStats (what one context's callbacks counted) with
// `+=`, PluginCounters (the atomics the callbacks bump), and the one writer of the stats a
// process reports (tlscache_stats's JSON object, the preload's log line), so that a counter
// counted anywhere is reported everywhere.
//
// Thread-safety: the structs are values; PluginCounters is thread-safe.
#ifndef TLSCACHE_PLUGINS_OPENSSL_PLUGIN_STATS_H_
#define TLSCACHE_PLUGINS_OPENSSL_PLUGIN_STATS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "client/client_stats.h"
#include "common/textfile.h"

namespace tlscache::openssl {

struct PluginStats {
  uint64_t stored = 0;    // sessions queued for the farm
  uint64_t skipped = 0;   // sessions not stored (stateless TLS 1.3, no ID, too large)
  uint64_t resumed = 0;   // sessions the farm returned that passed the checks
  uint64_t rejected = 0;  // sessions the farm returned that failed them (garbage, wrong ID)
  uint64_t deleted = 0;   // removals sent to the farm
  uint64_t tickets_issued = 0;  // tickets encrypted under the farm's key ring

  PluginStats& operator+=(const PluginStats& other);
};

struct PluginCounters {
  std::atomic<uint64_t> stored{0}, skipped{0}, resumed{0}, rejected{0}, deleted{0},
      tickets_issued{0};

  PluginStats Read() const;
};

// What a process reports: its contexts' counters, and their clients' (each client once), and
// the handshakes OpenSSL counted on those contexts (full and resumed, by any means: the
// application's cache, tlscache, tickets).
struct ProcessStats {
  int contexts = 0;
  PluginStats plugin;
  client::ClientStats client;
  uint64_t handshakes = 0;          // SSL_CTX_sess_accept_good
  uint64_t handshakes_resumed = 0;  // SSL_CTX_sess_hits
};

// The JSON object of tlscache_stats (plugins/openssl/include/tlscache/openssl.h).
std::string StatsJson(const ProcessStats& stats);
// One line for a log: "pid N: ...". bench/run_bench.py and the farm tests read it: its fields
// keep their order, new ones go after.
std::string StatsLine(const ProcessStats& stats);
// The samples of a node_exporter textfile (common/textfile.h): tlscache_plugin_*.
std::vector<TextfileSample> StatsTextfile(const ProcessStats& stats);

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_PLUGIN_STATS_H_
