#include "server/store/redis/sentinel.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace tlscache::server::redis {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(250);

absl::string_view Str(const redisReply& reply) { return absl::string_view(reply.str, reply.len); }

}  // namespace

std::string SentinelConfig::ToString() const {
  std::vector<std::string> addresses;
  for (const Endpoint& e : sentinels) addresses.push_back(absl::StrCat(e.host, ":", e.port));
  return absl::StrCat("sentinel ", master_name, " (", absl::StrJoin(addresses, ","), ")");
}

absl::StatusOr<Endpoint> ResolveMaster(const SentinelConfig& config, absl::Duration timeout) {
  std::vector<std::string> failures;
  for (const Endpoint& sentinel : config.sentinels) {
    const std::string where = absl::StrCat(sentinel.host, ":", sentinel.port);
    Endpoint at = sentinel;
    at.db = 0;  // sentinels have no databases to select
    absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
        RedisConnection::Connect(at, timeout, timeout, config.auth.get());
    if (!conn.ok()) {
      failures.push_back(absl::StrCat(where, ": ", conn.status().message()));
      continue;
    }
    absl::StatusOr<ReplyPtr> reply =
        (*conn)->Command({"SENTINEL", "get-master-addr-by-name", config.master_name});
    if (!reply.ok()) {
      failures.push_back(absl::StrCat(where, ": ", reply.status().message()));
      continue;
    }
    const redisReply& r = **reply;
    Endpoint master;
    master.db = config.db;
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
        r.element[0]->type != REDIS_REPLY_STRING || r.element[1]->type != REDIS_REPLY_STRING ||
        r.element[0]->len == 0 || r.element[0]->len > 255 ||
        !absl::SimpleAtoi(Str(*r.element[1]), &master.port) || master.port < 1 ||
        master.port > 65535) {
      failures.push_back(absl::StrCat(where, ": does not know master ", config.master_name, " (",
                                      DescribeReply(r), ")"));
      continue;
    }
    master.host = std::string(Str(*r.element[0]));
    return master;
  }
  return absl::UnavailableError(absl::StrCat("no sentinel names the master ", config.master_name,
                                             ": ", absl::StrJoin(failures, "; ")));
}

SentinelWatcher::SentinelWatcher(SentinelConfig config, absl::Duration timeout,
                                 std::function<void()> on_switch)
    : config_(std::move(config)), timeout_(timeout), on_switch_(std::move(on_switch)) {
  thread_ = std::thread([this] { Run(); });
}

SentinelWatcher::~SentinelWatcher() {
  stop_.Notify();
  thread_.join();
}

void SentinelWatcher::Run() {
  size_t next = 0;
  while (!stop_.HasBeenNotified()) {
    Endpoint sentinel = config_.sentinels[next++ % config_.sentinels.size()];
    sentinel.db = 0;
    absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
        RedisConnection::Connect(sentinel, timeout_, timeout_, config_.auth.get());
    absl::StatusOr<ReplyPtr> subscribed =
        conn.ok() ? (*conn)->Command({"SUBSCRIBE", "+switch-master"}) : conn.status();
    if (!subscribed.ok()) {
      stop_.WaitForNotificationWithTimeout(absl::Seconds(1));  // then the next sentinel
      continue;
    }
    while (!stop_.HasBeenNotified()) {
      absl::StatusOr<ReplyPtr> message = (*conn)->NextMessage(kPollInterval);
      if (!message.ok()) break;  // resubscribe, on the next sentinel
      if (*message == nullptr) continue;
      // ["message", "+switch-master", "<name> <old-ip> <old-port> <new-ip> <new-port>"]
      const redisReply& m = **message;
      if (m.type == REDIS_REPLY_ARRAY && m.elements == 3 &&
          m.element[2]->type == REDIS_REPLY_STRING &&
          absl::StartsWith(Str(*m.element[2]), absl::StrCat(config_.master_name, " "))) {
        LogWarning("redis %s: failover announced: %s", config_.ToString(), Str(*m.element[2]));
        on_switch_();
      }
    }
  }
}

}  // namespace tlscache::server::redis
