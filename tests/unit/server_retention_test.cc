// The --job-retention flag of `laserd serve`: the durations it accepts, what
// it refuses, and how often a retention is applied. (Deleting jobs is tested
// end to end in tests/e2e/server_datasets_test.cc.)
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/retention.h"

namespace laserd::server {
namespace {

TEST(JobRetentionFlag, AcceptsDurationsAndWholeDays) {
  EXPECT_EQ(*ParseJobRetention(""), absl::ZeroDuration());
  EXPECT_EQ(*ParseJobRetention("0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseJobRetention("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseJobRetention("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseJobRetention("720h"), absl::Hours(720));
  EXPECT_EQ(*ParseJobRetention("7d"), absl::Hours(168));
}

TEST(JobRetentionFlag, RefusesNegativeInfiniteAndUnparsableValues) {
  for (const char* bad : {"-1s", "inf", "3x", "d", "-2d", "1.5d", "soon"}) {
    auto d = ParseJobRetention(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d.status().message(),
              std::string("--job-retention: '") + bad +
                  "' is not a duration such as 720h, 7d, 90m or 30s (0: keep every job)");
  }
}

TEST(JobRetentionFlag, IsAppliedEveryTenthOfItBetweenOneSecondAndTenMinutes) {
  EXPECT_EQ(RetentionCheckInterval(absl::Seconds(1)), absl::Seconds(1));
  EXPECT_EQ(RetentionCheckInterval(absl::Seconds(50)), absl::Seconds(5));
  EXPECT_EQ(RetentionCheckInterval(absl::Hours(720)), absl::Minutes(10));
}

}  // namespace
}  // namespace laserd::server
