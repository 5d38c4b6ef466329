// Owners for OpenSSL handles: each handle has exactly one, which frees it.
#ifndef TLSCACHE_COMMON_OPENSSL_UTIL_H_
#define TLSCACHE_COMMON_OPENSSL_UTIL_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace tlscache {

// Frees an OpenSSL object with its own free function.
template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
template <typename T, auto Free>
using OpenSslPtr = std::unique_ptr<T, OpenSslDeleter<Free>>;

using SslSessionPtr = OpenSslPtr<SSL_SESSION, SSL_SESSION_free>;
using SslCtxPtr = OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = OpenSslPtr<SSL, SSL_free>;
using PkeyPtr = OpenSslPtr<EVP_PKEY, EVP_PKEY_free>;
using X509Ptr = OpenSslPtr<X509, X509_free>;
using BioPtr = OpenSslPtr<BIO, BIO_free>;
using CipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// The queued OpenSSL errors of this thread as one line (and clears them), for messages.
std::string ConsumeOpenSslErrors();

// 12 random bytes in hex: an identifier that no other process (nor this one restarted) picks.
std::string RandomId();

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_OPENSSL_UTIL_H_
