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
  JsonObject json;
  json.Add("contexts", stats.contexts)
      .Add("sessions", sessions)
      .Add("lookups", lookups)
      .Add("stores", stores)
      .Add("near_cache", near)
      .Add("push", push)
      .Add("tickets", tickets)
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
      "withdrawn by checks; %d farm tickets issued; breaker %s",
      getpid(), stats.contexts, p.resumed, p.rejected, p.stored, c.hits, c.misses, c.errors,
      c.timeouts, c.skipped, c.busy_timeouts, c.stores, c.store_failures, c.queue_drops,
      c.ack_timeouts, c.near_hits, c.near_entries, c.near_bytes, c.leading, c.pushed, c.gaps,
      c.withdrawn, p.tickets_issued,
      c.breaker == client::BreakerState::kClosed ? "closed" : "open");
}

}  // namespace tlscache::openssl
