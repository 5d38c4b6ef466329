#include "server/store/redis/redis_credentials.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/log.h"

namespace tlscache::server::redis {

absl::StatusOr<RedisAuth> ParseRedisAuth(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return absl::InvalidArgumentError("empty: expected PASSWORD or USER PASSWORD");
  if (absl::StrContains(text, '\n')) {
    return absl::InvalidArgumentError("more than one line: expected PASSWORD or USER PASSWORD");
  }
  RedisAuth auth;
  const size_t space = text.find_first_of(" \t");
  if (space == absl::string_view::npos) {
    auth.password = SecretBytes(text);
    return auth;
  }
  auth.user = std::string(text.substr(0, space));
  const absl::string_view password = absl::StripAsciiWhitespace(text.substr(space));
  if (password.find_first_of(" \t") != absl::string_view::npos) {
    return absl::InvalidArgumentError("expected PASSWORD or USER PASSWORD, found more words");
  }
  auth.password = SecretBytes(password);
  return auth;
}

absl::StatusOr<RedisAuth> ReadRedisAuthFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, 4096);
  if (!text.ok()) return absl::Status(text.status().code(), text.status().message());
  absl::StatusOr<RedisAuth> auth = ParseRedisAuth(*text);
  CleanseString(&*text);
  if (!auth.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", auth.status().message()));
  }
  return auth;
}

RedisCredentials::RedisCredentials(RedisAuth auth)
    : current_(std::make_shared<const RedisAuth>(std::move(auth))), accepted_(current_) {}

RedisCredentials::RedisCredentials(std::string path, RedisAuth auth)
    : path_(std::move(path)),
      current_(std::make_shared<const RedisAuth>(std::move(auth))),
      accepted_(current_) {}

absl::StatusOr<std::shared_ptr<RedisCredentials>> RedisCredentials::FromFile(std::string path) {
  absl::StatusOr<RedisAuth> auth = ReadRedisAuthFile(path);
  if (!auth.ok()) return auth.status();
  return std::shared_ptr<RedisCredentials>(
      new RedisCredentials(std::move(path), *std::move(auth)));
}

std::vector<std::shared_ptr<const RedisAuth>> RedisCredentials::Candidates() {
  absl::StatusOr<RedisAuth> read =
      path_.empty() ? absl::StatusOr<RedisAuth>(absl::CancelledError()) : ReadRedisAuthFile(path_);
  absl::MutexLock lock(&mu_);
  if (!path_.empty()) {
    if (read.ok()) {
      reported_unreadable_ = false;
      if (!(*read == *current_)) {
        current_ = std::make_shared<const RedisAuth>(*std::move(read));
        LogInfo("redis credentials: %s changed; new connections use it", path_);
      }
    } else if (!reported_unreadable_) {
      reported_unreadable_ = true;
      LogWarning("redis credentials: %s; using the credentials read before",
                 read.status().message());
    }
  }
  std::vector<std::shared_ptr<const RedisAuth>> candidates = {current_};
  if (accepted_ != current_ && !(*accepted_ == *current_)) candidates.push_back(accepted_);
  return candidates;
}

void RedisCredentials::Accepted(const std::shared_ptr<const RedisAuth>& auth) {
  absl::MutexLock lock(&mu_);
  if (accepted_ != auth) accepted_ = auth;
}

}  // namespace tlscache::server::redis
