#include "server/security/sealer.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/openssl_util.h"

namespace tlscache::server {
namespace {

// 1: bound to (kind, namespace, id); 2: and to a scope (a deployment and database).
constexpr uint8_t kUnscopedFormat = 1;
constexpr uint8_t kScopedFormat = 2;
constexpr char kKeyIdLabel[] = "tlscache seal key id";
constexpr char kSubkeyLabel[] = "tlscache seal v1";
constexpr size_t kGcmNonceBytes = 12;
// Sessions are bounded far below this; it keeps every length an int for OpenSSL.
constexpr size_t kMaxPlaintextBytes = size_t{1} << 24;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// kind | len(ns) | ns | len(id) | id | header [| len(scope) | scope]: unambiguous, since every
// length is bounded below 256 (the caller's validation, ValidBounds) and the header's first
// byte says whether a scope follows.
std::string AssociatedData(SealedKind kind, absl::string_view ns, absl::string_view id,
                           const uint8_t* header, absl::string_view scope) {
  std::string ad;
  ad.reserve(4 + ns.size() + id.size() + kSealHeaderBytes + scope.size());
  ad.push_back(static_cast<char>(kind));
  ad.push_back(static_cast<char>(ns.size()));
  ad.append(ns.data(), ns.size());
  ad.push_back(static_cast<char>(id.size()));
  ad.append(id.data(), id.size());
  ad.append(reinterpret_cast<const char*>(header), kSealHeaderBytes);
  if (header[0] == kScopedFormat) {
    ad.push_back(static_cast<char>(scope.size()));
    ad.append(scope.data(), scope.size());
  }
  return ad;
}

// The per-value key: HMAC-SHA256(key, label || nonce[0..12)).
bool DeriveSubkey(const SecretBytes& key, const uint8_t* nonce, SecretBytes* subkey) {
  uint8_t input[sizeof(kSubkeyLabel) - 1 + kGcmNonceBytes];
  std::memcpy(input, kSubkeyLabel, sizeof(kSubkeyLabel) - 1);
  std::memcpy(input + sizeof(kSubkeyLabel) - 1, nonce, kGcmNonceBytes);
  *subkey = SecretBytes(kSealKeyBytes);
  unsigned int length = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), input, sizeof(input),
              subkey->mutable_data(), &length) != nullptr &&
         length == kSealKeyBytes;
}

bool ValidBounds(absl::string_view ns, absl::string_view id) {
  return ns.size() <= UINT8_MAX && id.size() <= UINT8_MAX;
}

}  // namespace

absl::StatusOr<std::vector<SecretBytes>> ParseSealKeys(absl::string_view text) {
  std::vector<SecretBytes> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.size() != 2 * kSealKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": a key is ", 2 * kSealKeyBytes,
                       " hex digits (32 bytes), this line has ", line.size(), " characters"));
    }
    SecretBytes key(kSealKeyBytes);
    for (size_t i = 0; i < kSealKeyBytes; ++i) {
      const int high = HexValue(line[2 * i]);
      const int low = HexValue(line[2 * i + 1]);
      if (high < 0 || low < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": a key is hex digits only"));
      }
      key.mutable_data()[i] = static_cast<uint8_t>(high << 4 | low);
    }
    for (const SecretBytes& other : keys) {
      if (CRYPTO_memcmp(other.data(), key.data(), kSealKeyBytes) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number, ": the same key appears twice"));
      }
    }
    if (keys.size() == kMaxSealKeys) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": more than ", kMaxSealKeys, " keys"));
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError("no key in it");
  return keys;
}

absl::StatusOr<std::unique_ptr<Sealer>> Sealer::Create(std::vector<SecretBytes> keys,
                                                      std::string scope) {
  if (keys.empty()) return absl::InvalidArgumentError("sealing needs at least one key");
  if (scope.size() > UINT8_MAX) return absl::InvalidArgumentError("seal scope too long");
  std::vector<Key> sealer_keys;
  for (SecretBytes& bytes : keys) {
    if (bytes.size() != kSealKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("a seal key is ", kSealKeyBytes, " bytes, not ", bytes.size()));
    }
    // The id is public: it only says which key sealed a value.
    SecretBytes input(sizeof(kKeyIdLabel) - 1 + bytes.size());
    std::memcpy(input.mutable_data(), kKeyIdLabel, sizeof(kKeyIdLabel) - 1);
    std::memcpy(input.mutable_data() + sizeof(kKeyIdLabel) - 1, bytes.data(), bytes.size());
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (!EVP_Digest(input.data(), input.size(), digest, nullptr, EVP_sha256(), nullptr)) {
      return absl::InternalError("cannot compute a seal key id");
    }
    Key key;
    std::memcpy(key.id.data(), digest, kSealKeyIdBytes);
    key.bytes = std::move(bytes);
    for (const Key& other : sealer_keys) {
      if (other.id == key.id) {
        return absl::InvalidArgumentError("two seal keys share a key id; generate another key");
      }
    }
    sealer_keys.push_back(std::move(key));
  }
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) return absl::InternalError("AES-256-GCM is not available");
  return std::unique_ptr<Sealer>(new Sealer(std::move(sealer_keys), cipher, std::move(scope)));
}

Sealer::~Sealer() { EVP_CIPHER_free(cipher_); }

const Sealer::Key* Sealer::FindKey(const uint8_t* id) const {
  for (const Key& key : keys_) {
    if (std::memcmp(key.id.data(), id, kSealKeyIdBytes) == 0) return &key;
  }
  return nullptr;
}

absl::StatusOr<std::string> Sealer::Seal(SealedKind kind, absl::string_view ns,
                                         absl::string_view id, absl::string_view plaintext) const {
  if (plaintext.size() > kMaxPlaintextBytes || !ValidBounds(ns, id)) {
    return absl::InvalidArgumentError("value too large to seal");
  }
  const Key& key = keys_.front();
  std::string sealed(kSealOverheadBytes + plaintext.size(), '\0');
  auto* out = reinterpret_cast<uint8_t*>(&sealed[0]);
  out[0] = scope_.empty() ? kUnscopedFormat : kScopedFormat;
  std::memcpy(out + 1, key.id.data(), kSealKeyIdBytes);
  uint8_t* nonce = out + 1 + kSealKeyIdBytes;
  if (RAND_bytes(nonce, kSealNonceBytes) != 1) {
    return absl::InternalError("no randomness for a seal nonce");
  }
  SecretBytes subkey;
  if (!DeriveSubkey(key.bytes, nonce, &subkey)) return absl::InternalError("cannot derive a key");
  const std::string ad = AssociatedData(kind, ns, id, out, scope_);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  uint8_t* ciphertext = out + kSealHeaderBytes;
  int length = 0;
  if (ctx == nullptr ||
      !EVP_EncryptInit_ex2(ctx.get(), cipher_, subkey.data(), nonce + kGcmNonceBytes, nullptr) ||
      !EVP_EncryptUpdate(ctx.get(), nullptr, &length, reinterpret_cast<const uint8_t*>(ad.data()),
                         static_cast<int>(ad.size())) ||
      !EVP_EncryptUpdate(ctx.get(), ciphertext, &length,
                         reinterpret_cast<const uint8_t*>(plaintext.data()),
                         static_cast<int>(plaintext.size())) ||
      !EVP_EncryptFinal_ex(ctx.get(), ciphertext + length, &length) ||
      !EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kSealTagBytes,
                           ciphertext + plaintext.size())) {
    ConsumeOpenSslErrors();
    return absl::InternalError("AES-256-GCM sealing failed");
  }
  return sealed;
}

absl::StatusOr<SecretBytes> Sealer::Open(SealedKind kind, absl::string_view ns,
                                         absl::string_view id, absl::string_view sealed) const {
  if (sealed.size() < kSealOverheadBytes ||
      sealed.size() - kSealOverheadBytes > kMaxPlaintextBytes) {
    return absl::DataLossError(
        absl::StrCat("sealed value of ", sealed.size(), " bytes is not of the sealed format"));
  }
  const auto* in = reinterpret_cast<const uint8_t*>(sealed.data());
  if (in[0] != (scope_.empty() ? kUnscopedFormat : kScopedFormat)) {
    return absl::DataLossError(
        in[0] == kUnscopedFormat || in[0] == kScopedFormat
            ? "sealed value is of another deployment or database"
            : absl::StrCat("sealed value has unknown format ", int{in[0]}));
  }
  if (!ValidBounds(ns, id)) return absl::DataLossError("namespace or id out of bounds");
  const Key* key = FindKey(in + 1);
  if (key == nullptr) return absl::DataLossError("sealed with a key that is not configured");
  const uint8_t* nonce = in + 1 + kSealKeyIdBytes;
  SecretBytes subkey;
  if (!DeriveSubkey(key->bytes, nonce, &subkey)) return absl::InternalError("cannot derive a key");
  const std::string ad = AssociatedData(kind, ns, id, in, scope_);
  const size_t plaintext_size = sealed.size() - kSealOverheadBytes;
  const uint8_t* ciphertext = in + kSealHeaderBytes;
  // The tag is copied: OpenSSL takes it through a non-const pointer.
  uint8_t tag[kSealTagBytes];
  std::memcpy(tag, ciphertext + plaintext_size, kSealTagBytes);
  // One spare byte: a zero-length SecretBytes has no buffer to write into.
  SecretBytes plaintext(plaintext_size + 1);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  int final_length = 0;
  if (ctx == nullptr ||
      !EVP_DecryptInit_ex2(ctx.get(), cipher_, subkey.data(), nonce + kGcmNonceBytes, nullptr) ||
      !EVP_DecryptUpdate(ctx.get(), nullptr, &length, reinterpret_cast<const uint8_t*>(ad.data()),
                         static_cast<int>(ad.size())) ||
      !EVP_DecryptUpdate(ctx.get(), plaintext.mutable_data(), &length, ciphertext,
                         static_cast<int>(plaintext_size)) ||
      !EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSealTagBytes, tag) ||
      EVP_DecryptFinal_ex(ctx.get(), plaintext.mutable_data() + length, &final_length) <= 0) {
    ConsumeOpenSslErrors();
    return absl::DataLossError("sealed value does not authenticate under its namespace and id");
  }
  return SecretBytes(plaintext.data(), plaintext_size);
}

}  // namespace tlscache::server
