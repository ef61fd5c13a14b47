// Pages of the List* RPCs: a page token is the decimal offset of the page's
// first item.
#ifndef LASERD_SERVER_PAGING_H_
#define LASERD_SERVER_PAGING_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"

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

// Copies the page's items of `all` into `out`; returns the next page's token.
template <typename T>
std::string CopyPage(const Page& page, const std::vector<T>& all,
                     google::protobuf::RepeatedPtrField<T>* out) {
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = page.offset; i < page.end(n); ++i) *out->Add() = all[i];
  return page.NextToken(n);
}

// The page a request asks for: `requested` items (0: `dflt`, at most `max`)
// from the offset in `token`.
absl::StatusOr<Page> RequestedPage(const std::string& token, int32_t requested, int64_t dflt,
                                   int64_t max);

}  // namespace laserd::server

#endif  // LASERD_SERVER_PAGING_H_
