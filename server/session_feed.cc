#include "server/session_feed.h"

#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "common/secret_bytes.h"

namespace tlscache::server {
namespace {

// How long ago `unix_micros` was, for the lag histogram; nothing for an unknown stamp or one
// from a clock ahead of ours.
std::optional<absl::Duration> Since(int64_t unix_micros) {
  if (unix_micros <= 0) return std::nullopt;
  const absl::Duration lag = absl::Now() - absl::FromUnixMicros(unix_micros);
  if (lag < absl::ZeroDuration()) return std::nullopt;
  return lag;
}

}  // namespace

void WipeChanges(google::protobuf::RepeatedPtrField<v1::SessionChange>* changes) {
  for (v1::SessionChange& change : *changes) CleanseString(change.mutable_session());
}

SessionFeed::SessionFeed(Store* store, FeedOptions options, Metrics* metrics)
    : store_(store), options_(std::move(options)), shared_(store->SharesChanges()) {
  AddMetrics(metrics);
}

SessionFeed::~SessionFeed() {
  std::map<std::string, std::unique_ptr<ChangesSubscription>> subscriptions;
  {
    absl::MutexLock lock(&mu_);
    subscriptions = std::move(subscriptions_);
    for (auto& [ns, publisher] : publishers_) WipeChanges(publisher.pending.mutable_changes());
  }
  subscriptions.clear();  // outside the lock: a handler may be waiting for it
}

void SessionFeed::AddMetrics(Metrics* metrics) {
  changes_ = metrics->AddCounter("tlscache_feed_changes_total",
                                 "session changes sent to followers, by where they were made "
                                 "(this replica, or another through the store)",
                                 {"source"});
  lag_ = metrics->AddHistogram(
      "tlscache_push_lag_seconds",
      "from a process sending a session up to this replica queueing it for another follower",
      {"source"});
  using Samples = std::vector<Metrics::GaugeSample>;
  metrics->AddGauge("tlscache_feed_followers", "processes following each namespace",
                    {"namespace"}, [this] {
                      absl::MutexLock lock(&mu_);
                      std::map<std::string, double> counts;
                      for (const auto& [ns, joined] : followers_) counts[ns] += 1;
                      Samples samples;
                      for (const auto& [ns, n] : counts) samples.push_back({{ns}, n});
                      return samples;
                    });
  metrics->AddCounterReader(
      "tlscache_feed_dropped_total",
      "changes not sent: a follower too slow to keep up, or more than a publish could hold",
      [this] {
        return Samples{{{}, static_cast<double>(dropped_.load() + publish_dropped_.load())}};
      });
  metrics->AddCounterReader("tlscache_feed_sent_bytes_total",
                            "bytes of the responses written to followers (changes and "
                            "acknowledgements, before gRPC's framing)",
                            [this] {
                              return Samples{{{}, static_cast<double>(sent_bytes_.load())}};
                            });
  metrics->AddCounterReader("tlscache_feed_batches_published_total",
                            "batches of changes published to the other replicas", [this] {
                              return Samples{{{}, static_cast<double>(published_.load())}};
                            });
  // What the followers report of their near caches, summed per namespace.
  auto near = [this](uint64_t (v1::NearCacheReport::*field)() const) {
    return [this, field] {
      absl::MutexLock lock(&mu_);
      std::map<std::string, double> sums;
      for (const auto& [ns, joined] : followers_) {
        sums[ns] += static_cast<double>((joined.follower->Report().*field)());
      }
      Samples samples;
      for (const auto& [ns, sum] : sums) samples.push_back({{ns}, sum});
      return samples;
    };
  };
  metrics->AddGauge("tlscache_near_cache_hits",
                    "lookups the followers' near caches answered (since each started following)",
                    {"namespace"}, near(&v1::NearCacheReport::hits));
  metrics->AddGauge("tlscache_near_cache_misses", "lookups the followers' near caches missed",
                    {"namespace"}, near(&v1::NearCacheReport::misses));
  metrics->AddGauge("tlscache_near_cache_entries", "sessions in the followers' near caches",
                    {"namespace"}, near(&v1::NearCacheReport::entries));
  metrics->AddGauge("tlscache_near_cache_bytes", "bytes the followers' near caches hold",
                    {"namespace"}, near(&v1::NearCacheReport::bytes));
}

void SessionFeed::Join(const std::string& ns, Follower* follower) {
  absl::Time hand_over_at = absl::InfiniteFuture();
  if (options_.max_follow_age > absl::ZeroDuration()) {
    thread_local absl::BitGen random;
    hand_over_at = absl::Now() + options_.max_follow_age * absl::Uniform(random, 1.0, 1.2);
  }
  absl::MutexLock lock(&mu_);
  followers_.emplace(ns, Joined{follower, hand_over_at});
  if (shared_ && subscriptions_.count(ns) == 0) {
    // Kept for the replica's life: namespaces are few, and a follower that comes back finds
    // the subscription up.
    subscriptions_[ns] = store_->SubscribeChanges(
        ns, [this](absl::string_view of, SecretBytes batch) { Received(of, std::move(batch)); });
  }
}

void SessionFeed::Leave(const std::string& ns, Follower* follower) {
  absl::MutexLock lock(&mu_);
  auto [begin, end] = followers_.equal_range(ns);
  for (auto it = begin; it != end; ++it) {
    if (it->second.follower == follower) {
      followers_.erase(it);
      return;
    }
  }
}

void SessionFeed::StopAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [ns, joined] : followers_) joined.follower->Stop();
}

void SessionFeed::HandOverAll(absl::Duration timeout) {
  handing_over_.store(true, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  for (auto& [ns, joined] : followers_) {
    joined.asked = true;
    joined.follower->HandOver();
  }
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::multimap<std::string, Joined>* followers) {
                             return followers->empty();
                           },
                           &followers_),
                       timeout);
}

void SessionFeed::HandOverAged(absl::Time now) {
  if (options_.max_follow_age == absl::ZeroDuration()) return;  // no follower ages
  absl::MutexLock lock(&mu_);
  for (auto& [ns, joined] : followers_) {
    if (now < joined.hand_over_at) continue;
    if (!joined.asked) {
      joined.asked = true;
      joined.follower->HandOver();
    } else if (now >= joined.hand_over_at + options_.handover_grace) {
      joined.follower->Stop();
    }
  }
}

void SessionFeed::DeliverLocked(const std::string& ns, const v1::SessionChange& change,
                                const Follower* origin) {
  auto [begin, end] = followers_.equal_range(ns);
  for (auto it = begin; it != end; ++it) {
    if (it->second.follower != origin) it->second.follower->Deliver(change);
  }
}

void SessionFeed::Changed(absl::string_view ns_view, v1::SessionChange* change,
                          const Follower* origin) {
  const std::string ns(ns_view);
  bool publish = false;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<absl::Duration> lag = Since(change->origin_unix_micros())) {
      lag_->Observe({"local"}, *lag);
    }
    DeliverLocked(ns, *change, origin);
    changes_->Increment({"local"});
    if (shared_) {
      Publisher& publisher = publishers_[ns];
      const size_t size = change->ByteSizeLong();
      if (publisher.pending_bytes + size > options_.max_publish_bytes) {
        publish_dropped_.fetch_add(1, std::memory_order_relaxed);
      } else {
        *publisher.pending.add_changes() = *change;
        publisher.pending_bytes += size;
        publish = !publisher.in_flight;
      }
    }
  }
  CleanseString(change->mutable_session());
  if (publish) PublishPending(ns);
}

void SessionFeed::PublishPending(const std::string& ns) {
  std::string bytes;
  {
    absl::MutexLock lock(&mu_);
    Publisher& publisher = publishers_[ns];
    if (publisher.in_flight || publisher.pending.changes().empty()) return;
    publisher.in_flight = true;
    publisher.pending.set_origin(options_.replica_id);
    publisher.pending.set_sent_unix_micros(absl::ToUnixMicros(absl::Now()));
    publisher.pending.SerializeToString(&bytes);
    WipeChanges(publisher.pending.mutable_changes());
    publisher.pending.Clear();
    publisher.pending_bytes = 0;
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  // The store copies what it sends before returning; `done` may run before that.
  store_->PublishChanges(ns, bytes, absl::Now() + options_.store_timeout,
                         [this, ns](absl::Status) {
                           {
                             absl::MutexLock lock(&mu_);
                             publishers_[ns].in_flight = false;
                           }
                           PublishPending(ns);
                         });
  CleanseString(&bytes);
}

void SessionFeed::Received(absl::string_view ns_view, SecretBytes bytes) {
  v1::FeedBatch batch;
  const bool parsed = batch.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  bytes.Clear();
  if (parsed && batch.origin() != options_.replica_id) {
    const std::string ns(ns_view);
    absl::MutexLock lock(&mu_);
    for (const v1::SessionChange& change : batch.changes()) {
      if (std::optional<absl::Duration> lag = Since(change.origin_unix_micros())) {
        lag_->Observe({"replica"}, *lag);
      }
      DeliverLocked(ns, change, nullptr);
    }
    changes_->Increment({"replica"}, batch.changes_size());
  }
  WipeChanges(batch.mutable_changes());
}

}  // namespace tlscache::server
