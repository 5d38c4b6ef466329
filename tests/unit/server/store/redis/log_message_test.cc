#include "server/store/redis/log_message.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/validation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache::server::redis {
namespace {

using ::testing::HasSubstr;

std::vector<LogEntry> Entries() {
  std::vector<LogEntry> entries;
  entries.push_back(LogEntry{"id-1", SecretBytes(absl::string_view("payload|with:bars,"))});
  entries.push_back(LogEntry{"id-2", SecretBytes(absl::string_view("x"))});
  return entries;
}

TEST(LogMessageTest, WhatTheAppendScriptPublishesParsesBack) {
  const std::string message = EncodeLogMessage("0a1b2c", 41, Entries());
  EXPECT_EQ(message, "tlscache-log-v1|0a1b2c|41|4:id-1,18:payload|with:bars,,4:id-2,1:x,");
  auto parsed = ParseLogMessage(message, 1024);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->epoch, "0a1b2c");
  EXPECT_EQ(parsed->first_seq, 41u);
  ASSERT_EQ(parsed->entries.size(), 2u);
  EXPECT_EQ(parsed->entries[0].session_id, "id-1");
  EXPECT_EQ(parsed->entries[0].payload.view(), "payload|with:bars,");
  EXPECT_EQ(parsed->entries[1].session_id, "id-2");
  EXPECT_EQ(parsed->entries[1].payload.view(), "x");
}

TEST(LogMessageTest, EveryMalformedPartIsRefusedAndNamed) {
  const std::string id = std::string(kMaxSessionIdBytes + 1, 'i');
  const struct {
    std::string message;
    std::string why;
  } cases[] = {
      {"", "not a v1 message"},
      {"tlscache-log-v2|ab|1|1:a,1:b,", "not a v1 message"},
      {"tlscache-log-v1||1|1:a,1:b,", "no epoch"},
      {"tlscache-log-v1|ab", "no epoch"},
      {absl::StrCat("tlscache-log-v1|", std::string(kMaxEpochBytes + 1, 'a'), "|1|1:a,1:b,"),
       "no epoch"},
      {"tlscache-log-v1|xy|1|1:a,1:b,", "an epoch not in hex"},
      {"tlscache-log-v1|ab|1", "no number"},
      {"tlscache-log-v1|ab||1:a,1:b,", "no number"},
      {"tlscache-log-v1|ab|-1|1:a,1:b,", "a number not in decimal"},
      {"tlscache-log-v1|ab|0|1:a,1:b,", "a number out of range"},
      {"tlscache-log-v1|ab|99999999999999999999|1:a,1:b,", "a number out of range"},
      {"tlscache-log-v1|ab|18446744073709551615|1:a,1:b,", "numbers out of range"},
      {"tlscache-log-v1|ab|1|", "no change"},
      {"tlscache-log-v1|ab|1|abc", "no length"},
      {"tlscache-log-v1|ab|1|a,1:b,", "a length not in decimal"},
      {"tlscache-log-v1|ab|1|:a,1:b,", "no length"},
      {"tlscache-log-v1|ab|1|+1:a,1:b,", "a length not in decimal"},
      {absl::StrCat("tlscache-log-v1|ab|1|", id.size(), ":", id, ",1:b,"),
       "a length out of bounds"},
      {"tlscache-log-v1|ab|1|1:a,5:b,", "a length out of bounds"},  // payloads: at most 4
      {"tlscache-log-v1|ab|1|1:a,3:bcd", "a value cut short"},
      {"tlscache-log-v1|ab|1|1:a,3:bcde", "a value cut short"},
      {"tlscache-log-v1|ab|1|1:a,", "no length"},
      {"tlscache-log-v1|ab|1|0:,1:b,", "an empty session ID or payload"},
      {"tlscache-log-v1|ab|1|1:a,0:,", "an empty session ID or payload"},
  };
  for (const auto& c : cases) {
    auto parsed = ParseLogMessage(c.message, 4);
    ASSERT_FALSE(parsed.ok()) << c.message;
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << c.message;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.why)) << c.message;
  }
}

}  // namespace
}  // namespace tlscache::server::redis
