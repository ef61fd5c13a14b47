// SHA-256 digests in lowercase hex: dataset ids and the served model's hash.
#ifndef LASERD_SERVER_SHA256_H_
#define LASERD_SERVER_SHA256_H_

#include <string>
#include <vector>

namespace laserd::server {

std::string Sha256Hex(const std::string& bytes);
// Of a file's contents, read in 1 MiB pieces.
std::string FileSha256(const std::string& path);
// Of the files' contents one after the other (the digest of their
// concatenation), streamed in 1 MiB pieces: never more than that in memory.
std::string FilesSha256(const std::vector<std::string>& paths);

}  // namespace laserd::server

#endif  // LASERD_SERVER_SHA256_H_
