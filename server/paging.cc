#include "server/paging.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace laserd::server {

absl::StatusOr<Page> RequestedPage(const std::string& token, int32_t requested, int64_t dflt,
                                   int64_t max) {
  Page p;
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", requested, " is negative"));
  }
  p.size = requested == 0 ? dflt : std::min<int64_t>(requested, max);
  if (!token.empty() && (!absl::SimpleAtoi(token, &p.offset) || p.offset < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: '", token, "' is not a token this server issued"));
  }
  return p;
}

}  // namespace laserd::server
