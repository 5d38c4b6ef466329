// RedisConnection: one blocking hiredis connection with connect and I/O timeouts, owned by
// exactly one thread at a time (a RedisStore worker).
//
// Commands are binary-safe argv vectors. Pipelining: Append() any number of commands, then
// GetReply() once per command, in order. Any I/O error or timeout leaves the connection
// broken(): its pipeline is out of step and it must be discarded, never reused.
//
// Thread-safety: none; one owner.
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_CONNECTION_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/secret_bytes.h"
#include "server/store/redis/redis_credentials.h"

namespace tlscache::server::redis {

struct Endpoint {
  std::string host;
  int port = 6379;
  int db = 0;

  std::string ToString() const;
  // The same server (host and port), whatever the database.
  bool SameServer(const Endpoint& other) const { return host == other.host && port == other.port; }
};

// Frees a reply after wiping every string in it: replies carry session bytes.
struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisConnection {
 public:
  // Connects, authenticates with `auth` (when not null: its candidates in turn, telling it
  // which was accepted), then selects the endpoint's database. Fails with Unavailable (PermissionDenied when the credentials are refused), or
  // DeadlineExceeded when the server does not answer in time.
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Connect(const Endpoint& endpoint,
                                                                  absl::Duration connect_timeout,
                                                                  absl::Duration io_timeout,
                                                                  RedisCredentials* auth = nullptr);

  // Queues a command in the output buffer; nothing is sent until GetReply().
  void Append(absl::Span<const absl::string_view> argv);
  // Sends what is queued and reads the next reply. A Redis error reply is a reply, not an
  // error status: the status is for the connection itself.
  absl::StatusOr<ReplyPtr> GetReply();
  // Append + GetReply.
  absl::StatusOr<ReplyPtr> Command(absl::Span<const absl::string_view> argv);
  // Append, and sends what is queued without reading a reply (a subscribed connection's
  // PING: its answer comes as the next message).
  absl::Status Send(absl::Span<const absl::string_view> argv);
  // For a subscribed connection: the next message pushed by the server if one arrives within
  // `wait`, else a null reply (which is not an error: the connection stays usable).
  absl::StatusOr<ReplyPtr> NextMessage(absl::Duration wait);

  bool broken() const { return broken_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* ctx) const { redisFree(ctx); }
  };

  RedisConnection(std::unique_ptr<redisContext, ContextDeleter> ctx, std::string name,
                  absl::Duration io_timeout)
      : ctx_(std::move(ctx)), name_(std::move(name)), io_timeout_(io_timeout) {}

  absl::Status IoError(int saved_errno);

  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  const std::string name_;  // "redis 127.0.0.1:6379/0", for messages
  const absl::Duration io_timeout_;
  bool broken_ = false;
};

// The text of an error reply, or a description of an unexpected reply type, for messages.
std::string DescribeReply(const redisReply& reply);

// The most elements an array reply may have (CLUSTER SLOTS of a fully fragmented cluster has
// 16384 ranges; every other reply tlscache reads has a handful).
inline constexpr int kMaxReplyElements = 1 << 16;

// Makes `reader` refuse an array of more than kMaxReplyElements elements: hiredis 0.14
// allocates an array's element table from the count the server announces, before any element
// arrives, so one line from a broken or hostile server could ask for gigabytes. The read then
// fails (as out of memory) and the connection is dropped. Every connection's reader gets it.
void BoundReplyArrays(redisReader* reader);

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_CONNECTION_H_
