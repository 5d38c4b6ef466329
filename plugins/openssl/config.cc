#include "plugins/openssl/config.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cache_target.h"
#include "common/channel_tls.h"
#include "common/validation.h"

namespace tlscache::openssl {
namespace {

constexpr size_t kMaxConfigBytes = 16 << 10;
constexpr size_t kMaxValueBytes = 4096;

absl::Status Bad(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", why));
}

// `value` as a whole number of `unit`s within min..max.
absl::StatusOr<int> Count(absl::string_view key, absl::string_view value, int min, int max,
                          absl::string_view unit) {
  int count = 0;
  if (!absl::SimpleAtoi(value, &count) || count < min || count > max) {
    return Bad(key,
               absl::StrCat("'", value, "' is not a number of ", unit, " in ", min, "..", max));
  }
  return count;
}

absl::Status Apply(absl::string_view key, absl::string_view value, PluginConfig& config) {
  if (value.size() > kMaxValueBytes) return Bad(key, "value too long");
  if (key == "addr") {
    if (absl::StatusOr<client::CacheTarget> target = client::ParseCacheTarget(value);
        !target.ok()) {
      return Bad(key, target.status().message());
    }
    config.addr = std::string(value);
  } else if (key == "namespace") {
    if (absl::Status s = ValidateNamespace(value); !s.ok()) return s;
    config.ns = std::string(value);
  } else if (key == "timeout_ms") {
    absl::StatusOr<int> ms = Count(key, value, 1, 1000, "milliseconds");
    if (!ms.ok()) return ms.status();
    config.timeout = absl::Milliseconds(*ms);
  } else if (key == "connect_timeout_ms") {
    absl::StatusOr<int> ms = Count(key, value, 0, 10000, "milliseconds");
    if (!ms.ok()) return ms.status();
    config.connect_timeout = absl::Milliseconds(*ms);
  } else if (key == "sid_ctx") {
    if (value.empty() || value.size() > 32) return Bad(key, "must be 1 to 32 bytes");
    config.sid_ctx = std::string(value);
  } else if (key == "tickets") {
    if (value == "off") {
      config.tickets = TicketMode::kOff;
    } else if (value == "farm") {
      config.tickets = TicketMode::kFarm;
    } else {
      return Bad(key, absl::StrCat("'", value, "' is not off or farm"));
    }
  } else if (key == "near_cache_mb") {
    absl::StatusOr<int> mb = Count(key, value, 0, 4096, "MiB");
    if (!mb.ok()) return mb.status();
    config.near_cache_bytes = static_cast<size_t>(*mb) << 20;
  } else if (key == "stats_interval") {
    absl::StatusOr<int> seconds = Count(key, value, 0, 86400, "seconds");
    if (!seconds.ok()) return seconds.status();
    config.stats_interval = absl::Seconds(*seconds);
  } else if (key == "metrics_file") {
    if (!absl::StartsWith(value, "/") || !absl::EndsWith(value, ".prom") || value.size() > 4000) {
      return Bad(key, absl::StrCat("'", value, "' is not an absolute path ending in .prom"));
    }
    config.metrics_file = std::string(value);
  } else if (key == "ca_file") {
    config.ca_file = std::string(value);
  } else if (key == "cert_file") {
    config.cert_file = std::string(value);
  } else if (key == "key_file") {
    config.key_file = std::string(value);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

absl::Status Check(const PluginConfig& config) {
  if (config.addr.empty()) return absl::InvalidArgumentError("addr: missing (HOST:PORT)");
  return CheckTlsFileSet(TlsEnd::kClient, {"cert_file", !config.cert_file.empty()},
                         {"key_file", !config.key_file.empty()},
                         {"ca_file", !config.ca_file.empty()});
}

}  // namespace

absl::StatusOr<PluginConfig> ParsePluginConfig(absl::string_view text) {
  if (text.size() > kMaxConfigBytes) return absl::InvalidArgumentError("config too long");
  PluginConfig config;
  config.tickets = TicketMode::kOff;
  std::set<std::string> seen;
  for (absl::string_view item : absl::StrSplit(text, ';', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", item, "' is not key=value"));
    }
    const absl::string_view key = absl::StripAsciiWhitespace(item.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(item.substr(eq + 1));
    if (!seen.insert(std::string(key)).second) {
      return absl::InvalidArgumentError(absl::StrCat("key '", key, "' given twice"));
    }
    if (absl::Status s = Apply(key, value, config); !s.ok()) return s;
  }
  if (absl::Status s = Check(config); !s.ok()) return s;
  return config;
}

absl::StatusOr<PluginConfig> PluginConfigFromEnvironment(char** environ) {
  constexpr absl::string_view kPrefix = "TLSCACHE_";
  PluginConfig config;
  config.tickets = TicketMode::kApplication;
  bool has_addr = false;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view var(*entry);
    if (!absl::StartsWith(var, kPrefix)) continue;
    const size_t eq = var.find('=');
    if (eq == absl::string_view::npos) continue;
    const std::string name(var.substr(0, eq));
    const std::string key = absl::AsciiStrToLower(name.substr(kPrefix.size()));
    const absl::string_view value = var.substr(eq + 1);
    if (absl::Status s = Apply(key, value, config); !s.ok()) {
      // Name the variable the operator set, not the key it maps to.
      absl::string_view why = s.message();
      if (absl::StartsWith(why, "unknown key")) {
        return absl::InvalidArgumentError(absl::StrCat("unknown variable ", name));
      }
      absl::ConsumePrefix(&why, absl::StrCat(key, ": "));
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", why));
    }
    has_addr = has_addr || key == "addr";
  }
  if (!has_addr) return absl::NotFoundError("TLSCACHE_ADDR is not set");
  if (absl::Status s = Check(config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("TLSCACHE_* variables: ", s.message()));
  }
  return config;
}

}  // namespace tlscache::openssl
