#include "base/sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace laserd {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  std::string hex;
  for (unsigned char c : d) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

std::string FileSha256(const std::string& path) { return FilesSha256({path}); }

std::string FilesSha256(const std::vector<std::string>& paths) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  for (const std::string& path : paths) {
    std::ifstream f(path, std::ios::binary);
    while (f) {
      f.read(buf.data(), buf.size());
      EVP_DigestUpdate(ctx, buf.data(), f.gcount());
    }
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, d, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(d[i], absl::kZeroPad2));
  return hex;
}

}  // namespace laserd
