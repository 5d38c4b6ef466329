#include "server/store/sealed_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace tlscache::server {

SealedStore::SealedStore(std::unique_ptr<Store> inner, std::unique_ptr<Sealer> sealer)
    : inner_(std::move(inner)), sealer_(std::move(sealer)) {}

std::string SealedStore::Describe() const {
  return absl::StrCat(inner_->Describe(), ", sealed (", sealer_->key_count(),
                      sealer_->key_count() == 1 ? " key)" : " keys)");
}

void SealedStore::AddStats(StoreStats* stats) const {
  inner_->AddStats(stats);
  stats->open_failures = open_failures();
}

void SealedStore::CountOpenFailure(absl::string_view what, const absl::Status& why) {
  const uint64_t failures = open_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!report_.Allow()) return;
  LogWarning("sealed store: %s did not open (%s); %d such values since start", what, why.message(),
             failures);
}

void SealedStore::Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                      absl::Time deadline, PutDone done) {
  absl::StatusOr<std::string> sealed =
      sealer_->Seal(SealedKind::kSession, key.ns, key.session_id, session);
  if (!sealed.ok()) return std::move(done)(sealed.status());
  inner_->Put(key, *sealed, ttl, deadline, std::move(done));
}

void SealedStore::Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) {
  // The key's bytes live only until this call returns; the answer may come later.
  inner_->Get(key, consume, deadline,
              [this, ns = std::string(key.ns), id = std::string(key.session_id),
               done = std::move(done)](absl::StatusOr<StoreEntry> entry) mutable {
                if (!entry.ok()) return std::move(done)(entry.status());
                absl::StatusOr<SecretBytes> opened =
                    sealer_->Open(SealedKind::kSession, ns, id, entry->session.view());
                if (!opened.ok()) {
                  CountOpenFailure(absl::StrCat("a session of namespace ", ns), opened.status());
                  return std::move(done)(absl::NotFoundError("no such session"));
                }
                entry->session = *std::move(opened);
                std::move(done)(*std::move(entry));
              });
}

void SealedStore::AppendChanges(absl::string_view ns, std::vector<LogChange> changes,
                                absl::Time deadline, StatusDone done) {
  for (LogChange& change : changes) {
    absl::StatusOr<std::string> sealed =
        sealer_->Seal(SealedKind::kChanges, ns, change.session_id, change.payload.view());
    if (!sealed.ok()) return std::move(done)(sealed.status());
    change.payload = SecretBytes(*sealed);  // the plaintext is wiped as it is replaced
  }
  inner_->AppendChanges(ns, std::move(changes), deadline, std::move(done));
}

std::unique_ptr<Subscription> SealedStore::FollowLog(absl::string_view ns, LogHandler handler) {
  return inner_->FollowLog(ns, [this, ns = std::string(ns),
                                handler = std::move(handler)](LogEvent event) {
    if (event.kind == LogEvent::Kind::kChanges) {
      // A change that does not open is left out, and so is its number: what opened before it
      // goes as one event, what opened after as another, and the followers see a gap.
      std::vector<LogEntry> opened;
      uint64_t first = event.seq;
      for (size_t i = 0; i < event.entries.size(); ++i) {
        LogEntry& entry = event.entries[i];
        absl::StatusOr<SecretBytes> plaintext =
            sealer_->Open(SealedKind::kChanges, ns, entry.session_id, entry.payload.view());
        if (plaintext.ok()) {
          opened.push_back(LogEntry{std::move(entry.session_id), *std::move(plaintext)});
          continue;
        }
        CountOpenFailure(absl::StrCat("a change of namespace ", ns), plaintext.status());
        if (!opened.empty()) {
          handler(LogEvent{LogEvent::Kind::kChanges, event.log_id, first, std::move(opened)});
          opened.clear();
        }
        first = event.seq + i + 1;
      }
      if (opened.empty()) return;
      event.seq = first;
      event.entries = std::move(opened);
    }
    handler(std::move(event));
  });
}

void SealedStore::GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) {
  inner_->GetRing(ns, deadline,
                  [this, ns = std::string(ns),
                   done = std::move(done)](absl::StatusOr<StoredRing> stored) mutable {
                    if (!stored.ok()) return std::move(done)(stored.status());
                    absl::StatusOr<SecretBytes> opened =
                        sealer_->Open(SealedKind::kRing, ns, "", stored->ring.view());
                    if (!opened.ok()) {
                      CountOpenFailure(absl::StrCat("the ticket key ring of namespace ", ns),
                                       opened.status());
                      stored->ring.Clear();
                    } else {
                      stored->ring = *std::move(opened);
                    }
                    std::move(done)(*std::move(stored));
                  });
}

void SealedStore::SwapRing(absl::string_view ns, uint64_t expected, uint64_t version,
                           absl::string_view ring, absl::Time deadline, SwapRingDone done) {
  absl::StatusOr<std::string> sealed = sealer_->Seal(SealedKind::kRing, ns, "", ring);
  if (!sealed.ok()) return std::move(done)(sealed.status());
  inner_->SwapRing(ns, expected, version, *sealed, deadline, std::move(done));
}

}  // namespace tlscache::server
