// SessionWrites: the one path of every change to a namespace's sessions, whichever call brought
// it (a unary Put or Delete, a consuming Get, a batch up a Follow stream): the change is
// checked (InvalidArgument naming the field), given its TTL or hold, made in the store, and put
// in the namespace's change log for every follower (server/sessions/session_feed.h).
//
//   - A Put is in the log only once the store took it (a session deleted within its lifetime
//     is refused by the store, and never reaches the log either). Its completion does not
//     wait for the log: a follower that misses a session looks it up.
//   - A Delete completes ok only once the store holds the tombstone and the log holds the
//     deletion; otherwise it fails and its caller sends it again. The log is tried again in
//     the background too, for as long as the deletion stands.
//   - A consuming Get puts the deletion in the log once it has the entry (in the background,
//     tried again likewise); the lookup does not wait for it.
//
// Thread-safety: thread-safe; `store` and `feed` outlive it. Completions run on store threads.
#ifndef TLSCACHE_SERVER_SESSIONS_SESSION_WRITES_H_
#define TLSCACHE_SERVER_SESSIONS_SESSION_WRITES_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/security/authorizer.h"
#include "server/sessions/session_feed.h"
#include "server/store/store.h"

namespace tlscache::server {

struct ServiceOptions {
  absl::Duration default_ttl = absl::Seconds(300);
  absl::Duration max_ttl = absl::Hours(24);
  size_t max_session_bytes = 16 << 10;
  // Who may use which namespace; null: every caller may use every namespace.
  const Authorizer* authz = nullptr;
};

class SessionWrites {
 public:
  // `feed` null: no change log (a service built without Follow, in tests).
  SessionWrites(Store* store, SessionFeed* feed, const ServiceOptions& options)
      : store_(store), feed_(feed), options_(options) {}

  // `done` gets whether the session was stored (false: it was deleted within its lifetime).
  void Put(absl::string_view ns, absl::string_view session_id, absl::string_view session,
           uint32_t ttl_seconds, int64_t origin_unix_micros, absl::Time deadline, PutDone done);
  // `done` gets whether a live entry was there.
  void Delete(absl::string_view ns, absl::string_view session_id, uint32_t hold_seconds,
              absl::string_view tls_session_id, absl::Time deadline,
              absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done);
  void Get(absl::string_view ns, absl::string_view session_id, bool consume, absl::Time deadline,
           GetDone done);
  // Whether a live entry is there (a follower's check of its copies).
  void Live(absl::string_view ns, absl::string_view session_id, absl::Time deadline,
            LiveDone done);

  // The TTL a Put with `ttl_seconds` gets (0: the default; above the maximum: the maximum).
  absl::Duration EffectiveTtl(uint32_t ttl_seconds) const;
  const ServiceOptions& options() const { return options_; }

 private:
  // Puts the deletion of `session_id` (standing for `hold`) in the log; `done` may be null.
  void LogDeletion(absl::string_view ns, absl::string_view session_id,
                   absl::string_view tls_session_id, absl::Duration hold,
                   SessionFeed::AppendDone done);

  Store* const store_;
  SessionFeed* const feed_;
  const ServiceOptions options_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSIONS_SESSION_WRITES_H_
