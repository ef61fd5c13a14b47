// What a test needs from outside itself, and what its absence means:
//   - A binary of this build (server/laserd): every test that runs it depends on
//     its target (laserd_add_test ... RUNS laserd in tests/CMakeLists.txt), so it
//     is built with the test and its absence is a failure (LASERD_REQUIRE_BUILT).
//   - The fetched model and generated data (scripts/fetch_model.sh,
//     scripts/make_capitals.py): a fresh checkout lacks them, so the test skips
//     and says what to run; under CI (the CI environment variable set, as CI
//     runs scripts/test.sh, which provides them) the absence is a failure
//     (LASERD_SKIP_OR_FAIL_IN_CI).
// A test that needs a GPU skips without one, CI or not.
#ifndef LASERD_TESTS_SUPPORT_REQUIREMENTS_H_
#define LASERD_TESTS_SUPPORT_REQUIREMENTS_H_

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "gtest/gtest.h"

namespace laserd::test_support {

// CI is set to something other than "", "0" or "false".
inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::strcmp(ci, "0") != 0 && std::strcmp(ci, "false") != 0;
}

}  // namespace laserd::test_support

// Fails the test (from its body or SetUp) unless `path`, a file this build
// makes, exists.
#define LASERD_REQUIRE_BUILT(path)           \
  ASSERT_TRUE(std::filesystem::exists(path)) \
      << (path) << " is not built (this test's target depends on it: rebuild the test)"

// Skips the test with `message` (a << chain), or fails it under CI.
#define LASERD_SKIP_OR_FAIL_IN_CI(message)                                      \
  do {                                                                          \
    if (::laserd::test_support::InCi()) {                                       \
      FAIL() << message << " (CI=" << std::getenv("CI") << ": required in CI)"; \
    } else {                                                                    \
      GTEST_SKIP() << message;                                                  \
    }                                                                           \
  } while (0)

#endif  // LASERD_TESTS_SUPPORT_REQUIREMENTS_H_
