// The master a store takes from the sentinels' answers (MajorityMaster), and the credentials
// it authenticates with (RedisCredentials), without a server.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/redis/redis_credentials.h"
#include "server/store/redis/sentinel.h"

namespace tlscache::server::redis {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

SentinelConfig ThreeSentinels() {
  SentinelConfig config;
  config.master_name = "tlscache";
  for (int port : {26379, 26380, 26381}) config.sentinels.push_back({"10.0.0.1", port, 0});
  return config;
}

absl::StatusOr<Endpoint> At(int port) { return Endpoint{"10.0.1.1", port, 0}; }

TEST(MajorityMasterTest, TwoOfThreeNamingTheSameMasterMakeIt) {
  auto master = MajorityMaster(ThreeSentinels(), {At(6379), At(6379), At(6380)});
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(master->port, 6379);
  master = MajorityMaster(ThreeSentinels(),
                          {absl::UnavailableError("down"), At(6380), At(6380)});
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(master->port, 6380);
}

TEST(MajorityMasterTest, OneSentinelAloneIsNotAMajorityWhateverItSays) {
  // The minority side of a partition: the one sentinel it reaches still names the old master.
  auto master = MajorityMaster(ThreeSentinels(), {At(6379), absl::UnavailableError("timeout"),
                                                  absl::DeadlineExceededError("timeout")});
  ASSERT_FALSE(master.ok());
  EXPECT_TRUE(absl::IsUnavailable(master.status()));
  EXPECT_THAT(std::string(master.status().message()),
              HasSubstr("no master named by a majority (2 of 3)"));
  EXPECT_THAT(std::string(master.status().message()), HasSubstr("1 answered"));
}

TEST(MajorityMasterTest, AnswersThatDisagreeMakeNoMaster) {
  auto master = MajorityMaster(ThreeSentinels(), {At(6379), At(6380), At(6381)});
  ASSERT_FALSE(master.ok());
  EXPECT_THAT(std::string(master.status().message()), HasSubstr("10.0.1.1:6380"));
}

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/tlscache-credentials-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/service";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }
  void Write(const std::string& text) {
    FILE* f = std::fopen((path_ + ".new").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
    ASSERT_EQ(std::rename((path_ + ".new").c_str(), path_.c_str()), 0);
  }
  static std::vector<std::string> Passwords(RedisCredentials& credentials) {
    std::vector<std::string> out;
    for (const auto& auth : credentials.Candidates()) {
      out.push_back(auth->user + " " + std::string(auth->password.view()));
    }
    return out;
  }

  std::string dir_, path_;
};

TEST_F(CredentialsTest, AChangedFileIsTriedFirstAndTheLastAcceptedAfterIt) {
  Write("tlscache old-password\n");
  auto credentials = RedisCredentials::FromFile(path_);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_THAT(Passwords(**credentials), ::testing::ElementsAre("tlscache old-password"));
  (*credentials)->Accepted((*credentials)->Candidates()[0]);

  Write("tlscache new-password\n");  // rotated: Redis may not know it yet
  EXPECT_THAT(Passwords(**credentials),
              ::testing::ElementsAre("tlscache new-password", "tlscache old-password"));
  (*credentials)->Accepted((*credentials)->Candidates()[0]);  // Redis took it
  EXPECT_THAT(Passwords(**credentials), ::testing::ElementsAre("tlscache new-password"));

  std::remove(path_.c_str());  // a file briefly gone (a Secret being swapped): the last read
  EXPECT_THAT(Passwords(**credentials), ::testing::ElementsAre("tlscache new-password"));
  Write("too many words here\n");
  EXPECT_THAT(Passwords(**credentials), ::testing::ElementsAre("tlscache new-password"));
}

TEST_F(CredentialsTest, AnUnreadableFileAtStartIsAnErrorThatNamesItButNotItsContent) {
  Write("user secret-word extra\n");
  auto credentials = RedisCredentials::FromFile(path_);
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(std::string(credentials.status().message()), HasSubstr(path_));
  EXPECT_THAT(std::string(credentials.status().message()), Not(HasSubstr("secret-word")));
  EXPECT_FALSE(RedisCredentials::FromFile(dir_ + "/missing").ok());
}

}  // namespace
}  // namespace tlscache::server::redis
