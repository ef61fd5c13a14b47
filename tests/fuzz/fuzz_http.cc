// libFuzzer: raw HTTP request bytes -> the dashboard / JSON API of
// `laserd serve --http-listen` (server/http_api.cc), in process. The
// httplib::Server gets the real routes and error handler (RegisterHttpApi)
// over the ServerState of server_fuzz_state.h (with a read and a write bearer
// token), and each input is one connection: httplib's own request parsing
// (Server::process_request, reached through a subclass) reads it from memory
// and the responses are written to memory, up to four keep-alive requests per
// input. No socket, no thread.
//
// Checks beyond ASan/UBSan, on the bytes a client would receive: every
// response has a status line; a JSON body (application/json, not compressed,
// not a range) parses as JSON, which rejects invalid UTF-8 echoed from the
// request; an error status (4xx/5xx) to a non-HEAD request has a JSON
// {"error": {"code": <the status>, ...}} body; a 401 carries
// WWW-Authenticate; a 200 on /api/* other than /api/status was sent a valid
// bearer token.
//
// With LASERD_FUZZ_WRITE_SEEDS=DIR set, writes seeds (a request for every
// route, good and bad tokens, odd paths) to DIR and exits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/http_api.h"
#include "tests/fuzz/server_fuzz_state.h"

namespace {

using laserd::fuzz::Die;
using laserd::fuzz::FuzzServer;

// httplib's request processing of one connection, without the socket.
class InProcessServer : public httplib::Server {
 public:
  using httplib::Server::process_request;
};

// The connection: reads the input, collects what the server writes.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(absl::string_view in) : in_(in) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  bool at_end() const { return pos_ >= in_.size(); }
  std::string out;

 private:
  absl::string_view in_;
  size_t pos_ = 0;
};

FuzzServer& State() {
  static FuzzServer* s = new FuzzServer(/*with_tokens=*/true);
  return *s;
}

InProcessServer& Http() {
  static InProcessServer* http = [] {
    auto* h = new InProcessServer;
    laserd::server::RegisterHttpApi(*h, State().state());
    return h;
  }();
  return *http;
}

void Check(bool ok, const std::string& what, const std::string& response) {
  if (!ok) Die(absl::StrCat(what, "\n--- response ---\n", response.substr(0, 2000)));
}

// What setup_request saw of a parsed request.
struct Seen {
  bool parsed = false;
  std::string method, path, authorization;
  bool has_authorization = false;
};

bool ValidBearer(const std::string& v) {
  if (v.size() < 7 || !absl::EqualsIgnoreCase(absl::string_view(v).substr(0, 7), "bearer ")) {
    return false;
  }
  const absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(v).substr(7));
  return t == laserd::fuzz::kReadToken || t == laserd::fuzz::kWriteToken;
}

// One response of `out` from `pos`; advances `pos` past it.
void CheckResponse(const std::string& out, size_t* pos, const Seen& seen) {
  const size_t head_end = out.find("\r\n\r\n", *pos);
  Check(head_end != std::string::npos, "response without an end of headers", out.substr(*pos));
  const std::string head = out.substr(*pos, head_end - *pos);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  int status = 0;
  Check(absl::StartsWith(lines[0], "HTTP/1.1 ") && lines[0].size() >= 12 &&
            absl::SimpleAtoi(lines[0].substr(9, 3), &status) && status >= 100 && status < 600,
        "bad status line", head);
  std::string content_type, content_encoding, www_authenticate;
  size_t content_length = 0;
  bool has_length = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    Check(colon != std::string::npos, "header line without a colon", head);
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    if (name == "content-type") content_type = value;
    if (name == "content-encoding") content_encoding = value;
    if (name == "www-authenticate") www_authenticate = value;
    if (name == "content-length") has_length = absl::SimpleAtoi(value, &content_length);
  }
  // A request that did not parse may still have had its method read (httplib
  // then omits the body of a HEAD): no body, or all of it, is right.
  const size_t rest = out.size() - (head_end + 4);
  const bool head_request = seen.parsed ? seen.method == "HEAD" : rest < content_length;
  size_t body_len = head_request ? 0 : content_length;
  Check(head_end + 4 + body_len <= out.size(), "body shorter than Content-Length", head);
  const std::string body = out.substr(head_end + 4, body_len);
  *pos = head_end + 4 + body_len;

  const bool json = absl::StartsWith(content_type, "application/json");
  if (json && !head_request && content_encoding.empty() && status != 206) {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    Check(!j.is_discarded(), "a JSON body that is not JSON (or not UTF-8)", head + "\n" + body);
    if (status >= 400) {
      Check(j.is_object() && j.contains("error") && j["error"].is_object() &&
                j["error"].value("code", 0) == status && j["error"].contains("message"),
            "error body is not {\"error\": {\"code\": <status>, ...}}", head + "\n" + body);
    }
  }
  if (status >= 400 && !head_request && content_encoding.empty()) {
    Check(has_length && json, "error response without a JSON body", head + "\n" + body);
  }
  if (status == 401) Check(!www_authenticate.empty(), "401 without WWW-Authenticate", head);
  if (status == 200 && seen.parsed && absl::StartsWith(seen.path, "/api/") &&
      seen.path != "/api/status") {
    Check(seen.has_authorization && ValidBearer(seen.authorization),
          absl::StrCat("200 on ", seen.path, " without a valid token"), head);
  }
}

void WriteSeeds(const std::string& dir) {
  const std::string read = absl::StrCat("Authorization: Bearer ", laserd::fuzz::kReadToken, "\r\n");
  const std::string write =
      absl::StrCat("Authorization: bearer  ", laserd::fuzz::kWriteToken, " \r\n");
  auto get = [](const std::string& target, const std::string& headers = "") {
    return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: localhost\r\n", headers, "\r\n");
  };
  std::vector<std::string> seeds = {
      get("/"),
      get("/index.html"),
      get("/dashboard.js"),
      get("/style.css", "Range: bytes=0-10\r\n"),
      get("/favicon.svg", "Accept-Encoding: gzip\r\n"),
      get("/metrics"),
      get("/api/status"),
      get("/api/model", read),
      get("/api/model"),
      get("/api/model", "Authorization: Bearer nope\r\n"),
      get("/api/model", "Authorization: Basic cmVhZC10b2tlbjo=\r\n"),
      get("/api/jobs", write),
      get("/api/jobs/job-done", read),
      get("/api/jobs/job-queued", read),
      get("/api/jobs/job-done/results", read),
      get("/api/jobs/job-done/results?page_size=1&page_token=1&order_by=validation.accuracy%20desc"
          "&matrix_type=mlp.out&layer=0,1&kind=single",
          read),
      get("/api/jobs/job-done/results?kind=composition&layer=x", read),
      get("/api/jobs/job-done/results?page_size=1&page_size=2", read),
      get("/api/spectrum?matrix_type=mlp.out&layer=1", read),
      get("/api/spectrum?matrix_type=attn.q&layer=-1", read),
      get("/api/jobs/%FF", read),
      get("/api/jobs/\xff\xfe", read),
      get("/api/jobs/a%00b/results", read),
      get(std::string("/api/jobs/a\0b", 12), read),
      get("/api/jobs?x=%FF", read),
      get("/nowhere/%FF"),
      get(absl::StrCat("/api/jobs/", std::string(9000, 'a')), read),
      get(absl::StrCat("/", std::string(3000, 'x'), "?", std::string(3000, '%'))),
      "POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd",
      "DELETE /api/jobs/job-done HTTP/1.1\r\n\r\n",
      "HEAD /api/status HTTP/1.1\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\n\r\n",
      "BREW /pot HTTP/1.1\r\n\r\n",
      "GET /api/status HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
      "GET /api/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      absl::StrCat(get("/api/status"), get("/api/jobs", read), get("/metrics")),
      "GET /api/status HTTP/1.0\r\n\r\n",
      "\xff\xfe / HTTP/1.1\r\n\r\n",
  };
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(absl::StrCat(dir, "/request_", i), std::ios::binary) << seeds[i];
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Http();  // the model, fixtures and routes, before the first input
  if (const char* dir = std::getenv("LASERD_FUZZ_WRITE_SEEDS")) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryStream strm(absl::string_view(reinterpret_cast<const char*>(data), size));
  for (int i = 0; i < 4 && !strm.at_end(); ++i) {
    Seen seen;
    const size_t before = strm.out.size();
    bool closed = false;
    const bool last = i == 3;
    const bool ok = Http().process_request(strm, last, closed, [&](httplib::Request& req) {
      seen.parsed = true;
      seen.method = req.method;
      seen.path = req.path;
      seen.has_authorization = req.has_header("Authorization");
      if (seen.has_authorization) seen.authorization = req.get_header_value("Authorization");
    });
    for (size_t pos = before; pos < strm.out.size();) CheckResponse(strm.out, &pos, seen);
    if (!ok || closed) break;
  }
  return 0;
}
