// ListJobs pages by size as well as by count: jobs whose labels are at the
// limits (64 labels, 16 KiB of keys and values) listed with page_size 1000 by
// a client with gRPC's default 4 MiB receive limit: every page arrives, none
// is over the page budget, and following the tokens returns every job exactly
// once, newest first.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "server/paging.h"
#include "server/sweep_handlers.h"
#include "tests/e2e/server_harness.h"

namespace pb = ::laser::v1;

namespace {

using laserd_test::kRead;
using laserd_test::Server;

class ServerListPagingTest : public laserd_test::ServerFixture {};

TEST_F(ServerListPagingTest, JobsWithLabelsAtTheLimitsPageUnderTheReceiveLimit) {
  constexpr int kJobs = 300;
  // 64 labels of a 63-character key and a 193-character value: 16384 bytes.
  static_assert(64 * (63 + 193) == laserd::server::kMaxLabelBytes);
  std::vector<std::string> ids;
  for (int n = 0; n < kJobs; ++n) {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path((root_ / "data" / "small.jsonl").string());
    s.mutable_rho()->add_values(0.5);
    s.add_matrix_types("attn.q");
    s.mutable_layers()->add_indices(0);
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    for (int i = 0; i < laserd::server::kMaxLabels; ++i) {
      std::string key = absl::StrCat("k", i, "-", n, "-");
      key.resize(63, 'k');
      std::string value = absl::StrCat("v", n, "-", i, "-");
      value.resize(193, 'v');
      (*s.mutable_labels())[key] = value;
    }
    s.mutable_labels()->erase(s.labels().begin()->first);
    (*s.mutable_labels())[std::string(63, 'z')] = std::string(193, 'z');  // a shared label
    pb::Job j;
    const grpc::Status st = server_->Create(s, &j);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ids.push_back(j.id());
  }
  // A new channel: the default client limits (4 MiB receive).
  auto ch = server_->NewChannel(grpc::InsecureChannelCredentials());
  auto stub = pb::SweepService::NewStub(ch);
  for (const bool filtered : {false, true}) {
    std::vector<std::string> seen;
    std::string token;
    int pages = 0;
    do {
      grpc::ClientContext ctx;
      Server::Auth(&ctx, kRead);
      pb::ListJobsRequest req;
      req.set_page_size(1000);
      req.set_page_token(token);
      if (filtered) (*req.mutable_labels())[std::string(63, 'z')] = std::string(193, 'z');
      pb::ListJobsResponse resp;
      const grpc::Status st = stub->ListJobs(&ctx, req, &resp);
      ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
      ASSERT_GE(resp.jobs_size(), 1);
      EXPECT_EQ(resp.total_size(), kJobs);
      int64_t items = 0;
      for (const pb::Job& j : resp.jobs()) {
        seen.push_back(j.id());
        EXPECT_EQ(j.spec().labels_size(), laserd::server::kMaxLabels);
        pb::ListJobsResponse one;
        *one.add_jobs() = j;
        items += static_cast<int64_t>(one.ByteSizeLong());
      }
      EXPECT_LE(items, laserd::server::kPageBudgetBytes);
      EXPECT_LT(resp.ByteSizeLong(), 4u << 20);
      token = resp.next_page_token();
      ++pages;
    } while (!token.empty());
    // About 17 KiB per job: 2 MiB pages of about 120 jobs.
    EXPECT_GE(pages, 3);
    ASSERT_EQ(seen.size(), ids.size());
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), ids.size());
    // Newest first.
    EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));
  }
}

}  // namespace
