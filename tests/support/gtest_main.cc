// The main() of every test binary. ctest runs one test case per process
// (gtest_discover_tests) and reports a case as skipped when its output shows
// "[  SKIPPED ]". GoogleTest prints that also for the cases of a suite whose
// SetUpTestSuite failed (an exception, a failed assertion), which would make a
// broken fixture pass as a skip. This main() wraps GoogleTest's printer so
// that those cases are printed as FAILED instead; the process exits non-zero
// as it does for any failure.
#include <cstdio>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace {

bool SuiteSetUpFailed(const testing::UnitTest& u, const std::string& suite) {
  for (int i = 0; i < u.total_test_suite_count(); ++i) {
    const testing::TestSuite* s = u.GetTestSuite(i);
    if (suite == s->name() && s->ad_hoc_test_result().Failed()) return true;
  }
  return false;
}

bool AnySuiteSetUpFailed(const testing::UnitTest& u) {
  for (int i = 0; i < u.total_test_suite_count(); ++i) {
    if (u.GetTestSuite(i)->ad_hoc_test_result().Failed()) return true;
  }
  return false;
}

class NoSkipAfterFailedSetUp : public testing::EmptyTestEventListener {
 public:
  explicit NoSkipAfterFailedSetUp(testing::TestEventListener* inner) : inner_(inner) {}

  void OnTestProgramStart(const testing::UnitTest& u) override { inner_->OnTestProgramStart(u); }
  void OnTestIterationStart(const testing::UnitTest& u, int it) override {
    inner_->OnTestIterationStart(u, it);
  }
  void OnEnvironmentsSetUpStart(const testing::UnitTest& u) override {
    inner_->OnEnvironmentsSetUpStart(u);
  }
  void OnEnvironmentsSetUpEnd(const testing::UnitTest& u) override {
    inner_->OnEnvironmentsSetUpEnd(u);
  }
  void OnTestSuiteStart(const testing::TestSuite& s) override { inner_->OnTestSuiteStart(s); }
  void OnTestStart(const testing::TestInfo& t) override { inner_->OnTestStart(t); }
  void OnTestDisabled(const testing::TestInfo& t) override { inner_->OnTestDisabled(t); }
  void OnTestPartResult(const testing::TestPartResult& r) override { inner_->OnTestPartResult(r); }
  void OnTestEnd(const testing::TestInfo& t) override {
    if (t.result()->Skipped() &&
        SuiteSetUpFailed(*testing::UnitTest::GetInstance(), t.test_suite_name())) {
      std::printf("[  FAILED  ] %s.%s: not run, its test suite's set-up failed\n",
                  t.test_suite_name(), t.name());
      std::fflush(stdout);
      return;
    }
    inner_->OnTestEnd(t);
  }
  void OnTestSuiteEnd(const testing::TestSuite& s) override { inner_->OnTestSuiteEnd(s); }
  void OnEnvironmentsTearDownStart(const testing::UnitTest& u) override {
    inner_->OnEnvironmentsTearDownStart(u);
  }
  void OnEnvironmentsTearDownEnd(const testing::UnitTest& u) override {
    inner_->OnEnvironmentsTearDownEnd(u);
  }
  void OnTestIterationEnd(const testing::UnitTest& u, int it) override {
    if (AnySuiteSetUpFailed(u)) {
      std::printf(
          "[  FAILED  ] a test suite's SetUpTestSuite or TearDownTestSuite failed "
          "(messages above)\n");
      std::fflush(stdout);
      return;
    }
    inner_->OnTestIterationEnd(u, it);
  }
  void OnTestProgramEnd(const testing::UnitTest& u) override { inner_->OnTestProgramEnd(u); }

 private:
  std::unique_ptr<testing::TestEventListener> inner_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
  listeners.Append(
      new NoSkipAfterFailedSetUp(listeners.Release(listeners.default_result_printer())));
  return RUN_ALL_TESTS();
}
