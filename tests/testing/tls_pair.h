// In-memory TLS for unit tests: a throwaway self-signed certificate, server and client
// contexts, and a handshake between two SSL objects over a BIO pair (no sockets, no threads).
#ifndef TLSCACHE_TESTS_TESTING_TLS_PAIR_H_
#define TLSCACHE_TESTS_TESTING_TLS_PAIR_H_

#include <openssl/ssl.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/openssl_util.h"

namespace tlscache::testing {

// A fresh P-256 key and a self-signed certificate for CN `cn` with SANs DNS:localhost and
// IP:127.0.0.1, written as PEM files (the certificate also serves as its own CA).
absl::Status WriteSelfSignedPem(const std::string& cn, const std::string& cert_path,
                                const std::string& key_path);

// A server context with a fresh P-256 key and self-signed certificate, TLS 1.2 to 1.3.
SslCtxPtr MakeServerContext();
// A client context that accepts any certificate, pinned to `version` (e.g. TLS1_2_VERSION).
SslCtxPtr MakeClientContext(int version);

struct Handshake {
  SslPtr client;
  SslPtr server;
  bool resumed = false;
};
// Runs a full handshake, offering `session` (may be null) from the client. Error if the
// handshake fails. Both ends then shut down cleanly, unless `leave_open`.
absl::StatusOr<Handshake> RunHandshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx,
                                       SSL_SESSION* session, bool leave_open = false);

// On a handshake left open: the client sends a record whose last byte is flipped; the server
// cannot authenticate it and ends the connection with a fatal alert (bad_record_mac). Ok once
// the server has failed that way.
absl::Status EndWithFatalAlert(Handshake& handshake);

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_TLS_PAIR_H_
