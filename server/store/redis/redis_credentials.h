// RedisCredentials: what a connection to Redis or to a sentinel says in AUTH.
//
// Given by a file (--redis_password_file, --sentinel_password_file), the credentials follow
// it: the file is read again at every connect, so a rotated password (a Secret updated in
// place, a file replaced) is used by the next connection without a restart. While a password
// is being rotated the file and Redis may change in either order; when Redis refuses the
// file's credentials, the last credentials it accepted are tried on the same connection, and
// when the file cannot be read or parsed the last good credentials are used (and logged once).
//
// Thread-safety: all methods are thread-safe.
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_CREDENTIALS_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_CREDENTIALS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/secret_bytes.h"

namespace tlscache::server::redis {

// Credentials for AUTH: a password (the default user), or an ACL user and its password.
struct RedisAuth {
  std::string user;  // empty: the default user
  SecretBytes password;

  bool operator==(const RedisAuth& other) const {
    return user == other.user && password.view() == other.password.view();
  }
};

// A credentials file: one line, "PASSWORD" or "USER PASSWORD". Errors never hold the password.
absl::StatusOr<RedisAuth> ParseRedisAuth(absl::string_view text);

class RedisCredentials {
 public:
  // Fixed credentials.
  explicit RedisCredentials(RedisAuth auth);
  // Reads `path` now: not ok (InvalidArgument, naming the file but never its content) when it
  // cannot be read or parsed.
  static absl::StatusOr<std::shared_ptr<RedisCredentials>> FromFile(std::string path);

  // What to try, in order: the file's credentials as they are now, then the last accepted
  // when they differ. Never empty.
  std::vector<std::shared_ptr<const RedisAuth>> Candidates();
  // `auth` (one of Candidates()) was accepted.
  void Accepted(const std::shared_ptr<const RedisAuth>& auth);

 private:
  RedisCredentials(std::string path, RedisAuth auth);

  const std::string path_;  // empty: fixed
  absl::Mutex mu_;
  std::shared_ptr<const RedisAuth> current_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const RedisAuth> accepted_ ABSL_GUARDED_BY(mu_);
  bool reported_unreadable_ ABSL_GUARDED_BY(mu_) = false;
};

// The credentials in `path`, re-read at each use; errors begin with "PATH: ".
absl::StatusOr<RedisAuth> ReadRedisAuthFile(const std::string& path);

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_CREDENTIALS_H_
