// Pages of the List* RPCs: a page token is the decimal offset of the page's
// first item.
#ifndef LASERD_SERVER_PAGING_H_
#define LASERD_SERVER_PAGING_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace laserd::server {

struct Page {
  int64_t offset = 0, size = 0;
  // Items [offset, offset + size) of `total`, and the next page's token
  // (empty on the last page).
  int64_t end(int64_t total) const { return std::min(total, offset + size); }
  std::string NextToken(int64_t total) const {
    return offset + size < total ? std::to_string(offset + size) : "";
  }
};

// The page a request asks for: `requested` items (0: `dflt`, at most `max`)
// from the offset in `token`.
absl::StatusOr<Page> RequestedPage(const std::string& token, int32_t requested, int64_t dflt,
                                   int64_t max);

}  // namespace laserd::server

#endif  // LASERD_SERVER_PAGING_H_
