#include "plugins/openssl/client_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/synchronization/mutex.h"
#include "common/openssl_util.h"
#include "plugins/openssl/ex_data.h"

namespace tlscache::openssl {
namespace {

// SHA-256 over length-prefixed parts, so that no two sequences of parts hash alike.
class Sha256 {
 public:
  Sha256() : md_(EVP_MD_CTX_new()) {
    ok_ = md_ != nullptr && EVP_DigestInit_ex(md_.get(), EVP_sha256(), nullptr) == 1;
  }
  void Add(const void* data, size_t len) {
    const uint32_t prefix = static_cast<uint32_t>(len);
    ok_ = ok_ && EVP_DigestUpdate(md_.get(), &prefix, sizeof(prefix)) == 1 &&
          EVP_DigestUpdate(md_.get(), data, len) == 1;
  }
  void Add(absl::string_view part) { Add(part.data(), part.size()); }
  // 32 bytes. Should OpenSSL fail (out of memory), a digest no other call yields: a session
  // bound to it is found nowhere, which is the safe side.
  std::string Finish() {
    std::string digest(SHA256_DIGEST_LENGTH, '\0');
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(md_.get(), reinterpret_cast<unsigned char*>(digest.data()),
                                   &len) != 1) {
      RAND_bytes(reinterpret_cast<unsigned char*>(digest.data()), SHA256_DIGEST_LENGTH);
    }
    return digest;
  }

 private:
  OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free> md_;
  bool ok_ = false;
};

// The client CA names a context sends and the certificates it trusts, hashed: computed once
// per context (the trust store of a server can hold a whole CA bundle).
std::string ComputeCaPart(SSL_CTX* ctx) {
  Sha256 sha;
  const STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(ctx);
  for (int i = 0; i < sk_X509_NAME_num(names); ++i) {
    unsigned char* der = nullptr;
    const int len = i2d_X509_NAME(sk_X509_NAME_value(names, i), &der);
    if (len > 0) sha.Add(der, static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  std::vector<std::string> trusted;  // sorted: the same store in any order hashes alike
  if (X509_STORE* store = SSL_CTX_get_cert_store(ctx)) {
    STACK_OF(X509)* certs = X509_STORE_get1_all_certs(store);
    for (int i = 0; i < sk_X509_num(certs); ++i) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int md_len = 0;
      if (X509_digest(sk_X509_value(certs, i), EVP_sha256(), md, &md_len) == 1) {
        trusted.emplace_back(reinterpret_cast<const char*>(md), md_len);
      }
    }
    sk_X509_pop_free(certs, X509_free);
  }
  std::sort(trusted.begin(), trusted.end());
  for (const std::string& cert : trusted) sha.Add(cert);
  return sha.Finish();
}

void FreeCaPart(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                void* /*argp*/) {
  delete static_cast<std::string*>(ptr);
}

// Reserved with tlscache's other slots (ReserveClientAuthSlot), before the contexts are made.
int CaPartIndex() {
  static const int index = NewContextIndex(FreeCaPart);
  return index;
}

absl::Mutex ca_part_mu(absl::kConstInit);

// Handshakes only read the part kept on their context (ClientAuthDigest(SSL_CTX*) at attach
// keeps it), under a shared lock; it is computed under the exclusive one at most once.
std::string CaPart(SSL_CTX* ctx) {
  if (CaPartIndex() < 0) return ComputeCaPart(ctx);
  {
    absl::ReaderMutexLock lock(&ca_part_mu);
    if (auto* part = static_cast<std::string*>(SSL_CTX_get_ex_data(ctx, CaPartIndex()))) {
      return *part;
    }
  }
  absl::MutexLock lock(&ca_part_mu);
  auto* part = static_cast<std::string*>(SSL_CTX_get_ex_data(ctx, CaPartIndex()));
  if (part == nullptr) {
    part = new std::string(ComputeCaPart(ctx));
    if (SSL_CTX_set_ex_data(ctx, CaPartIndex(), part) != 1) {
      std::string computed = std::move(*part);
      delete part;
      return computed;
    }
  }
  return *part;
}

std::string Digest(int mode, int depth, SSL_CTX* ctx) {
  if ((mode & SSL_VERIFY_PEER) == 0 || ctx == nullptr) return "";
  Sha256 sha;
  sha.Add("tlscache client auth v1");
  sha.Add(&mode, sizeof(mode));
  sha.Add(&depth, sizeof(depth));
  sha.Add(CaPart(ctx));
  return sha.Finish();
}

std::string Bound(absl::string_view label, absl::string_view value, absl::string_view digest) {
  Sha256 sha;
  sha.Add(label);
  sha.Add(value);
  sha.Add(digest);
  return sha.Finish();
}

}  // namespace

void ReserveClientAuthSlot() { (void)CaPartIndex(); }

std::string ClientAuthDigest(SSL* ssl) {
  return Digest(SSL_get_verify_mode(ssl), SSL_get_verify_depth(ssl), SSL_get_SSL_CTX(ssl));
}

std::string ClientAuthDigest(SSL_CTX* ctx) {
  return Digest(SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_depth(ctx), ctx);
}

std::string FarmSessionKey(absl::string_view session_id, absl::string_view digest) {
  if (digest.empty()) return std::string(session_id);
  return Bound("tlscache session key v1", session_id, digest);
}

std::string FarmSessionIdContext(absl::string_view sid_ctx, absl::string_view digest) {
  if (digest.empty()) return std::string(sid_ctx);
  return Bound("tlscache sid_ctx v1", sid_ctx, digest);  // SHA-256: 32 bytes, the most allowed
}

void FarmTicketHmacKey(const std::array<uint8_t, 32>& hmac_key, absl::string_view digest,
                       std::array<uint8_t, 32>* out) {
  if (digest.empty()) {
    *out = hmac_key;
    return;
  }
  unsigned int len = 0;
  HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
       reinterpret_cast<const unsigned char*>(digest.data()), digest.size(), out->data(), &len);
}

}  // namespace tlscache::openssl
