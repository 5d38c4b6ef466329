#include "server/store/redis/redis_subscriber.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/host_port.h"
#include "common/log.h"

namespace tlscache::server::redis {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(100);

absl::string_view Str(const redisReply& reply) { return absl::string_view(reply.str, reply.len); }

bool IsString(const redisReply* reply) {
  return reply != nullptr &&
         (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS);
}

// The node a "MOVED <slot> <host>:<port>" error names.
std::optional<Endpoint> MovedTo(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ERROR || !absl::StartsWith(Str(reply), "MOVED ")) {
    return std::nullopt;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(Str(reply), ' ');
  if (parts.size() != 3) return std::nullopt;
  absl::StatusOr<HostPort> address = SplitHostPort(parts[2]);
  if (!address.ok()) return std::nullopt;
  Endpoint endpoint;
  endpoint.host = address->host;
  endpoint.port = address->port;
  return endpoint;
}

}  // namespace

RedisSubscriber::RedisSubscriber(SubscriberOptions options,
                                 std::function<void(SecretBytes)> on_message)
    : options_(std::move(options)), on_message_(std::move(on_message)) {
  thread_ = std::thread([this] { Run(); });
}

RedisSubscriber::~RedisSubscriber() {
  stop_.Notify();
  thread_.join();
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisSubscriber::Subscribe(Endpoint* endpoint) {
  endpoint->db = 0;  // pub/sub channels are not per database
  absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
      RedisConnection::Connect(*endpoint, options_.timeout, options_.timeout, options_.auth.get());
  if (!conn.ok()) return conn.status();
  absl::StatusOr<ReplyPtr> reply =
      (*conn)->Command({options_.sharded ? "SSUBSCRIBE" : "SUBSCRIBE", options_.channel});
  if (!reply.ok()) return reply.status();
  if (std::optional<Endpoint> moved = MovedTo(**reply)) {
    *endpoint = *moved;
    return absl::UnavailableError("moved");
  }
  // ["subscribe" | "ssubscribe", channel, count]
  const redisReply& r = **reply;
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 3 || !IsString(r.element[0]) ||
      !absl::EndsWith(Str(*r.element[0]), "subscribe")) {
    return absl::UnavailableError(
        absl::StrCat(endpoint->ToString(), ": subscribing answered ", DescribeReply(r)));
  }
  subscriptions_.fetch_add(1);
  return conn;
}

void RedisSubscriber::Listen(RedisConnection& conn) {
  absl::Time heard = absl::Now();
  bool pinged = false;
  while (!stop_.HasBeenNotified()) {
    const absl::Time now = absl::Now();
    if (now - heard >= options_.ping_interval) {
      if (now - heard >= options_.ping_interval + options_.ping_timeout) {
        LogWarning("redis pub/sub %s: no answer to PING within %s; connecting again",
                   options_.channel, absl::FormatDuration(options_.ping_timeout));
        return;
      }
      if (!pinged) {
        if (!conn.Send({"PING"}).ok()) return;
        pinged = true;
      }
    }
    absl::StatusOr<ReplyPtr> message = conn.NextMessage(kPollInterval);
    if (!message.ok()) return;
    if (*message == nullptr) continue;
    heard = absl::Now();  // a message, or the answer to PING (["pong", ""])
    pinged = false;
    // ["message" | "smessage", channel, payload]; ["sunsubscribe", channel, 0] when a
    // cluster node gives the slot away.
    const redisReply& m = **message;
    if (m.type != REDIS_REPLY_ARRAY || m.elements < 3 || !IsString(m.element[0])) continue;
    const absl::string_view kind = Str(*m.element[0]);
    if (kind == "sunsubscribe" || kind == "unsubscribe") return;
    if ((kind == "message" || kind == "smessage") && m.element[2]->type == REDIS_REPLY_STRING) {
      on_message_(SecretBytes(Str(*m.element[2])));  // the reply is wiped when freed
    }
  }
}

void RedisSubscriber::Run() {
  constexpr int kMaxRedirects = 5;
  absl::Duration backoff = options_.min_backoff;
  std::optional<Endpoint> next;  // where a MOVED reply sent us
  int redirects = 0;
  bool reported = false;
  while (!stop_.HasBeenNotified()) {
    absl::StatusOr<Endpoint> endpoint = next ? absl::StatusOr<Endpoint>(*next) : options_.locate();
    next.reset();
    absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
        endpoint.ok() ? absl::UnavailableError("not connected") : endpoint.status();
    if (endpoint.ok()) {
      Endpoint target = *endpoint;
      conn = Subscribe(&target);
      const bool moved = target.host != endpoint->host || target.port != endpoint->port;
      if (!conn.ok() && moved && redirects++ < kMaxRedirects) {
        next = target;  // a cluster node named the slot's owner: there at once
        continue;
      }
    }
    redirects = 0;
    if (conn.ok()) {
      backoff = options_.min_backoff;
      reported = false;
      if (options_.on_subscribed) options_.on_subscribed();
      Listen(**conn);
      if (options_.on_lost && !stop_.HasBeenNotified()) options_.on_lost();
      continue;
    }
    if (!reported) {
      LogWarning("redis pub/sub %s: %s; retrying", options_.channel, conn.status().message());
      reported = true;
    }
    stop_.WaitForNotificationWithTimeout(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace tlscache::server::redis
