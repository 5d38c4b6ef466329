// Owners for OpenSSL handles: each handle has exactly one, which frees it.
#ifndef TLSCACHE_COMMON_OPENSSL_UTIL_H_
#define TLSCACHE_COMMON_OPENSSL_UTIL_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace tlscache {

struct SslSessionDeleter {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using SslSessionPtr = std::unique_ptr<SSL_SESSION, SslSessionDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// The queued OpenSSL errors of this thread as one line (and clears them), for messages.
std::string ConsumeOpenSslErrors();

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_OPENSSL_UTIL_H_
