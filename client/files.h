// Local files of laserctl: reading a whole file (spec, token, CA, shard) and
// replacing one at once (write beside it, then rename).
#ifndef LASERD_CLIENT_FILES_H_
#define LASERD_CLIENT_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace laserd::client {

// NOT_FOUND "cannot read <path>" when it cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path);
// Writes `bytes` to `path` + ".tmp" and renames it over `path`. UNKNOWN
// "cannot write <tmp>" / "cannot rename <tmp> to <path>" on failure.
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace laserd::client

#endif  // LASERD_CLIENT_FILES_H_
