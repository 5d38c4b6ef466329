// Sealer: authenticated encryption of what the cache service stores (serialized sessions and
// ticket key rings), so that a copy of the store (a Redis dump, a replica, a backup) reveals no
// master secret and no ticket key.
//
// Sealed format (all lengths fixed; 45 bytes of overhead):
//
//   format (1) | key id (4) | nonce (24) | AES-256-GCM ciphertext | tag (16)
//
// The key id is the first 4 bytes of SHA-256("tlscache seal key id" || key), so Open picks the
// key without trial decryption. Each value is sealed under its own subkey,
// HMAC-SHA256(key, "tlscache seal v1" || nonce[0..12)), with nonce[12..24) as the GCM nonce:
// 192 random bits per value keep nonce reuse out of reach however many values one key seals
// (a plain random 96-bit GCM nonce is good for about 2^32 values per key, a day of a busy farm).
//
// The associated data binds a value to where it was stored: its kind (session or ring), its
// namespace and its session ID, and the header bytes; with format 2, to the sealer's scope too
// (the deployment and the Redis database: server/store/store_factory.h), so that deployments
// sharing a Redis and a seal key cannot open each other's values. Format 1 (no scope) is the
// default deployment on database 0, as sealed before scopes existed. A value copied under
// another session ID, namespace, kind or scope fails to open, as does a tampered or truncated
// one.
//
// Keys: the first seals, every key opens, so keys rotate by putting the new key first and
// dropping the old one once the entries it sealed have expired.
//
// Thread-safety: Seal and Open may be called from any thread at once.
#ifndef TLSCACHE_SERVER_SECURITY_SEALER_H_
#define TLSCACHE_SERVER_SECURITY_SEALER_H_

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret_bytes.h"

namespace tlscache::server {

inline constexpr size_t kSealKeyBytes = 32;
inline constexpr size_t kSealKeyIdBytes = 4;
inline constexpr size_t kSealNonceBytes = 24;
inline constexpr size_t kSealTagBytes = 16;
inline constexpr size_t kSealHeaderBytes = 1 + kSealKeyIdBytes + kSealNonceBytes;
inline constexpr size_t kSealOverheadBytes = kSealHeaderBytes + kSealTagBytes;
inline constexpr int kMaxSealKeys = 16;

// What a sealed value is; part of the associated data.
enum class SealedKind : uint8_t { kSession = 1, kRing = 2, kChanges = 3 };

// The seal key file: one key per line, 64 hex digits (e.g. from `openssl rand -hex 32`).
// Blank lines and lines starting with '#' are skipped. At least one key, at most
// kMaxSealKeys, no key twice. Errors name the line, never a key.
absl::StatusOr<std::vector<SecretBytes>> ParseSealKeys(absl::string_view text);

class Sealer {
 public:
  // `scope` empty: format 1; otherwise format 2, bound to it (at most 255 bytes).
  static absl::StatusOr<std::unique_ptr<Sealer>> Create(std::vector<SecretBytes> keys,
                                                        std::string scope = "");
  ~Sealer();

  // The sealed form of `plaintext` (not secret: it may be stored and logged as bytes).
  absl::StatusOr<std::string> Seal(SealedKind kind, absl::string_view ns, absl::string_view id,
                                   absl::string_view plaintext) const;

  // The plaintext, or DataLoss saying why not: malformed, an unknown key, or it does not
  // authenticate under (kind, ns, id).
  absl::StatusOr<SecretBytes> Open(SealedKind kind, absl::string_view ns, absl::string_view id,
                                   absl::string_view sealed) const;

  size_t key_count() const { return keys_.size(); }

 private:
  struct Key {
    std::array<uint8_t, kSealKeyIdBytes> id;
    SecretBytes bytes;
  };
  Sealer(std::vector<Key> keys, EVP_CIPHER* cipher, std::string scope)
      : keys_(std::move(keys)), cipher_(cipher), scope_(std::move(scope)) {}

  const Key* FindKey(const uint8_t* id) const;

  const std::vector<Key> keys_;
  EVP_CIPHER* const cipher_;  // fetched once: a fetch per call takes a global lock
  const std::string scope_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SECURITY_SEALER_H_
