// SHA-256 digests in lowercase hex (OpenSSL): dataset ids, the served model's
// hash and the digest laserctl sends with an upload.
#ifndef LASERD_BASE_SHA256_H_
#define LASERD_BASE_SHA256_H_

#include <string>
#include <vector>

namespace laserd {

std::string Sha256Hex(const std::string& bytes);
// Of a file's contents, read in 1 MiB pieces.
std::string FileSha256(const std::string& path);
// Of the files' contents one after the other (the digest of their
// concatenation), streamed in 1 MiB pieces: never more than that in memory.
std::string FilesSha256(const std::vector<std::string>& paths);

}  // namespace laserd

#endif  // LASERD_BASE_SHA256_H_
