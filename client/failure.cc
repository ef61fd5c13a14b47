// laserctl's error reporting (failure.h).
#include "client/failure.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "client/laserctl_core.h"

namespace laserd::client {

int Fail(int exit_code, const std::string& message) {
  std::cerr << "laserctl: " << message << "\n";
  return exit_code;
}

int FailRpc(const std::string& what, const grpc::Status& st) {
  return Fail(ExitCodeForStatusCode(st.error_code()),
              absl::StrCat(what, ": ", StatusCodeName(static_cast<int>(st.error_code())), ": ",
                           st.error_message()));
}

int FailStatus(const absl::Status& st) {
  return Fail(ExitCodeForStatusCode(static_cast<int>(st.code())), std::string(st.message()));
}

}  // namespace laserd::client
