// Reading a whole file with error codes: a path the server is given (a
// dataset, a token file, a TLS key) may name a directory, a file without read
// permission or one that fails mid-read, and none of these may throw (the
// std::ifstream + istreambuf_iterator idiom throws std::ios_base::failure from
// libstdc++ on a directory).
#ifndef LASERD_SERVER_FILE_BYTES_H_
#define LASERD_SERVER_FILE_BYTES_H_

#include <string>

#include "absl/status/statusor.h"

namespace laserd::server {

// The bytes of the regular file at `path`. NOT_FOUND when it does not exist,
// FAILED_PRECONDITION when it is a directory or not a regular file,
// PERMISSION_DENIED when it cannot be opened for reading, DATA_LOSS when a
// read fails; INVALID_ARGUMENT for a path with an embedded NUL. Each message
// begins with `what` and names the path and the cause.
absl::StatusOr<std::string> ReadFileBytes(const std::string& what, const std::string& path);

}  // namespace laserd::server

#endif  // LASERD_SERVER_FILE_BYTES_H_
