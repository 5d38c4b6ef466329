#include "server/store/redis/sentinel.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

namespace {

// What `conn` (to `sentinel`) says the master is.
absl::StatusOr<Endpoint> AskSentinel(RedisConnection& conn, const SentinelConfig& config) {
  absl::StatusOr<ReplyPtr> reply =
      conn.Command({"SENTINEL", "get-master-addr-by-name", config.master_name});
  if (!reply.ok()) return reply.status();
  const redisReply& r = **reply;
  Endpoint master;
  master.db = config.db;
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
      r.element[0]->type != REDIS_REPLY_STRING || r.element[1]->type != REDIS_REPLY_STRING ||
      r.element[0]->len == 0 || r.element[0]->len > 255 ||
      !absl::SimpleAtoi(Str(*r.element[1]), &master.port) || master.port < 1 ||
      master.port > 65535) {
    return absl::NotFoundError(
        absl::StrCat("does not know master ", config.master_name, " (", DescribeReply(r), ")"));
  }
  master.host = std::string(Str(*r.element[0]));
  return master;
}

Endpoint SentinelAt(const Endpoint& sentinel) {
  Endpoint at = sentinel;
  at.db = 0;  // sentinels have no databases to select
  return at;
}

// Both name the same server, or neither names one.
bool SameAnswer(const absl::StatusOr<Endpoint>& a, const absl::StatusOr<Endpoint>& b) {
  return a.ok() == b.ok() && (!a.ok() || a->SameServer(*b));
}

}  // namespace

absl::StatusOr<Endpoint> MajorityMaster(const SentinelConfig& config,
                                        const std::vector<absl::StatusOr<Endpoint>>& answers) {
  const size_t needed = config.sentinels.size() / 2 + 1;
  std::vector<std::string> said;
  size_t reached = 0;
  for (size_t i = 0; i < answers.size() && i < config.sentinels.size(); ++i) {
    const Endpoint& sentinel = config.sentinels[i];
    if (!answers[i].ok()) {
      said.push_back(absl::StrCat(sentinel.host, ":", sentinel.port, ": ",
                                  answers[i].status().message()));
      continue;
    }
    ++reached;
    size_t agreeing = 0;
    for (const absl::StatusOr<Endpoint>& other : answers) {
      agreeing += other.ok() && other->SameServer(*answers[i]);
    }
    if (agreeing >= needed) return *answers[i];
    said.push_back(absl::StrCat(sentinel.host, ":", sentinel.port, ": ", answers[i]->host, ":",
                                answers[i]->port));
  }
  return absl::UnavailableError(absl::StrCat(
      "no master named by a majority (", needed, " of ", config.sentinels.size(),
      ") of the sentinels of ", config.master_name, " (", reached,
      " answered; cut off from the others, or a failover in progress): ",
      absl::StrJoin(said, "; ")));
}

absl::StatusOr<Endpoint> ResolveMaster(const SentinelConfig& config, absl::Duration timeout) {
  std::vector<absl::StatusOr<Endpoint>> answers;
  for (const Endpoint& sentinel : config.sentinels) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
        RedisConnection::Connect(SentinelAt(sentinel), timeout, timeout, config.auth.get());
    answers.push_back(conn.ok() ? AskSentinel(**conn, config) : conn.status());
  }
  return MajorityMaster(config, answers);
}

SentinelWatcher::SentinelWatcher(SentinelConfig config, absl::Duration timeout,
                                 std::function<void()> on_switch, absl::Duration check_every)
    : config_(std::move(config)),
      timeout_(timeout),
      on_switch_(std::move(on_switch)),
      check_every_(check_every) {
  thread_ = std::thread([this] { Run(); });
  checker_ = std::thread([this] { CheckMajority(); });
}

SentinelWatcher::~SentinelWatcher() {
  stop_.Notify();
  thread_.join();
  checker_.join();
}

std::optional<absl::StatusOr<Endpoint>> SentinelWatcher::master() const {
  absl::MutexLock lock(&master_mu_);
  return master_;
}

void SentinelWatcher::Name(absl::StatusOr<Endpoint> master, bool announced) {
  {
    absl::MutexLock lock(&master_mu_);
    // The first check's answer: the pool connected to what the sentinels said meanwhile.
    const bool first = !announced && !master_.has_value();
    if (master_.has_value() && SameAnswer(*master_, master)) return;
    master_ = std::move(master);
    if (first) return;
  }
  master_changes_.fetch_add(1, std::memory_order_relaxed);
  on_switch_();
}

void SentinelWatcher::CheckMajority() {
  // One connection per sentinel, kept; a sentinel that fails is reconnected on the next round.
  std::vector<std::unique_ptr<RedisConnection>> conns(config_.sentinels.size());
  std::optional<absl::StatusOr<Endpoint>> last;
  int without_majority = 0;  // rounds in a row
  for (bool first = true; first || !stop_.WaitForNotificationWithTimeout(check_every_);
       first = false) {
    std::vector<absl::StatusOr<Endpoint>> answers;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i] == nullptr) {
        absl::StatusOr<std::unique_ptr<RedisConnection>> conn = RedisConnection::Connect(
            SentinelAt(config_.sentinels[i]), timeout_, timeout_, config_.auth.get());
        if (!conn.ok()) {
          answers.push_back(conn.status());
          continue;
        }
        conns[i] = *std::move(conn);
      }
      answers.push_back(AskSentinel(*conns[i], config_));
      if (!answers.back().ok() && conns[i]->broken()) conns[i].reset();
    }
    absl::StatusOr<Endpoint> master = MajorityMaster(config_, answers);
    // A majority lost counts from its second round in a row: one round of slow answers (a
    // busy host) does not drop every connection.
    without_majority = master.ok() ? 0 : without_majority + 1;
    if (without_majority == 1 && last.has_value() && last->ok()) continue;
    uint64_t agreeing = 0;
    for (const absl::StatusOr<Endpoint>& answer : answers) {
      agreeing += master.ok() && answer.ok() && answer->SameServer(*master);
    }
    // Only a change of the majority's answer is named: an announcement the majority has not
    // caught up with yet is not undone by its previous answer.
    const bool changed = !last.has_value() || !SameAnswer(*last, master);
    if (changed && last.has_value()) {
      if (master.ok()) {
        LogWarning("redis %s: the majority names %s:%d", config_.ToString(), master->host,
                   master->port);
      } else {
        LogWarning("redis %s: %s; not writing until a majority names a master",
                   config_.ToString(), master.status().message());
      }
    }
    last = master;
    if (changed) Name(std::move(master), /*announced=*/false);
    // After the switch: whoever reads "no majority" here finds the pool already moving.
    agreeing_.store(agreeing, std::memory_order_relaxed);
  }
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
        // "<name> <old-ip> <old-port> <new-ip> <new-port>": the new master, for the pool.
        std::vector<absl::string_view> words = absl::StrSplit(Str(*m.element[2]), ' ');
        Endpoint announced;
        announced.db = config_.db;
        if (words.size() == 5 && absl::SimpleAtoi(words[4], &announced.port)) {
          announced.host = std::string(words[3]);
          Name(std::move(announced), /*announced=*/true);
        }
      }
    }
  }
}

}  // namespace tlscache::server::redis
