#include "tests/testing/tls_pair.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "tests/testing/test_pki.h"

namespace tlscache::testing {
namespace {

using Pkey = PkeyPtr;
using Cert = X509Ptr;

// The certificate doubles as its own CA, so a test can trust exactly it.
Cert SelfSigned(EVP_PKEY* key, const char* cn) {
  return MakeCertificate(key, cn, "DNS:localhost,IP:127.0.0.1", /*ca=*/true, nullptr, nullptr);
}

}  // namespace

absl::Status WriteSelfSignedPem(const std::string& cn, const std::string& cert_path,
                                const std::string& key_path) {
  Pkey key(EVP_EC_gen("P-256"));
  Cert cert = SelfSigned(key.get(), cn.c_str());
  FILE* c = std::fopen(cert_path.c_str(), "w");
  FILE* k = std::fopen(key_path.c_str(), "w");
  const bool ok = c != nullptr && k != nullptr && PEM_write_X509(c, cert.get()) == 1 &&
                  PEM_write_PrivateKey(k, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (c != nullptr) std::fclose(c);
  if (k != nullptr) std::fclose(k);
  return ok ? absl::OkStatus() : absl::InternalError("cannot write PEM files");
}

SslCtxPtr MakeServerContext() {
  Pkey key(EVP_EC_gen("P-256"));
  Cert cert = SelfSigned(key.get(), "localhost");
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_use_certificate(ctx.get(), cert.get());
  SSL_CTX_use_PrivateKey(ctx.get(), key.get());
  return ctx;
}

SslCtxPtr MakeClientContext(int version) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT);
  return ctx;
}

absl::StatusOr<Handshake> RunHandshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx,
                                       SSL_SESSION* session, bool leave_open) {
  Handshake h;
  h.client.reset(SSL_new(client_ctx));
  h.server.reset(SSL_new(server_ctx));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  if (BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) != 1) {
    return absl::InternalError("BIO_new_bio_pair failed");
  }
  SSL_set_bio(h.client.get(), client_bio, client_bio);
  SSL_set_bio(h.server.get(), server_bio, server_bio);
  SSL_set_connect_state(h.client.get());
  SSL_set_accept_state(h.server.get());
  if (session != nullptr) SSL_set_session(h.client.get(), session);
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 100 && !(client_done && server_done); ++round) {
    for (auto [ssl, done] :
         {std::pair{h.client.get(), &client_done}, std::pair{h.server.get(), &server_done}}) {
      if (*done) continue;
      const int r = SSL_do_handshake(ssl);
      if (r == 1) {
        *done = true;
      } else {
        const int err = SSL_get_error(ssl, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          return absl::InternalError(absl::StrCat("handshake failed: ", ConsumeOpenSslErrors()));
        }
      }
    }
  }
  if (!client_done || !server_done) return absl::InternalError("handshake did not finish");
  // TLS 1.3 tickets arrive after the handshake: let the client read them.
  char byte;
  SSL_write(h.server.get(), "x", 1);
  SSL_read(h.client.get(), &byte, 1);
  h.resumed = SSL_session_reused(h.server.get()) == 1;
  if (leave_open) return h;
  // A connection freed without a clean shutdown marks its session bad (and OpenSSL removes
  // it from both caches): close both ends as a well-behaved client and server would.
  SSL_shutdown(h.client.get());
  SSL_shutdown(h.server.get());
  SSL_shutdown(h.client.get());
  return h;
}

absl::Status EndWithFatalAlert(Handshake& h) {
  if (SSL_write(h.client.get(), "request", 7) != 7) return absl::InternalError("write failed");
  // The record as it crosses to the server, its last byte flipped, put back on its way.
  BIO* to_server = SSL_get_rbio(h.server.get());
  BIO* from_client = SSL_get_wbio(h.client.get());
  std::string record(static_cast<size_t>(BIO_ctrl_pending(to_server)), '\0');
  if (record.empty() || BIO_read(to_server, record.data(), static_cast<int>(record.size())) !=
                            static_cast<int>(record.size())) {
    return absl::InternalError("no record to change");
  }
  record.back() = static_cast<char>(record.back() ^ 0x01);
  BIO_write(from_client, record.data(), static_cast<int>(record.size()));
  char byte;
  const int r = SSL_read(h.server.get(), &byte, 1);
  if (r > 0 || SSL_get_error(h.server.get(), r) != SSL_ERROR_SSL) {
    return absl::InternalError("the server read the changed record");
  }
  ERR_clear_error();
  return absl::OkStatus();
}

}  // namespace tlscache::testing
