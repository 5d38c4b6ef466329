// The preload library's decision of which contexts to attach to, in-process: it is loaded
// with dlopen (after TLSCACHE_* is set, as an operator's environment would be) and its
// SSL_set_accept_state is called the way an interposed server call would reach it.
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/tls_pair.h"

namespace tlscache::openssl {
namespace {

using SetAcceptState = void (*)(SSL*);

class PreloadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("TLSCACHE_ADDR", "127.0.0.1:1", 1);
    setenv("TLSCACHE_TICKETS", "off", 1);
    const std::string path = testing::BuiltBinary("../lib/libtlscache_preload.so");
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
    hook_ = reinterpret_cast<SetAcceptState>(dlsym(handle_, "SSL_set_accept_state"));
    ASSERT_NE(hook_, nullptr);
  }

  static void* handle_;
  static SetAcceptState hook_;
};

void* PreloadTest::handle_ = nullptr;
SetAcceptState PreloadTest::hook_ = nullptr;

TEST_F(PreloadTest, AttachesToAServerContextOnItsFirstAcceptedConnection) {
  SslCtxPtr server = testing::MakeServerContext();
  EXPECT_EQ(SSL_CTX_sess_get_new_cb(server.get()), nullptr);
  SslPtr ssl(SSL_new(server.get()));
  hook_(ssl.get());
  EXPECT_TRUE(SSL_is_server(ssl.get()));  // the real call still happened
  EXPECT_NE(SSL_CTX_sess_get_new_cb(server.get()), nullptr);
  EXPECT_NE(SSL_CTX_get_options(server.get()) & SSL_OP_NO_TICKET, 0u);  // TLSCACHE_TICKETS=off
}

TEST_F(PreloadTest, TheConnectionItAttachesOnGetsTlscachesSettingsToo) {
  // SSL_new copied the context's options before the preload attached: the first connection
  // of a worker must not run as if tlscache were absent.
  SslCtxPtr server = testing::MakeServerContext();
  SslPtr ssl(SSL_new(server.get()));
  EXPECT_EQ(SSL_get_options(ssl.get()) & SSL_OP_NO_TICKET, 0u);
  hook_(ssl.get());
  EXPECT_NE(SSL_get_options(ssl.get()) & SSL_OP_NO_TICKET, 0u);  // TLSCACHE_TICKETS=off
}

TEST_F(PreloadTest, LeavesAContextWithItsSessionCacheOffAlone) {
  SslCtxPtr server = testing::MakeServerContext();
  SSL_CTX_set_session_cache_mode(server.get(), SSL_SESS_CACHE_OFF);  // ssl_session_cache off
  for (int i = 0; i < 2; ++i) {
    SslPtr ssl(SSL_new(server.get()));
    hook_(ssl.get());
    EXPECT_EQ(SSL_get_options(ssl.get()) & SSL_OP_NO_TICKET, 0u);
  }
  EXPECT_EQ(SSL_CTX_sess_get_new_cb(server.get()), nullptr);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(server.get()), SSL_SESS_CACHE_OFF);
}

TEST_F(PreloadTest, LeavesClientContextsAlone) {
  // nginx creates upstream contexts with the same method as its server ones; only the
  // accept side of a connection decides.
  SslCtxPtr upstream(SSL_CTX_new(TLS_method()));
  SslPtr ssl(SSL_new(upstream.get()));
  SSL_set_connect_state(ssl.get());
  EXPECT_EQ(SSL_CTX_sess_get_new_cb(upstream.get()), nullptr);
  EXPECT_EQ(SSL_CTX_get_options(upstream.get()) & SSL_OP_NO_TICKET, 0u);
}

TEST_F(PreloadTest, KeepsTheApplicationsCacheCallbacksAsTheFirstTier) {
  SslCtxPtr server = testing::MakeServerContext();
  static int app_calls = 0;
  SSL_CTX_sess_set_get_cb(server.get(), [](SSL*, const unsigned char*, int, int* copy) {
    ++app_calls;
    *copy = 0;
    return static_cast<SSL_SESSION*>(nullptr);
  });
  SslPtr ssl(SSL_new(server.get()));
  hook_(ssl.get());
  auto* installed = SSL_CTX_sess_get_get_cb(server.get());
  ASSERT_NE(installed, nullptr);
  int copy = 1;
  const unsigned char id[32] = {1};
  EXPECT_EQ(installed(ssl.get(), id, sizeof(id), &copy), nullptr);  // no cache at 127.0.0.1:1
  EXPECT_EQ(app_calls, 1);
  EXPECT_EQ(copy, 0);
}

}  // namespace
}  // namespace tlscache::openssl
