// The plugin's counters as values: added up with +=, and every one of them in the JSON object
// of tlscache_stats and the stats line, under its documented name.
#include "plugins/openssl/plugin_stats.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache::openssl {
namespace {

using ::testing::HasSubstr;

// Every counter a different value, so that one reported in another's place shows.
ProcessStats Distinct() {
  ProcessStats stats;
  stats.contexts = 3;
  stats.plugin = {101, 102, 103, 104, 105, 106};
  client::ClientStats& c = stats.client;
  c.hits = 201;
  c.misses = 202;
  c.errors = 203;
  c.timeouts = 204;
  c.busy_timeouts = 205;
  c.skipped = 206;
  c.stores = 207;
  c.store_failures = 208;
  c.queue_drops = 209;
  c.ack_timeouts = 210;
  c.resent = 211;
  c.near_hits = 212;
  c.near_entries = 213;
  c.near_bytes = 214;
  c.near_evictions = 215;
  c.near_repairs = 216;
  c.leading = 217;
  c.streams_up = 218;
  c.streams = 219;
  c.batches = 220;
  c.pushed = 221;
  c.gaps = 222;
  c.withdrawn = 223;
  c.push_lag_p50 = absl::Microseconds(224);
  c.push_lag_p99 = absl::Microseconds(225);
  stats.handshakes = 301;
  stats.handshakes_resumed = 302;
  return stats;
}

TEST(PluginStatsTest, EveryCounterIsInTheJsonUnderItsName) {
  const std::string json = StatsJson(Distinct());
  EXPECT_THAT(json, HasSubstr("{\"contexts\":3,\"sessions\":{\"stored\":101,\"skipped\":102,"
                              "\"resumed\":103,\"rejected\":104,\"deleted\":105}"));
  EXPECT_THAT(json, HasSubstr("\"lookups\":{\"hits\":201,\"misses\":202,\"errors\":203,"
                              "\"timeouts\":204,\"busy_timeouts\":205,\"skipped\":206}"));
  EXPECT_THAT(json, HasSubstr("\"stores\":{\"sent\":207,\"failed\":208,\"dropped\":209,"
                              "\"late\":210,\"resent\":211}"));
  EXPECT_THAT(json, HasSubstr("\"near_cache\":{\"hits\":212,\"entries\":213,\"bytes\":214,"
                              "\"evictions\":215,\"repairs\":216}"));
  EXPECT_THAT(json, HasSubstr("\"push\":{\"follows\":217,\"streams_up\":218,\"streams\":219,"
                              "\"batches\":220,\"received\":221,\"gaps\":222,\"withdrawn\":223,"
                              "\"lag_p50_us\":224,\"lag_p99_us\":225}"));
  EXPECT_THAT(json, HasSubstr("\"tickets\":{\"issued\":106}"));
  EXPECT_THAT(json, HasSubstr("\"handshakes\":{\"accepted\":301,\"resumed\":302}"));
  EXPECT_THAT(json, HasSubstr("\"breaker\":\"closed\"}"));
}

TEST(PluginStatsTest, TheLineKeepsItsFieldsInOrderWithTheNewOnesAfter) {
  const std::string line = StatsLine(Distinct());
  // bench/run_bench.py and the farm tests read these in this order (tlsfarm.preload_stats).
  EXPECT_THAT(line, HasSubstr(": 3 contexts; sessions resumed 103, rejected 104, stored 101; "
                              "lookups 201 hits, 202 misses, 203 errors, 204 timeouts, "
                              "206 skipped, 205 timeouts on a busy node;"));
  EXPECT_THAT(line, HasSubstr("near cache 212 hits"));
  EXPECT_THAT(line, HasSubstr("106 farm tickets issued; handshakes 301, 302 resumed; breaker"));
}

TEST(PluginStatsTest, EveryCounterIsInTheTextfileUnderItsNameAndLabel) {
  const std::string text = RenderTextfile({{"pid", "9"}}, StatsTextfile(Distinct()),
                                          absl::FromUnixSeconds(1));
  for (const char* sample : {
           "tlscache_plugin_contexts{pid=\"9\"} 3\n",
           "tlscache_plugin_handshakes_total{pid=\"9\"} 301\n",
           "tlscache_plugin_handshakes_resumed_total{pid=\"9\"} 302\n",
           "tlscache_plugin_tickets_issued_total{pid=\"9\"} 106\n",
           "tlscache_plugin_push_received_total{pid=\"9\"} 221\n",
           "tlscache_plugin_push_gaps_total{pid=\"9\"} 222\n",
           "tlscache_plugin_push_lag_p99_seconds{pid=\"9\"} 0.000224999",  // 225 us, as %.17g
           "tlscache_plugin_breaker_open{pid=\"9\"} 0\n",
           "tlscache_plugin_sessions_total{pid=\"9\",result=\"stored\"} 101\n",
           "tlscache_plugin_sessions_total{pid=\"9\",result=\"skipped\"} 102\n",
           "tlscache_plugin_sessions_total{pid=\"9\",result=\"resumed\"} 103\n",
           "tlscache_plugin_sessions_total{pid=\"9\",result=\"rejected\"} 104\n",
           "tlscache_plugin_sessions_total{pid=\"9\",result=\"deleted\"} 105\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"hit\"} 201\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"near_hit\"} 212\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"miss\"} 202\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"error\"} 203\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"timeout\"} 204\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"busy_timeout\"} 205\n",
           "tlscache_plugin_lookups_total{pid=\"9\",outcome=\"skipped\"} 206\n",
           "tlscache_plugin_stores_total{pid=\"9\",result=\"sent\"} 207\n",
           "tlscache_plugin_stores_total{pid=\"9\",result=\"failed\"} 208\n",
           "tlscache_plugin_stores_total{pid=\"9\",result=\"dropped\"} 209\n",
           "tlscache_plugin_stores_total{pid=\"9\",result=\"late\"} 210\n",
           "tlscache_plugin_stores_total{pid=\"9\",result=\"resent\"} 211\n"}) {
    EXPECT_THAT(text, HasSubstr(sample));
  }
}

TEST(PluginStatsTest, CountersAddUpAndTheWorstBreakerWins) {
  ProcessStats a = Distinct();
  a.plugin += Distinct().plugin;
  EXPECT_EQ(a.plugin.stored, 202u);
  EXPECT_EQ(a.plugin.tickets_issued, 212u);
  client::ClientStats open = Distinct().client;
  open.breaker = client::BreakerState::kOpen;
  client::ClientStats sum = Distinct().client;
  sum += open;
  EXPECT_EQ(sum.busy_timeouts, 410u);
  EXPECT_EQ(sum.batches, 440u);
  EXPECT_EQ(sum.push_lag_p99, absl::Microseconds(225)) << "the slowest's, not a sum";
  EXPECT_EQ(sum.breaker, client::BreakerState::kOpen);
  ProcessStats process;
  process.client = sum;
  EXPECT_THAT(StatsJson(process), HasSubstr("\"breaker\":\"open\"}"));
}

}  // namespace
}  // namespace tlscache::openssl
