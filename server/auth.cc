#include "server/auth.h"

#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace laserd::server {

absl::StatusOr<std::map<std::string, TokenInfo>> ReadTokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("--tokens: cannot read ", path));
  std::map<std::string, TokenInfo> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    absl::string_view s = absl::StripAsciiWhitespace(line);
    if (s.empty() || s[0] == '#') continue;
    std::vector<std::string> parts = absl::StrSplit(s, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() < 2 || (parts[1] != "read" && parts[1] != "write")) {
      // The line is not echoed: it holds a secret.
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: ", path, " line ", n, ": expected '<token> read|write [name]'"));
    }
    TokenInfo t;
    t.write = parts[1] == "write";
    t.name = parts.size() > 2 ? parts[2] : absl::StrCat("line", n);
    out[parts[0]] = t;
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat("--tokens: ", path, " has no tokens"));
  return out;
}

absl::Status BearerAuth::Authorize(const grpc::CallbackServerContext* ctx, bool write) const {
  if (tokens_.empty()) return absl::OkStatus();
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return AuthorizeBearer(nullptr, write);
  const std::string value(it->second.data(), it->second.size());
  return AuthorizeBearer(&value, write);
}

absl::Status BearerAuth::AuthorizeBearer(const std::string* authorization, bool write,
                                         absl::string_view carrier) const {
  if (tokens_.empty()) return absl::OkStatus();
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing 'authorization: Bearer <token>' ", carrier));
  }
  absl::string_view v(*authorization);
  // The scheme is case-insensitive (RFC 7235 section 2.1).
  if (v.size() < 7 || !absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError(
        absl::StrCat("authorization ", carrier, " is not 'Bearer <token>'"));
  }
  v.remove_prefix(7);
  auto t = tokens_.find(std::string(absl::StripAsciiWhitespace(v)));
  if (t == tokens_.end()) return absl::UnauthenticatedError("unknown bearer token");
  if (write && !t->second.write) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", t->second.name, "' has read scope; this call needs write"));
  }
  return absl::OkStatus();
}

}  // namespace laserd::server
