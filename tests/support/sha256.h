// SHA-256 as lowercase hex (the form of laserd's dataset ids and model digests),
// computed independently of the server's own hashing (OpenSSL EVP).
#ifndef LASERD_TESTS_SUPPORT_SHA256_H_
#define LASERD_TESTS_SUPPORT_SHA256_H_

#include <string>
#include <string_view>

namespace laserd::test_support {

std::string Sha256Hex(std::string_view bytes);
// Of a whole file's bytes ("" hashed when it cannot be read).
std::string FileSha256Hex(const std::string& path);

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_SHA256_H_
