#include "plugins/openssl/plugin_stats.h"

#include <unistd.h>

#include "absl/strings/str_format.h"
#include "common/json_object.h"

namespace tlscache::openssl {

PluginStats& PluginStats::operator+=(const PluginStats& o) {
  stored += o.stored;
  skipped += o.skipped;
  resumed += o.resumed;
  rejected += o.rejected;
  deleted += o.deleted;
  tickets_issued += o.tickets_issued;
  return *this;
}

PluginStats PluginCounters::Read() const {
  PluginStats stats;
  stats.stored = stored.load(std::memory_order_relaxed);
  stats.skipped = skipped.load(std::memory_order_relaxed);
  stats.resumed = resumed.load(std::memory_order_relaxed);
  stats.rejected = rejected.load(std::memory_order_relaxed);
  stats.deleted = deleted.load(std::memory_order_relaxed);
  stats.tickets_issued = tickets_issued.load(std::memory_order_relaxed);
  return stats;
}

std::string StatsJson(const ProcessStats& stats) {
  const PluginStats& p = stats.plugin;
  const client::ClientStats& c = stats.client;
  JsonObject sessions, lookups, stores, near, push, tickets;
  sessions.Add("stored", p.stored)
      .Add("skipped", p.skipped)
      .Add("resumed", p.resumed)
      .Add("rejected", p.rejected)
      .Add("deleted", p.deleted);
  lookups.Add("hits", c.hits)
      .Add("misses", c.misses)
      .Add("errors", c.errors)
      .Add("timeouts", c.timeouts)
      .Add("busy_timeouts", c.busy_timeouts)
      .Add("skipped", c.skipped);
  stores.Add("sent", c.stores)
      .Add("failed", c.store_failures)
      .Add("dropped", c.queue_drops)
      .Add("late", c.ack_timeouts)
      .Add("resent", c.resent);
  near.Add("hits", c.near_hits)
      .Add("entries", c.near_entries)
      .Add("bytes", c.near_bytes)
      .Add("evictions", c.near_evictions)
      .Add("repairs", c.near_repairs);
  push.Add("follows", c.leading)
      .Add("streams_up", c.streams_up)
      .Add("streams", c.streams)
      .Add("batches", c.batches)
      .Add("received", c.pushed)
      .Add("gaps", c.gaps)
      .Add("withdrawn", c.withdrawn)
      .Add("lag_p50_us", absl::ToInt64Microseconds(c.push_lag_p50))
      .Add("lag_p99_us", absl::ToInt64Microseconds(c.push_lag_p99));
  tickets.Add("issued", p.tickets_issued);
  JsonObject handshakes;
  handshakes.Add("accepted", stats.handshakes).Add("resumed", stats.handshakes_resumed);
  JsonObject json;
  json.Add("contexts", stats.contexts)
      .Add("sessions", sessions)
      .Add("lookups", lookups)
      .Add("stores", stores)
      .Add("near_cache", near)
      .Add("push", push)
      .Add("tickets", tickets)
      .Add("handshakes", handshakes)
      .Add("breaker", c.breaker == client::BreakerState::kClosed ? "closed" : "open");
  return json.ToString();
}

std::string StatsLine(const ProcessStats& stats) {
  const PluginStats& p = stats.plugin;
  const client::ClientStats& c = stats.client;
  return absl::StrFormat(
      "pid %d: %d contexts; sessions resumed %d, rejected %d, stored %d; lookups %d hits, %d "
      "misses, %d errors, %d timeouts, %d skipped, %d timeouts on a busy node; stores %d "
      "sent, %d failed, %d dropped, %d acknowledged late; near cache %d hits, %d entries, %d "
      "bytes (the node's); follows for its node: %d namespaces, %d pushed, %d gaps, %d "
      "withdrawn by checks; %d farm tickets issued; handshakes %d, %d resumed; breaker %s",
      getpid(), stats.contexts, p.resumed, p.rejected, p.stored, c.hits, c.misses, c.errors,
      c.timeouts, c.skipped, c.busy_timeouts, c.stores, c.store_failures, c.queue_drops,
      c.ack_timeouts, c.near_hits, c.near_entries, c.near_bytes, c.leading, c.pushed, c.gaps,
      c.withdrawn, p.tickets_issued, stats.handshakes, stats.handshakes_resumed,
      c.breaker == client::BreakerState::kClosed ? "closed" : "open");
}

std::vector<TextfileSample> StatsTextfile(const ProcessStats& stats) {
  const PluginStats& p = stats.plugin;
  const client::ClientStats& c = stats.client;
  auto count = [](uint64_t v) { return static_cast<double>(v); };
  auto labelled = [&](const char* name, const char* help, const char* label,
                      std::vector<std::pair<const char*, uint64_t>> values) {
    std::vector<TextfileSample> samples;
    for (const auto& [value, n] : values) {
      samples.push_back({name, help, true, count(n), {{label, value}}});
    }
    return samples;
  };
  std::vector<TextfileSample> out = {
      {"tlscache_plugin_contexts", "SSL_CTXs tlscache is attached to", false,
       count(static_cast<uint64_t>(stats.contexts)), {}},
      {"tlscache_plugin_handshakes_total", "handshakes completed on those contexts", true,
       count(stats.handshakes), {}},
      {"tlscache_plugin_handshakes_resumed_total",
       "of them, resumed (the application's cache, tlscache or a ticket)", true,
       count(stats.handshakes_resumed), {}},
      {"tlscache_plugin_tickets_issued_total", "tickets encrypted under the farm's key ring", true,
       count(p.tickets_issued), {}},
      {"tlscache_plugin_push_received_total", "sessions the push stream brought", true,
       count(c.pushed), {}},
      {"tlscache_plugin_push_gaps_total", "gaps in the push stream (each a resynchronisation)",
       true, count(c.gaps), {}},
      {"tlscache_plugin_push_lag_p99_seconds", "push lag, 99th percentile", false,
       absl::ToDoubleSeconds(c.push_lag_p99), {}},
      {"tlscache_plugin_breaker_open", "1 while the circuit breaker to the service is open", false,
       c.breaker == client::BreakerState::kClosed ? 0.0 : 1.0, {}},
  };
  for (auto&& more :
       {labelled("tlscache_plugin_sessions_total", "sessions by what the plugin did with them",
                 "result",
                 {{"stored", p.stored},
                  {"skipped", p.skipped},
                  {"resumed", p.resumed},
                  {"rejected", p.rejected},
                  {"deleted", p.deleted}}),
        labelled("tlscache_plugin_lookups_total", "lookups by outcome", "outcome",
                 {{"hit", c.hits},
                  {"near_hit", c.near_hits},
                  {"miss", c.misses},
                  {"error", c.errors},
                  {"timeout", c.timeouts},
                  {"busy_timeout", c.busy_timeouts},
                  {"skipped", c.skipped}}),
        labelled("tlscache_plugin_stores_total", "stores by outcome", "result",
                 {{"sent", c.stores},
                  {"failed", c.store_failures},
                  {"dropped", c.queue_drops},
                  {"late", c.ack_timeouts},
                  {"resent", c.resent}})}) {
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

}  // namespace tlscache::openssl
