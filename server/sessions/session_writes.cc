#include "server/sessions/session_writes.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/secret_bytes.h"
#include "common/validation.h"

namespace tlscache::server {
namespace {

// The serialized change, as the log carries it; the message's session bytes are wiped.
SecretBytes Serialize(v1::SessionChange* change) {
  std::string bytes;
  change->SerializeToString(&bytes);
  CleanseString(change->mutable_session());
  SecretBytes out(bytes);
  CleanseString(&bytes);
  return out;
}

}  // namespace

absl::Duration SessionWrites::EffectiveTtl(uint32_t ttl_seconds) const {
  if (ttl_seconds == 0) return options_.default_ttl;
  return std::min(absl::Seconds(ttl_seconds), options_.max_ttl);
}

void SessionWrites::Put(absl::string_view ns, absl::string_view session_id,
                        absl::string_view session, uint32_t ttl_seconds,
                        int64_t origin_unix_micros, absl::Time deadline, PutDone done) {
  if (absl::Status s = ValidateSessionId(session_id); !s.ok()) return std::move(done)(s);
  if (absl::Status s = ValidateSession(session, options_.max_session_bytes); !s.ok()) {
    return std::move(done)(s);
  }
  const absl::Duration ttl = EffectiveTtl(ttl_seconds);
  // The log's copy is made now: the caller's bytes live only until this returns.
  std::optional<SecretBytes> payload;
  if (feed_ != nullptr) {
    v1::SessionChange change;
    change.set_session_id(std::string(session_id));
    change.set_session(std::string(session));
    change.set_ttl_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(ttl)));
    change.set_origin_unix_micros(origin_unix_micros > 0 ? origin_unix_micros
                                                         : absl::ToUnixMicros(absl::Now()));
    payload = Serialize(&change);
  }
  store_->Put({ns, session_id}, session, ttl, deadline,
              [this, ns = std::string(ns), id = std::string(session_id),
               payload = std::move(payload),
               done = std::move(done)](absl::StatusOr<bool> stored) mutable {
                if (stored.ok() && *stored && payload) {
                  feed_->Append(ns, LogChange{std::move(id), false, absl::ZeroDuration(),
                                              *std::move(payload)},
                                nullptr);
                }
                std::move(done)(std::move(stored));
              });
}

void SessionWrites::LogDeletion(absl::string_view ns, absl::string_view session_id,
                                absl::string_view tls_session_id, absl::Duration hold,
                                SessionFeed::AppendDone done) {
  if (feed_ == nullptr) {
    if (done) std::move(done)(absl::OkStatus());
    return;
  }
  hold = std::min(hold, options_.max_ttl);  // an entry stored without expiry: the most a TTL is
  v1::SessionChange change;
  change.set_session_id(std::string(session_id));
  change.set_ttl_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(hold)));
  change.set_origin_unix_micros(absl::ToUnixMicros(absl::Now()));
  if (!tls_session_id.empty()) change.set_tls_session_id(std::string(tls_session_id));
  feed_->Append(std::string(ns),
                LogChange{std::string(session_id), true, hold, Serialize(&change)}, std::move(done));
}

void SessionWrites::Delete(absl::string_view ns, absl::string_view session_id,
                           uint32_t hold_seconds, absl::string_view tls_session_id,
                           absl::Time deadline,
                           absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done) {
  if (absl::Status s = ValidateSessionId(session_id); !s.ok()) return std::move(done)(s);
  if (tls_session_id.size() > kMaxSessionIdBytes) {
    return std::move(done)(absl::InvalidArgumentError(
        "tls_session_id: a TLS session ID is at most 32 bytes"));
  }
  // At least as long as a store of the session may still come: its remaining lifetime as
  // the caller knows it, or the default TTL when it does not say.
  const absl::Duration hold =
      std::min(hold_seconds == 0 ? options_.default_ttl : absl::Seconds(hold_seconds),
               options_.max_ttl);
  store_->Delete(
      {ns, session_id}, hold, deadline,
      [this, ns = std::string(ns), id = std::string(session_id),
       tls_id = std::string(tls_session_id),
       done = std::move(done)](absl::StatusOr<Deletion> deletion) mutable {
        if (!deletion.ok()) return std::move(done)(deletion.status());
        const bool existed = deletion->existed;
        LogDeletion(ns, id, tls_id, deletion->hold,
                    [existed, done = std::move(done)](absl::Status logged) mutable {
                      if (!logged.ok()) {
                        return std::move(done)(absl::UnavailableError(absl::StrCat(
                            "the deletion is stored, but the namespace's followers were not "
                            "told yet (",
                            logged.message(), "): send it again")));
                      }
                      std::move(done)(existed);
                    });
      });
}

void SessionWrites::Get(absl::string_view ns, absl::string_view session_id, bool consume,
                        absl::Time deadline, GetDone done) {
  if (absl::Status s = ValidateSessionId(session_id); !s.ok()) return std::move(done)(s);
  store_->Get({ns, session_id}, consume, deadline,
              [this, consume, ns = std::string(ns), id = std::string(session_id),
               done = std::move(done)](absl::StatusOr<StoreEntry> entry) mutable {
                // Consumed: no near cache may offer it again.
                if (entry.ok() && consume) LogDeletion(ns, id, "", entry->ttl_remaining, nullptr);
                std::move(done)(std::move(entry));
              });
}

void SessionWrites::Live(absl::string_view ns, absl::string_view session_id,
                         absl::Time deadline, LiveDone done) {
  if (absl::Status s = ValidateSessionId(session_id); !s.ok()) return std::move(done)(s);
  store_->Live({ns, session_id}, deadline, std::move(done));
}

}  // namespace tlscache::server
