// Pages of the List* RPCs: a page token is the decimal offset of the page's
// first item. A page holds at most the requested number of items and at most
// kPageBudgetBytes of serialized items, so no List* response outgrows the
// 4 MiB a gRPC client accepts by default.
#ifndef LASERD_SERVER_PAGING_H_
#define LASERD_SERVER_PAGING_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace laserd::server {

// The bytes the items of one page may take on the wire (each item with its
// field tag and length): 2 MiB, half of gRPC's default client receive limit
// (4 MiB), which leaves room for the response's other fields (a token, a
// count, ListResults' baseline: a few hundred bytes). An item larger than the
// budget is a page of its own; none comes near it (a job's labels are at most
// 16 KiB, every repeated field of a spec and a composition are bounded).
inline constexpr int64_t kPageBudgetBytes = 2 << 20;

struct Page {
  int64_t offset = 0, size = 0;
};

// Copies the page's items of `all` into `out`: from the page's offset, at most
// `page.size` items, ending before the item that would take the page past
// `budget` bytes (the page's first item is always copied, so paging always
// advances). Returns the next page's token: the offset of the first item not
// copied, empty on the last page. `out` must be field number 1 to 15 of its
// message (a one-byte tag), as the item lists of every List* response are.
template <typename T>
std::string CopyPage(const Page& page, const std::vector<T>& all,
                     google::protobuf::RepeatedPtrField<T>* out,
                     int64_t budget = kPageBudgetBytes) {
  const int64_t n = static_cast<int64_t>(all.size());
  const int64_t end = std::min(n, page.offset + page.size);
  int64_t i = page.offset, bytes = 0;
  for (; i < end; ++i) {
    const size_t size = all[i].ByteSizeLong();
    const int64_t wire = static_cast<int64_t>(
        1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) + size);
    if (i > page.offset && bytes + wire > budget) break;
    bytes += wire;
    *out->Add() = all[i];
  }
  return i < n ? std::to_string(i) : "";
}

// The page a request asks for: `requested` items (0: `dflt`, at most `max`)
// from the offset in `token`.
absl::StatusOr<Page> RequestedPage(const std::string& token, int32_t requested, int64_t dflt,
                                   int64_t max);

}  // namespace laserd::server

#endif  // LASERD_SERVER_PAGING_H_
