/* A program that uses the installed libtlscache-openssl-dev as any C server would: two
 * server contexts (two nodes of a farm) attached to one cache service, and a TLS 1.2 client
 * whose session, made by the first, must resume on the second.
 *   resume ADDR CERT KEY   exit 0 once the second node resumed the first node's session */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <tlscache/openssl.h>

static SSL_CTX *Node(const char *config, const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return NULL;
  }
  if (!tlscache_attach(ctx, config)) {
    fprintf(stderr, "tlscache_attach: %s\n", tlscache_last_error());
    return NULL;
  }
  return ctx;
}

/* One handshake in memory; returns whether it resumed, -1 if it failed. The client's
 * session is then in *session. */
static int Handshake(SSL_CTX *client_ctx, SSL_CTX *server_ctx, SSL_SESSION **session) {
  SSL *client = SSL_new(client_ctx), *server = SSL_new(server_ctx);
  BIO *client_bio, *server_bio;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  if (*session != NULL) SSL_set_session(client, *session);
  int client_done = 0, server_done = 0, result = -1;
  for (int i = 0; i < 1000 && !(client_done && server_done); ++i) {
    if (!client_done) {
      int r = SSL_do_handshake(client);
      if (r == 1) client_done = 1;
      else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ) break;
    }
    if (!server_done) {
      int r = SSL_do_handshake(server);
      if (r == 1) server_done = 1;
      else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ) break;
    }
  }
  if (client_done && server_done) {
    result = SSL_session_reused(client);
    /* Closed cleanly, as after close_notify both ways: a connection freed otherwise has its
     * session removed from the caches (tlscache's too). */
    SSL_set_shutdown(client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_shutdown(server, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_SESSION_free(*session);
    *session = SSL_get1_session(client);
  } else {
    ERR_print_errors_fp(stderr);
  }
  SSL_free(client);
  SSL_free(server);
  return result;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: resume ADDR CERT KEY\n");
    return 2;
  }
  if (tlscache_abi_version() != TLSCACHE_ABI_VERSION) {
    fprintf(stderr, "ABI %d, header %d\n", tlscache_abi_version(), TLSCACHE_ABI_VERSION);
    return 1;
  }
  char config[512];
  snprintf(config, sizeof config, "addr=%s;sid_ctx=packaged-farm", argv[1]);
  SSL_CTX *first = Node(config, argv[2], argv[3]), *second = Node(config, argv[2], argv[3]);
  SSL_CTX *client = SSL_CTX_new(TLS_client_method());
  if (first == NULL || second == NULL || client == NULL) return 1;
  SSL_CTX_set_max_proto_version(client, TLS1_2_VERSION);
  SSL_SESSION *session = NULL;
  if (Handshake(client, first, &session) != 0) {
    fprintf(stderr, "the first handshake failed\n");
    return 1;
  }
  /* The first node stores its new session in the background: ask the second until it has
   * it (each attempt offers the first node's session again). */
  SSL_SESSION *made_by_first = session;
  SSL_SESSION_up_ref(made_by_first);
  for (int attempt = 1; attempt <= 50; ++attempt) {
    SSL_SESSION_free(session);
    session = made_by_first;
    SSL_SESSION_up_ref(session);
    int resumed = Handshake(client, second, &session);
    if (resumed == 1) {
      printf("the second node resumed the first node's session (attempt %d)\n", attempt);
      return 0;
    }
    if (resumed < 0) return 1;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  fprintf(stderr, "the second node never resumed the first node's session\n");
  return 1;
}
