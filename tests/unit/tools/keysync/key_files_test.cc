// The key files of each server product, byte for byte: nginx's 80-byte name | HMAC | AES files
// and the directives listing them ACTIVE first, HAProxy's base64 name | AES | HMAC lines with
// the encryption key second to last, Apache's 48-byte key.
#include "tools/keysync/key_files.h"

#include <openssl/evp.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace tlscache::keysync {
namespace {

// A key whose every byte says which key and which part it is: name 0xN1, AES 0xN2, HMAC 0xN3.
TicketKeyRecord Key(uint8_t n) {
  TicketKeyRecord key;
  key.name.fill(static_cast<uint8_t>(n << 4 | 1));
  key.aes_key.fill(static_cast<uint8_t>(n << 4 | 2));
  key.hmac_key.fill(static_cast<uint8_t>(n << 4 | 3));
  return key;
}

std::string Repeat(uint8_t byte, size_t n) { return std::string(n, static_cast<char>(byte)); }

// Keys 1 (DECRYPT_ONLY, older), 2 (DECRYPT_ONLY, newer), 3 (ACTIVE), 4 (PENDING), in an order
// that is none of the ones written.
client::TicketKeySnapshot Ring() {
  client::TicketKeySnapshot ring;
  ring.version = 7;
  ring.keys = {Key(4), Key(1), Key(3), Key(2)};
  ring.not_after_unix_ms = {0, 1000, 0, 2000};
  ring.active = 2;
  return ring;
}

std::string Name(uint8_t n) { return absl::BytesToHexString(Repeat(n << 4 | 1, 16)) + ".key"; }

TEST(KeyFilesTest, NginxGetsAnEightyByteFilePerKeyAndTheActiveKeyFirst) {
  const std::vector<KeyFile> files = RenderRing(Ring(), Format::kNginx, "/run/keys");
  ASSERT_EQ(files.size(), 5u);
  for (uint8_t n : {1, 2, 3, 4}) {
    auto file = std::find_if(files.begin(), files.end(),
                             [&](const KeyFile& f) { return f.name == Name(n); });
    ASSERT_NE(file, files.end()) << Name(n);
    EXPECT_EQ(file->contents.view(),
              Repeat(n << 4 | 1, 16) + Repeat(n << 4 | 3, 32) + Repeat(n << 4 | 2, 32))
        << "nginx reads name | HMAC | AES";
    EXPECT_TRUE(IsKeyFileName(file->name, Format::kNginx));
  }
  EXPECT_EQ(files.back().name, "ssl_session_ticket_keys.conf");
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(files.back().contents.view(), '\n')) {
    if (absl::StartsWith(line, "ssl_session_ticket_key ")) lines.emplace_back(line);
  }
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "ssl_session_ticket_key /run/keys/" + Name(3) + ";") << "ACTIVE encrypts";
  EXPECT_EQ(lines[1], "ssl_session_ticket_key /run/keys/" + Name(4) + ";") << "then PENDING";
  EXPECT_EQ(lines[2], "ssl_session_ticket_key /run/keys/" + Name(2) + ";") << "newest retired";
  EXPECT_EQ(lines[3], "ssl_session_ticket_key /run/keys/" + Name(1) + ";");
  EXPECT_FALSE(IsKeyFileName("nginx.conf", Format::kNginx));
}

std::string Unbase64(absl::string_view line) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(line, &out)) << line;
  return out;
}

TEST(KeyFilesTest, HaproxyGetsThreeLinesWithTheActiveKeySecondToLast) {
  const std::vector<KeyFile> files = RenderRing(Ring(), Format::kHaproxy, "/run/keys");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "tls-ticket-keys");
  std::vector<std::string> lines =
      absl::StrSplit(files[0].contents.view(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const uint8_t order[] = {2, 3, 4};  // newest retired, ACTIVE (encrypts), PENDING (next)
  for (size_t i = 0; i < 3; ++i) {
    const uint8_t n = order[i];
    EXPECT_EQ(Unbase64(lines[i]),
              Repeat(n << 4 | 1, 16) + Repeat(n << 4 | 2, 32) + Repeat(n << 4 | 3, 32))
        << "line " << i << ": HAProxy reads name | AES | HMAC";
  }
}

TEST(KeyFilesTest, AFirstRingWithNoRetiredKeyGivesHaproxyTheActiveKeyTwice) {
  client::TicketKeySnapshot ring;
  ring.version = 1;
  ring.keys = {Key(3), Key(4)};
  ring.not_after_unix_ms = {0, 0};
  ring.active = 0;
  std::vector<const TicketKeyRecord*> keys = HaproxyKeys(ring);
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0], &ring.keys[0]);
  EXPECT_EQ(keys[1], &ring.keys[0]);
  EXPECT_EQ(keys[2], &ring.keys[1]);
}

TEST(KeyFilesTest, ApacheGetsTheActiveKeyAsFortyEightBytesNameHmacAes) {
  const std::vector<KeyFile> files = RenderRing(Ring(), Format::kApache, "/run/keys");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "ticket.key");
  EXPECT_EQ(files[0].contents.view(), Repeat(0x31, 16) + Repeat(0x33, 16) + Repeat(0x32, 16));
}

TEST(KeyFilesTest, AnUnknownFormatIsNamed) {
  EXPECT_TRUE(ParseFormat("nginx").ok());
  absl::StatusOr<Format> bad = ParseFormat("envoy");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--format=envoy: must be nginx, haproxy or apache");
}

}  // namespace
}  // namespace tlscache::keysync
