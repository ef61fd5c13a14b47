// Bearer-token authentication of `laserd serve` (--tokens): the gRPC
// `authorization` metadata and the HTTP API's `Authorization` header carry
// `Bearer <token>`; a token has read or write scope.
#ifndef LASERD_SERVER_AUTH_H_
#define LASERD_SERVER_AUTH_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace laserd::server {

// One line of the tokens file: `<token> read|write [name]` ('#' comments).
struct TokenInfo {
  bool write = false;
  std::string name;
};
absl::StatusOr<std::map<std::string, TokenInfo>> ReadTokens(const std::string& path);

class BearerAuth {
 public:
  // No tokens: every call is allowed.
  explicit BearerAuth(std::map<std::string, TokenInfo> tokens) : tokens_(std::move(tokens)) {}

  // UNAUTHENTICATED / PERMISSION_DENIED unless the call carries a token with
  // the scope; OK when no tokens are configured.
  absl::Status Authorize(const grpc::CallbackServerContext* ctx, bool write) const;
  // The same check on the value of an `authorization` header or metadata
  // entry (nullptr: none was sent); `carrier` names it in messages ("metadata"
  // for gRPC, "header" for the HTTP API of server/http_api.h).
  absl::Status AuthorizeBearer(const std::string* authorization, bool write,
                               absl::string_view carrier = "metadata") const;

 private:
  std::map<std::string, TokenInfo> tokens_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_AUTH_H_
