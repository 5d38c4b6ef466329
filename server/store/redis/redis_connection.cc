#include "server/store/redis/redis_connection.h"

#include <openssl/crypto.h>
#include <poll.h>
#include <sys/time.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlscache::server::redis {
namespace {

timeval SocketTimeout(absl::Duration d) {
  // A zero timeval means "no timeout" to the kernel: never hand it one.
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  return absl::ToTimeval(d);
}

void WipeReply(redisReply* reply) {
  if (reply->str != nullptr && reply->len > 0) OPENSSL_cleanse(reply->str, reply->len);
  if (reply->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < reply->elements; ++i) {
      if (reply->element[i] != nullptr) WipeReply(reply->element[i]);
    }
  }
}

// hiredis's own createArray, which the bounded one calls; the same for every reader.
void* (*hiredis_create_array)(const redisReadTask*, int) = nullptr;

void* CreateBoundedArray(const redisReadTask* task, int elements) {
  if (elements > kMaxReplyElements) return nullptr;
  return hiredis_create_array(task, elements);
}

}  // namespace

void BoundReplyArrays(redisReader* reader) {
  if (reader == nullptr || reader->fn == nullptr) return;
  // hiredis's functions with createArray replaced, made once from the first reader's.
  static redisReplyObjectFunctions* const bounded = [reader] {
    hiredis_create_array = reader->fn->createArray;
    auto* functions = new redisReplyObjectFunctions(*reader->fn);
    functions->createArray = &CreateBoundedArray;
    return functions;
  }();
  reader->fn = bounded;
}

std::string Endpoint::ToString() const { return absl::StrFormat("%s:%d/%d", host, port, db); }

void ReplyDeleter::operator()(redisReply* reply) const {
  if (reply == nullptr) return;
  WipeReply(reply);
  freeReplyObject(reply);
}

std::string DescribeReply(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_ERROR:
      return std::string(reply.str, reply.len);
    case REDIS_REPLY_STATUS:
      return absl::StrCat("status reply ", absl::string_view(reply.str, reply.len));
    case REDIS_REPLY_INTEGER:
      return absl::StrCat("integer reply ", reply.integer);
    case REDIS_REPLY_NIL:
      return "nil reply";
    case REDIS_REPLY_ARRAY:
      return absl::StrCat("array reply of ", reply.elements, " elements");
    case REDIS_REPLY_STRING:
      return absl::StrCat("string reply of ", reply.len, " bytes");
    default:
      return absl::StrCat("reply of type ", reply.type);
  }
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    const Endpoint& endpoint, absl::Duration connect_timeout, absl::Duration io_timeout,
    RedisCredentials* auth) {
  const std::string name = absl::StrCat("redis ", endpoint.ToString());
  std::unique_ptr<redisContext, ContextDeleter> ctx(redisConnectWithTimeout(
      endpoint.host.c_str(), endpoint.port, SocketTimeout(connect_timeout)));
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(name, ": cannot allocate a connection"));
  }
  if (ctx->err != 0) {
    return absl::UnavailableError(absl::StrCat(name, ": connect: ", ctx->errstr));
  }
  BoundReplyArrays(ctx->reader);
  if (redisSetTimeout(ctx.get(), SocketTimeout(io_timeout)) != REDIS_OK ||
      redisEnableKeepAlive(ctx.get()) != REDIS_OK) {
    return absl::UnavailableError(absl::StrCat(name, ": socket options: ", ctx->errstr));
  }
  std::unique_ptr<RedisConnection> conn(new RedisConnection(std::move(ctx), name, io_timeout));
  if (auth != nullptr) {
    // The file's credentials first; when they are refused, the last accepted (a password
    // rotated in the file before in Redis). The connection stays usable after a refused AUTH.
    std::string refused;
    for (const std::shared_ptr<const RedisAuth>& candidate : auth->Candidates()) {
      std::vector<absl::string_view> argv = {"AUTH"};
      if (!candidate->user.empty()) argv.push_back(candidate->user);
      argv.push_back(candidate->password.view());
      absl::StatusOr<ReplyPtr> reply = conn->Command(argv);
      if (!reply.ok()) return reply.status();
      if ((*reply)->type != REDIS_REPLY_ERROR) {
        auth->Accepted(candidate);
        refused.clear();
        break;
      }
      if (refused.empty()) refused = DescribeReply(**reply);
    }
    if (!refused.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(name, ": AUTH: ", refused));
    }
  }
  if (endpoint.db != 0) {
    const std::string db = absl::StrCat(endpoint.db);
    absl::StatusOr<ReplyPtr> reply = conn->Command({"SELECT", db});
    if (!reply.ok()) return reply.status();
    if ((*reply)->type == REDIS_REPLY_ERROR) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": SELECT ", db, ": ", DescribeReply(**reply)));
    }
  }
  return conn;
}

void RedisConnection::Append(absl::Span<const absl::string_view> argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (absl::string_view arg : argv) {
    ptrs.push_back(arg.data());
    lens.push_back(arg.size());
  }
  if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data()) !=
      REDIS_OK) {
    broken_ = true;  // out of memory: the output buffer no longer matches what we expect
  }
}

absl::StatusOr<ReplyPtr> RedisConnection::GetReply() {
  if (broken_) return absl::UnavailableError(absl::StrCat(name_, ": connection is broken"));
  void* raw = nullptr;
  errno = 0;
  if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || raw == nullptr) {
    const int saved_errno = errno;
    broken_ = true;
    return IoError(saved_errno);
  }
  return ReplyPtr(static_cast<redisReply*>(raw));
}

absl::StatusOr<ReplyPtr> RedisConnection::Command(absl::Span<const absl::string_view> argv) {
  Append(argv);
  return GetReply();
}

absl::Status RedisConnection::Send(absl::Span<const absl::string_view> argv) {
  Append(argv);
  if (broken_) return absl::UnavailableError(absl::StrCat(name_, ": connection is broken"));
  int done = 0;
  while (!done) {
    errno = 0;
    if (redisBufferWrite(ctx_.get(), &done) != REDIS_OK) {
      const int saved_errno = errno;
      broken_ = true;
      return IoError(saved_errno);
    }
  }
  return absl::OkStatus();
}

absl::Status RedisConnection::IoError(int saved_errno) {
  if (ctx_->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
    return absl::DeadlineExceededError(
        absl::StrCat(name_, " did not answer within ", absl::FormatDuration(io_timeout_)));
  }
  if (ctx_->err == REDIS_ERR_EOF) {
    return absl::UnavailableError(absl::StrCat(name_, ": connection closed by server"));
  }
  if (ctx_->err == REDIS_ERR_OOM) {
    return absl::UnavailableError(
        absl::StrCat(name_, ": a reply too large to read (an array of more than ",
                     kMaxReplyElements, " elements), or out of memory"));
  }
  return absl::UnavailableError(absl::StrCat(name_, ": ", ctx_->errstr));
}

absl::StatusOr<ReplyPtr> RedisConnection::NextMessage(absl::Duration wait) {
  if (broken_) return absl::UnavailableError(absl::StrCat(name_, ": connection is broken"));
  auto fail = [this] {
    const int saved = errno;
    broken_ = true;
    return IoError(saved);
  };
  void* raw = nullptr;
  if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) return fail();
  if (raw != nullptr) return ReplyPtr(static_cast<redisReply*>(raw));
  pollfd fd{ctx_->fd, POLLIN, 0};
  const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
  if (ready < 0 && errno != EINTR) return fail();
  if (ready <= 0) return ReplyPtr();
  if (redisBufferRead(ctx_.get()) != REDIS_OK ||
      redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) {
    return fail();
  }
  return ReplyPtr(static_cast<redisReply*>(raw));
}

}  // namespace tlscache::server::redis
