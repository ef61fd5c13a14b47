// The TLS files of `laserd serve` (--tls-cert, --tls-key, --tls-client-ca),
// checked before gRPC sees them: gRPC reports any problem with them only as a
// failure to listen, so each is named here with its cause.
#ifndef LASERD_SERVER_TLS_FILES_H_
#define LASERD_SERVER_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace laserd::server {

// INVALID_ARGUMENT naming the flag and the cause when `cert_pem` holds no PEM
// certificate, `key_pem` no PEM private key, or the key is not the
// certificate's; OK otherwise.
absl::Status CheckTlsKeyPair(const std::string& cert_pem, const std::string& key_pem);
// INVALID_ARGUMENT when `ca_pem` (--tls-client-ca) holds no PEM certificate.
absl::Status CheckTlsClientCa(const std::string& ca_pem);

}  // namespace laserd::server

#endif  // LASERD_SERVER_TLS_FILES_H_
