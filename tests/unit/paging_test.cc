// server/paging.h: a page ends at the requested count or before the item that
// would pass the byte budget, always holds at least one item, and following
// the tokens returns every item exactly once.
#include "server/paging.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

pb::Job JobWithId(int i, size_t error_bytes) {
  pb::Job j;
  j.set_id("job-" + std::to_string(i));
  j.mutable_error()->set_message(std::string(error_bytes, 'x'));
  return j;
}

// The bytes `m` takes as an item of a List* response (tag, length, message).
int64_t WireBytes(const pb::Job& j) {
  pb::ListJobsResponse r;
  *r.add_jobs() = j;
  return static_cast<int64_t>(r.ByteSizeLong());
}

TEST(PagingTest, CountLimitsAPageUnderTheBudget) {
  std::vector<pb::Job> all;
  for (int i = 0; i < 7; ++i) all.push_back(JobWithId(i, 10));
  pb::ListJobsResponse r;
  EXPECT_EQ(CopyPage(Page{2, 3}, all, r.mutable_jobs()), "5");
  ASSERT_EQ(r.jobs_size(), 3);
  EXPECT_EQ(r.jobs(0).id(), "job-2");
  EXPECT_EQ(r.jobs(2).id(), "job-4");
  pb::ListJobsResponse last;
  EXPECT_EQ(CopyPage(Page{5, 3}, all, last.mutable_jobs()), "");
  EXPECT_EQ(last.jobs_size(), 2);
  pb::ListJobsResponse past;
  EXPECT_EQ(CopyPage(Page{9, 3}, all, past.mutable_jobs()), "");
  EXPECT_EQ(past.jobs_size(), 0);
}

TEST(PagingTest, PageEndsBeforeTheItemThatWouldPassTheBudget) {
  std::vector<pb::Job> all;
  for (int i = 0; i < 10; ++i) all.push_back(JobWithId(i, 1000));
  const int64_t item = WireBytes(all[0]);
  // Room for exactly three items; the fourth would pass the budget by one byte.
  const int64_t budget = 4 * item - 1;
  pb::ListJobsResponse r;
  EXPECT_EQ(CopyPage(Page{0, 100}, all, r.mutable_jobs(), budget), "3");
  EXPECT_EQ(r.jobs_size(), 3);
  EXPECT_LE(static_cast<int64_t>(r.ByteSizeLong()), budget);
  // Exactly at the budget: four items.
  pb::ListJobsResponse r4;
  EXPECT_EQ(CopyPage(Page{0, 100}, all, r4.mutable_jobs(), 4 * item), "4");
  EXPECT_EQ(static_cast<int64_t>(r4.ByteSizeLong()), 4 * item);
}

TEST(PagingTest, AnItemLargerThanTheBudgetIsAPageOfItsOwn) {
  std::vector<pb::Job> all = {JobWithId(0, 10), JobWithId(1, 5000), JobWithId(2, 10)};
  const int64_t budget = 1000;
  pb::ListJobsResponse p1, p2, p3;
  EXPECT_EQ(CopyPage(Page{0, 50}, all, p1.mutable_jobs(), budget), "1");
  EXPECT_EQ(p1.jobs_size(), 1);
  EXPECT_EQ(CopyPage(Page{1, 50}, all, p2.mutable_jobs(), budget), "2");
  ASSERT_EQ(p2.jobs_size(), 1);
  EXPECT_EQ(p2.jobs(0).id(), "job-1");
  EXPECT_EQ(CopyPage(Page{2, 50}, all, p3.mutable_jobs(), budget), "");
  EXPECT_EQ(p3.jobs_size(), 1);
}

TEST(PagingTest, FollowingTokensReturnsEveryItemOnce) {
  std::vector<pb::Job> all;
  for (int i = 0; i < 500; ++i) all.push_back(JobWithId(i, 37 * (i % 50)));
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = RequestedPage(token, 40, 50, 1000);
    ASSERT_TRUE(page.ok()) << page.status();
    pb::ListJobsResponse r;
    token = CopyPage(*page, all, r.mutable_jobs(), 8000);
    EXPECT_GE(r.jobs_size(), 1);
    EXPECT_LE(r.jobs_size(), 40);
    EXPECT_LE(r.ByteSizeLong(), 8000u);
    for (const pb::Job& j : r.jobs()) seen.push_back(j.id());
    ++pages;
  } while (!token.empty());
  ASSERT_EQ(seen.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(seen[i], all[i].id());
  EXPECT_GT(pages, 500 / 40 + 1);  // the budget, not only the count, ended pages
}

}  // namespace
}  // namespace laserd::server
