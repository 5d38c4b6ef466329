#include "tools/keysync/key_files.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tlscache::keysync {
namespace {

constexpr char kNginxConf[] = "ssl_session_ticket_keys.conf";
constexpr char kHaproxyFile[] = "tls-ticket-keys";
constexpr char kApacheFile[] = "ticket.key";
constexpr absl::string_view kNginxSuffix = ".key";

// The ring's keys, ACTIVE first, then PENDING, then the decrypt-only ones newest first.
std::vector<size_t> ByUse(const client::TicketKeySnapshot& ring) {
  std::vector<size_t> order;
  for (size_t i = 0; i < ring.keys.size(); ++i) order.push_back(i);
  auto rank = [&](size_t i) {
    if (i == ring.active) return 0;
    return ring.not_after_unix_ms[i] == 0 ? 1 : 2;  // PENDING has no end yet
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    return ring.not_after_unix_ms[a] > ring.not_after_unix_ms[b];
  });
  return order;
}

std::string NameHex(const TicketKeyRecord& key) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(key.name.data()), key.name.size()));
}

// Concatenates the parts into one secret buffer.
SecretBytes Join(std::initializer_list<absl::string_view> parts) {
  size_t size = 0;
  for (absl::string_view part : parts) size += part.size();
  SecretBytes out(size);
  size_t at = 0;
  for (absl::string_view part : parts) {
    if (part.empty()) continue;  // an empty buffer's data() may be null
    std::memcpy(out.mutable_data() + at, part.data(), part.size());
    at += part.size();
  }
  return out;
}

template <size_t N>
absl::string_view Bytes(const std::array<uint8_t, N>& a, size_t n = N) {
  return absl::string_view(reinterpret_cast<const char*>(a.data()), n);
}

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  if (name == "nginx") return Format::kNginx;
  if (name == "haproxy") return Format::kHaproxy;
  if (name == "apache") return Format::kApache;
  return absl::InvalidArgumentError(
      absl::StrCat("--format=", name, ": must be nginx, haproxy or apache"));
}

std::vector<const TicketKeyRecord*> HaproxyKeys(const client::TicketKeySnapshot& ring) {
  const std::vector<size_t> order = ByUse(ring);
  const TicketKeyRecord* active = &ring.keys[order[0]];
  const TicketKeyRecord* pending =
      order.size() > 1 && ring.not_after_unix_ms[order[1]] == 0 ? &ring.keys[order[1]] : active;
  const TicketKeyRecord* previous = active;
  for (size_t i : order) {
    if (ring.not_after_unix_ms[i] != 0) {
      previous = &ring.keys[i];
      break;
    }
  }
  return {previous, active, pending};
}

SecretBytes HaproxyKey(const TicketKeyRecord& key) {
  SecretBytes raw = Join({Bytes(key.name), Bytes(key.aes_key), Bytes(key.hmac_key)});
  SecretBytes encoded(4 * ((raw.size() + 2) / 3) + 1);  // and EVP_EncodeBlock's NUL
  const int n = EVP_EncodeBlock(encoded.mutable_data(), raw.data(), static_cast<int>(raw.size()));
  SecretBytes line(encoded.data(), static_cast<size_t>(n));
  return line;
}

std::vector<KeyFile> RenderRing(const client::TicketKeySnapshot& ring, Format format,
                                const std::string& dir) {
  std::vector<KeyFile> files;
  switch (format) {
    case Format::kNginx: {
      std::string conf = "# tlscache-keysync: the farm's ticket keys, ACTIVE first\n";
      for (size_t i : ByUse(ring)) {
        const TicketKeyRecord& key = ring.keys[i];
        const std::string name = absl::StrCat(NameHex(key), kNginxSuffix);
        files.push_back({name, Join({Bytes(key.name), Bytes(key.hmac_key), Bytes(key.aes_key)})});
        absl::StrAppend(&conf, "ssl_session_ticket_key ", dir, "/", name, ";\n");
      }
      files.push_back({kNginxConf, SecretBytes(conf)});
      break;
    }
    case Format::kHaproxy: {
      SecretBytes lines;
      for (const TicketKeyRecord* key : HaproxyKeys(ring)) {
        SecretBytes line = HaproxyKey(*key);
        lines = Join({lines.view(), line.view(), "\n"});
      }
      files.push_back({kHaproxyFile, std::move(lines)});
      break;
    }
    case Format::kApache: {
      const TicketKeyRecord& key = *ring.Active();
      files.push_back(
          {kApacheFile, Join({Bytes(key.name), Bytes(key.hmac_key, 16), Bytes(key.aes_key, 16)})});
      break;
    }
  }
  return files;
}

bool IsKeyFileName(absl::string_view file_name, Format format) {
  switch (format) {
    case Format::kNginx:
      return file_name == kNginxConf ||
             (absl::EndsWith(file_name, kNginxSuffix) &&
              file_name.size() == 2 * kTicketKeyNameBytes + kNginxSuffix.size());
    case Format::kHaproxy:
      return file_name == kHaproxyFile;
    case Format::kApache:
      return file_name == kApacheFile;
  }
  return false;
}

}  // namespace tlscache::keysync
