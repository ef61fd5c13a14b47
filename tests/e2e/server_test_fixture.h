// The fixture of the `laserd serve` end-to-end tests on the tiny Llama fixture
// (server_integration_test.cc, server_bad_inputs_test.cc): a server per test with
// a 20- and a 60-example dataset, specs over them, and the headless `laserd sweep`
// results to compare with.
#ifndef LASERD_TESTS_E2E_SERVER_TEST_FIXTURE_H_
#define LASERD_TESTS_E2E_SERVER_TEST_FIXTURE_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/sweep_io.h"
#include "tests/e2e/server_harness.h"
#include "tests/support/fixtures.h"

namespace laserd_test {

// The per-test server of ServerFixture plus specs and the headless comparison.
class ServerTest : public ServerFixture {
 protected:
  pb::SweepSpec Spec(const std::string& data, std::vector<double> rhos) {
    pb::SweepSpec s;
    s.mutable_dataset()->set_path((root_ / "data" / data).string());
    for (double r : rhos) s.mutable_rho()->add_values(r);
    s.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
    return s;
  }
  // Results of the headless `laserd sweep` for `spec`.
  std::vector<pb::Result> Headless(const pb::SweepSpec& spec) {
    const fs::path sp = root_ / "spec.json", out = root_ / "headless.jsonl";
    std::ofstream(sp) << JsonOf(spec);
    const std::string cmd =
        absl::StrCat(LASERD_BINARY_DIR, "/server/laserd sweep --model ", (root_ / "model").string(),
                     " --device cpu --spec ", sp.string(), " --out ", out.string(),
                     " --no-progress 2>", (root_ / "headless.log").string(), " >/dev/null");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto rf = laserd::server::ReadResultsFile(out.string());
    EXPECT_TRUE(rf.ok()) << rf.status();
    return rf.ok() ? rf->results : std::vector<pb::Result>{};
  }
  void ExpectSameResults(const std::vector<pb::Result>& got, const std::vector<pb::Result>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Comparable(got[i]),
                                                                     Comparable(want[i])))
          << "result " << i << "\n got: " << JsonOf(Comparable(got[i]))
          << "\nwant: " << JsonOf(Comparable(want[i]));
    }
  }
  static std::vector<pb::Result> ResultsOf(const std::vector<pb::WatchJobEvent>& evs) {
    std::vector<pb::Result> r;
    for (const auto& e : evs) {
      if (e.has_result()) r.push_back(e.result());
    }
    return r;
  }
};

}  // namespace laserd_test

#endif  // LASERD_TESTS_E2E_SERVER_TEST_FIXTURE_H_
