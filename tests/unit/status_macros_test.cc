#include "base/status_macros.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace {

absl::Status Fails() { return absl::NotFoundError("missing"); }
absl::Status Succeeds() { return absl::OkStatus(); }
absl::StatusOr<int> Value(bool ok) {
  if (!ok) return absl::InvalidArgumentError("bad");
  return 7;
}
absl::StatusOr<std::unique_ptr<int>> MoveOnly() { return std::make_unique<int>(3); }

absl::Status ReturnIfError(bool fail, int* reached) {
  LASERD_RETURN_IF_ERROR(Succeeds());
  *reached = 1;
  if (fail) LASERD_RETURN_IF_ERROR(Fails());
  *reached = 2;
  return absl::OkStatus();
}

absl::StatusOr<int> AssignOrReturn(bool ok) {
  LASERD_ASSIGN_OR_RETURN(int v, Value(ok));
  int w = 0;
  LASERD_ASSIGN_OR_RETURN(w, Value(true));  // two in one scope, existing variable
  LASERD_ASSIGN_OR_RETURN(auto p, MoveOnly());
  return v + w + *p;
}

TEST(StatusMacros, ReturnIfErrorStopsAtTheFirstError) {
  int reached = 0;
  EXPECT_TRUE(ReturnIfError(false, &reached).ok());
  EXPECT_EQ(reached, 2);
  reached = 0;
  absl::Status s = ReturnIfError(true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "missing");
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacros, AssignOrReturnAssignsOrPropagates) {
  absl::StatusOr<int> ok = AssignOrReturn(true);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 17);
  absl::StatusOr<int> bad = AssignOrReturn(false);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "bad");
}

}  // namespace
