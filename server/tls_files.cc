#include "server/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace laserd::server {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio MemBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The reason of OpenSSL's last error ("" if none), clearing the queue.
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "";
  const char* r = ERR_reason_error_string(e);
  return r ? absl::StrCat(" (", r, ")") : "";
}

std::unique_ptr<X509, X509Free> FirstCert(const std::string& pem) {
  Bio bio = MemBio(pem);
  return std::unique_ptr<X509, X509Free>(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

}  // namespace

absl::Status CheckTlsKeyPair(const std::string& cert_pem, const std::string& key_pem) {
  auto cert = FirstCert(cert_pem);
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: no PEM certificate (-----BEGIN CERTIFICATE-----) could be read",
                     OpenSslReason()));
  }
  Bio kb = MemBio(key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: no unencrypted PEM private key could be read", OpenSslReason()));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "--tls-key: the private key does not match the certificate of --tls-cert");
  }
  return absl::OkStatus();
}

absl::Status CheckTlsClientCa(const std::string& ca_pem) {
  if (!FirstCert(ca_pem)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-client-ca: no PEM certificate could be read", OpenSslReason()));
  }
  return absl::OkStatus();
}

}  // namespace laserd::server
