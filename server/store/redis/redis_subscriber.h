// RedisSubscriber: one channel of Redis pub/sub, followed for as long as the object lives.
//
// A thread connects, subscribes, calls `on_subscribed` (if set) and hands every message's
// payload to `on_message`. A connection quiet for `ping_interval` is sent PING, and one that
// does not answer within `ping_timeout` more is taken for broken (a path that went silent:
// no reset ever comes). When the connection breaks (a restart, a failover, a slot moving
// away, silence) it calls `on_lost` (if set), connects again with back-off, asking `locate`
// where to go each time, and calls `on_subscribed` again before the first message of the new
// subscription. With `sharded` (Redis Cluster) it uses
// SSUBSCRIBE and follows the MOVED reply of a node that does not own the channel's slot, and
// a node that gives the slot away (an unsubscription it did not ask for) sends it back to
// `locate`. Messages published while it is not subscribed are lost: pub/sub keeps nothing.
//
// Thread-safety: owns one thread; `on_message` runs on it.
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_SUBSCRIBER_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_SUBSCRIBER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/secret_bytes.h"
#include "server/store/redis/redis_connection.h"

namespace tlscache::server::redis {

struct SubscriberOptions {
  std::string channel;
  bool sharded = false;  // SSUBSCRIBE (Redis Cluster) rather than SUBSCRIBE
  // Where to connect: the server, the master Sentinel names, or (Cluster) the next seed.
  std::function<absl::StatusOr<Endpoint>()> locate;
  std::shared_ptr<RedisCredentials> auth;
  // Runs on the subscriber's thread once each subscription is confirmed, before its messages.
  std::function<void()> on_subscribed;
  // Runs on the subscriber's thread when a confirmed subscription ends (not on destruction).
  std::function<void()> on_lost;
  absl::Duration ping_interval = absl::Seconds(1);
  absl::Duration ping_timeout = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(1);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
};

class RedisSubscriber {
 public:
  RedisSubscriber(SubscriberOptions options, std::function<void(SecretBytes)> on_message);
  ~RedisSubscriber();  // stops within about 100 ms

  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // Subscriptions made so far (reconnects included), for tests and logs.
  uint64_t subscriptions() const { return subscriptions_.load(); }

 private:
  void Run();
  // Connects to `endpoint` and subscribes; a MOVED reply replaces `endpoint` and fails.
  absl::StatusOr<std::unique_ptr<RedisConnection>> Subscribe(Endpoint* endpoint);
  // Reads messages until the connection breaks or goes silent, or the subscription ends.
  void Listen(RedisConnection& conn);

  const SubscriberOptions options_;
  const std::function<void(SecretBytes)> on_message_;
  absl::Notification stop_;
  std::atomic<uint64_t> subscriptions_{0};
  std::thread thread_;
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_SUBSCRIBER_H_
