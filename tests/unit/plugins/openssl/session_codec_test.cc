// The session codec (plugins/openssl/session_codec.h) on sessions from real handshakes: what
// it encodes decodes to the same session, and everything else read back from the cache (other
// IDs, trailing or missing bytes, expired or non-resumable sessions) is refused.
#include "plugins/openssl/session_codec.h"

#include <openssl/ssl.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/tls_pair.h"

namespace tlscache::openssl {
namespace {

using ::testing::HasSubstr;

class SessionCodecTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    server_ = testing::MakeServerContext();
    client_ = testing::MakeClientContext(GetParam());
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(client_, nullptr);
    // Sessions by ID (TLS 1.2) and stateful tickets (TLS 1.3): the sessions the plugin stores.
    SSL_CTX_set_options(server_.get(), SSL_OP_NO_TICKET);
    absl::StatusOr<testing::Handshake> handshake =
        testing::RunHandshake(client_.get(), server_.get(), nullptr);
    ASSERT_TRUE(handshake.ok()) << handshake.status();
    handshake_ = *std::move(handshake);
    session_ = SSL_get_session(handshake_.server.get());
    ASSERT_NE(session_, nullptr);
    unsigned int length = 0;
    const unsigned char* id = SSL_SESSION_get_id(session_, &length);
    id_.assign(reinterpret_cast<const char*>(id), length);
    ASSERT_FALSE(id_.empty());
  }

  SslCtxPtr server_, client_;
  testing::Handshake handshake_;
  SSL_SESSION* session_ = nullptr;  // owned by handshake_.server
  std::string id_;
};

TEST_P(SessionCodecTest, AnEncodedSessionDecodesToTheSameSession) {
  absl::StatusOr<SecretBytes> encoded = EncodeSession(session_);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_LE(encoded->size(), kMaxEncodedSession);
  absl::StatusOr<SslSessionPtr> decoded = DecodeSession(encoded->view(), id_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  unsigned char original_key[SSL_MAX_MASTER_KEY_LENGTH];
  unsigned char decoded_key[SSL_MAX_MASTER_KEY_LENGTH];
  const size_t original_length =
      SSL_SESSION_get_master_key(session_, original_key, sizeof(original_key));
  const size_t decoded_length =
      SSL_SESSION_get_master_key(decoded->get(), decoded_key, sizeof(decoded_key));
  ASSERT_GT(original_length, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(decoded_key), decoded_length),
            std::string(reinterpret_cast<char*>(original_key), original_length));
  EXPECT_EQ(SSL_SESSION_get_protocol_version(decoded->get()),
            SSL_SESSION_get_protocol_version(session_));
  OPENSSL_cleanse(original_key, sizeof(original_key));
  OPENSSL_cleanse(decoded_key, sizeof(decoded_key));
}

TEST_P(SessionCodecTest, ASessionUnderAnotherIdIsRefused) {
  absl::StatusOr<SecretBytes> encoded = EncodeSession(session_);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  std::string other = id_;
  other.back() ^= 1;
  EXPECT_FALSE(DecodeSession(encoded->view(), other).ok());
  EXPECT_FALSE(DecodeSession(encoded->view(), id_.substr(1)).ok());
}

TEST_P(SessionCodecTest, TrailingTruncatedOrGarbageBytesAreRefused) {
  absl::StatusOr<SecretBytes> encoded = EncodeSession(session_);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const std::string bytes(encoded->view());
  EXPECT_FALSE(DecodeSession(bytes + "x", id_).ok());
  for (size_t cut : {size_t{0}, size_t{1}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(DecodeSession(bytes.substr(0, cut), id_).ok()) << cut;
  }
  EXPECT_FALSE(DecodeSession(std::string(300, '\x30'), id_).ok());
  EXPECT_FALSE(DecodeSession(std::string(kMaxEncodedSession + 1, 'a'), id_).ok());
}

TEST_P(SessionCodecTest, AnExpiredSessionIsRefused) {
  SslSessionPtr copy(SSL_SESSION_dup(session_));
  ASSERT_NE(copy, nullptr);
  SSL_SESSION_set_time(copy.get(), SSL_SESSION_get_time(copy.get()) - 7200);
  SSL_SESSION_set_timeout(copy.get(), 60);
  absl::StatusOr<SecretBytes> encoded = EncodeSession(copy.get());
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const absl::Status status = DecodeSession(encoded->view(), id_).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("expired"));
}

INSTANTIATE_TEST_SUITE_P(Versions, SessionCodecTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return param_info.param == TLS1_2_VERSION ? "Tls12" : "Tls13";
                         });

}  // namespace
}  // namespace tlscache::openssl
