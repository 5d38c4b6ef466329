// The C ABI of libtlscache_openssl.so (include/tlscache/openssl.h). Nothing unwinds out of
// here: every entry point is noexcept and turns any failure into a return value.
#include <string>

#include "absl/status/status.h"
#include "plugins/openssl/config.h"
#include "plugins/openssl/plugin.h"
#include "tlscache/openssl.h"

namespace {

thread_local std::string last_error;

int Fail(const absl::Status& status) {
  try {
    last_error = std::string(status.message());
  } catch (...) {
    last_error.clear();
  }
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int tlscache_attach(SSL_CTX* ctx,
                                                           const char* config) noexcept {
  try {
    last_error.clear();
    if (ctx == nullptr) return Fail(absl::InvalidArgumentError("ctx is NULL"));
    if (config == nullptr) return Fail(absl::InvalidArgumentError("config is NULL"));
    absl::StatusOr<tlscache::openssl::PluginConfig> parsed =
        tlscache::openssl::ParsePluginConfig(config);
    if (!parsed.ok()) return Fail(parsed.status());
    absl::Status attached = tlscache::openssl::Attach(ctx, *parsed);
    if (!attached.ok()) return Fail(attached);
    return 1;
  } catch (...) {
    return Fail(absl::InternalError("out of memory"));
  }
}

__attribute__((visibility("default"))) int tlscache_prepare(SSL_CTX* ctx) noexcept {
  try {
    last_error.clear();
    if (ctx == nullptr) return Fail(absl::InvalidArgumentError("ctx is NULL"));
    if (!tlscache::openssl::IsAttached(ctx)) {
      return Fail(absl::NotFoundError("tlscache is not attached to this SSL_CTX"));
    }
    tlscache::openssl::Prepare(ctx);
    return 1;
  } catch (...) {
    return Fail(absl::InternalError("out of memory"));
  }
}

__attribute__((visibility("default"))) int tlscache_prepare_node(const char* config) noexcept {
  try {
    last_error.clear();
    if (config == nullptr) return Fail(absl::InvalidArgumentError("config is NULL"));
    absl::StatusOr<tlscache::openssl::PluginConfig> parsed =
        tlscache::openssl::ParsePluginConfig(config);
    if (!parsed.ok()) return Fail(parsed.status());
    absl::Status prepared = tlscache::openssl::PrepareNode(*parsed);
    if (!prepared.ok()) return Fail(prepared);
    return 1;
  } catch (...) {
    return Fail(absl::InternalError("out of memory"));
  }
}

__attribute__((visibility("default"))) const char* tlscache_stats(SSL_CTX* ctx) noexcept {
  thread_local std::string stats;
  try {
    last_error.clear();
    absl::StatusOr<std::string> json = tlscache::openssl::StatsJson(ctx);
    if (!json.ok()) {
      Fail(json.status());
      return nullptr;
    }
    stats = *std::move(json);
    return stats.c_str();
  } catch (...) {
    Fail(absl::InternalError("out of memory"));
    return nullptr;
  }
}

__attribute__((visibility("default"))) const char* tlscache_last_error(void) noexcept {
  return last_error.c_str();
}

__attribute__((visibility("default"))) int tlscache_abi_version(void) noexcept {
  return TLSCACHE_ABI_VERSION;
}

}  // extern "C"
