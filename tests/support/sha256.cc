// SHA-256 hex digests for tests (sha256.h).
#include "tests/support/sha256.h"

#include <openssl/evp.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace laserd::test_support {

std::string Sha256Hex(std::string_view bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) absl::StrAppend(&hex, absl::Hex(d[i], absl::kZeroPad2));
  return hex;
}

std::string FileSha256Hex(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return Sha256Hex(bytes);
}

}  // namespace laserd::test_support
