#include "server/http_api.h"

#include <chrono>
#include <functional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "server/grpc_status.h"
#include "server/status_json.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

namespace pb = ::laser::v1;
using Json = nlohmann::json;

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& s) {
  return DumpJson(Json{{"error",
                        {{"code", HttpStatusOf(s.code())},
                         {"status", GrpcCodeName(ToGrpcCode(s.code()))},
                         {"message", std::string(s.message())}}}});
}

namespace {

using Clock = std::chrono::steady_clock;

Json ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string s;
  // Every laser.v1 message converts (no Any fields); an error would be a bug.
  if (!google::protobuf::util::MessageToJsonString(m, &s, o).ok()) return Json::object();
  Json j = Json::parse(s, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json::object() : j;
}

// The query parameters of a request, each allowed name at most once.
class Query {
 public:
  // INVALID_ARGUMENT for a parameter not in `allowed` or given twice.
  static absl::StatusOr<Query> Of(const httplib::Request& req,
                                  const std::set<std::string>& allowed) {
    Query q;
    for (const auto& [k, v] : req.params) {
      if (!allowed.count(k)) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown query parameter '", k, "' (this path takes ",
                         allowed.empty() ? "none" : absl::StrJoin(allowed, ", "), ")"));
      }
      if (q.values_.count(k)) {
        return absl::InvalidArgumentError(absl::StrCat(k, ": given more than once"));
      }
      q.values_[k] = v;
    }
    return q;
  }
  const std::string* Get(const std::string& k) const {
    auto it = values_.find(k);
    return it == values_.end() ? nullptr : &it->second;
  }
  // An int32 parameter (absent: `dflt`).
  absl::StatusOr<int32_t> Int(const std::string& k, int32_t dflt) const {
    const std::string* v = Get(k);
    if (v == nullptr) return dflt;
    int32_t x = 0;
    if (!absl::SimpleAtoi(*v, &x)) {
      return absl::InvalidArgumentError(absl::StrCat(k, ": '", *v, "' is not an integer"));
    }
    return x;
  }
  // A comma-separated list (absent or empty: none).
  std::vector<std::string> List(const std::string& k) const {
    const std::string* v = Get(k);
    if (v == nullptr) return {};
    return absl::StrSplit(*v, ',', absl::SkipWhitespace());
  }

 private:
  std::map<std::string, std::string> values_;
};

using Body = absl::StatusOr<std::string>;

absl::StatusOr<pb::ResultKind> KindOf(const std::string& s) {
  if (s == "single") return pb::RESULT_KIND_SINGLE;
  if (s == "composition") return pb::RESULT_KIND_COMPOSITION;
  return absl::InvalidArgumentError(
      absl::StrCat("kind: '", s, "' is not 'single' or 'composition'"));
}

// GET /api/jobs/{id}/results: a ListResults page plus what a dashboard shows
// beside it (the job's state, progress, baseline, best single intervention and
// best composition).
Body Results(ServerState& state, const std::string& id, const Query& q) {
  pb::ListResultsRequest req;
  req.set_job_id(id);
  LASERD_ASSIGN_OR_RETURN(const int32_t size, q.Int("page_size", 0));
  req.set_page_size(size);
  if (const std::string* t = q.Get("page_token")) req.set_page_token(*t);
  if (const std::string* o = q.Get("order_by")) req.set_order_by(*o);
  for (const std::string& t : q.List("matrix_type")) req.add_matrix_types(t);
  for (const std::string& l : q.List("layer")) {
    int32_t x = 0;
    if (!absl::SimpleAtoi(l, &x)) {
      return absl::InvalidArgumentError(absl::StrCat("layer: '", l, "' is not an integer"));
    }
    req.add_layers(x);
  }
  if (const std::string* k = q.Get("kind")) {
    LASERD_ASSIGN_OR_RETURN(const pb::ResultKind kind, KindOf(*k));
    req.set_kind(kind);
  }
  // The job first: its best and baseline then never lead the listed results.
  LASERD_ASSIGN_OR_RETURN(const pb::Job job, state.sweeps.GetJob(id));
  LASERD_ASSIGN_OR_RETURN(const pb::ListResultsResponse page, state.sweeps.ListResults(req));
  Json out = ToJson(page);
  out["job_id"] = id;
  out["state"] = pb::JobState_Name(job.state());
  out["result_count"] = std::to_string(job.result_count());
  out["progress"] = ToJson(job.progress());
  if (job.progress().has_best()) out["best"] = ToJson(job.progress().best());
  if (job.has_best_composition()) out["best_composition"] = ToJson(job.best_composition());
  if (!out.contains("results")) out["results"] = Json::array();
  return DumpJson(out);
}

// GET /api/status: open to probes (no token needed); the running job's id
// only for a request with a valid token, or any request without --tokens, as
// every other job id.
Body Status(ServerState& state, const httplib::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  const bool authorized =
      state.auth.AuthorizeBearer(req.has_header("Authorization") ? &h : nullptr, /*write=*/false)
          .ok();
  return StatusJson(state, /*show_job_ids=*/authorized);
}

Body Spectrum(ServerState& state, const Query& q) {
  pb::GetSpectrumRequest req;
  const std::string* type = q.Get("matrix_type");
  if (type == nullptr || type->empty()) {
    return absl::InvalidArgumentError("matrix_type: required");
  }
  req.set_matrix_type(*type);
  if (q.Get("layer") == nullptr) return absl::InvalidArgumentError("layer: required");
  LASERD_ASSIGN_OR_RETURN(const int32_t layer, q.Int("layer", 0));
  req.set_layer(layer);
  LASERD_ASSIGN_OR_RETURN(const pb::Spectrum sp, state.models.GetSpectrum(req));
  return DumpJson(ToJson(sp));
}

void SetJson(httplib::Response& res, const Body& body) {
  res.set_header("Cache-Control", "no-store");
  if (body.ok()) {
    // The status is left to httplib: 200, or 206 with the part a Range header
    // asked for (setting 200 here would send that part as a whole 200 body).
    res.set_content(*body, "application/json");
  } else {
    res.status = HttpStatusOf(body.status().code());
    if (res.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"laserd\"");
    res.set_content(ErrorJson(body.status()), "application/json");
  }
}

// A JSON route: authorizes (read scope), parses the query, answers, and
// records the request in the RPC metrics as "HTTP <name>".
using Handler = std::function<Body(const httplib::Request&, const Query&)>;
httplib::Server::Handler Route(ServerState& state, std::string name, std::set<std::string> params,
                               bool authorize, Handler fn) {
  return [&state, name = std::move(name), params = std::move(params), authorize, fn](
             const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    Body body = std::string();
    absl::Status st = absl::OkStatus();
    if (authorize) {
      if (req.has_header("Authorization")) {
        const std::string h = req.get_header_value("Authorization");
        st = state.auth.AuthorizeBearer(&h, /*write=*/false, "header");
      } else {
        st = state.auth.AuthorizeBearer(nullptr, /*write=*/false, "header");
      }
    }
    if (st.ok()) {
      auto q = Query::Of(req, params);
      body = q.ok() ? fn(req, *q) : Body(q.status());
    } else {
      body = st;
    }
    SetJson(res, body);
    const absl::StatusCode code = body.ok() ? absl::StatusCode::kOk : body.status().code();
    state.prometheus.RecordRpc(absl::StrCat("HTTP ", name), GrpcCodeName(ToGrpcCode(code)),
                               std::chrono::duration<double>(Clock::now() - t0).count());
  };
}

}  // namespace

void RegisterHttpApi(httplib::Server& http, ServerState& state) {
  // httplib reads any body a request declares (its default limit is SIZE_MAX).
  http.set_payload_max_length(kMaxHttpBodyBytes);
  http.Get("/metrics", [&state](const httplib::Request&, httplib::Response& res) {
    res.set_content(state.prometheus.Render(SampleServer(state)), "text/plain; version=0.0.4");
  });
  http.Get("/api/status", Route(state, "status", {}, /*authorize=*/false,
                                [&state](const httplib::Request& req, const Query&) -> Body {
                                  return Status(state, req);
                                }));
  http.Get("/api/model",
           Route(state, "model", {}, true, [&state](const httplib::Request&, const Query&) -> Body {
             LASERD_ASSIGN_OR_RETURN(const pb::ModelInfo mi, state.models.DescribeModel());
             return DumpJson(ToJson(mi));
           }));
  http.Get("/api/spectrum",
           Route(state, "spectrum", {"matrix_type", "layer"}, true,
                 [&state](const httplib::Request&, const Query& q) { return Spectrum(state, q); }));
  http.Get("/api/jobs",
           Route(state, "jobs", {}, true, [&state](const httplib::Request&, const Query&) -> Body {
             return JobsJson(state);
           }));
  http.Get(
      R"(/api/jobs/([^/]+))",
      Route(state, "job", {}, true, [&state](const httplib::Request& req, const Query&) -> Body {
        LASERD_ASSIGN_OR_RETURN(const pb::Job j, state.sweeps.GetJob(req.matches[1]));
        return DumpJson(ToJson(j));
      }));
  http.Get(R"(/api/jobs/([^/]+)/results)",
           Route(state, "results",
                 {"page_size", "page_token", "order_by", "matrix_type", "layer", "kind"}, true,
                 [&state](const httplib::Request& req, const Query& q) {
                   return Results(state, req.matches[1], q);
                 }));

  // The dashboard: web/ compiled in. "/" is index.html.
  for (const WebAsset& a : WebAssets()) {
    auto serve = [&a](const httplib::Request&, httplib::Response& res) {
      // Everything comes from this server; nothing is loaded from the network.
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                     "connect-src 'self'; frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Cache-Control", "no-cache");
      res.set_content(std::string(a.bytes), std::string(a.content_type));
    };
    http.Get(std::string(a.path), serve);
    if (a.path == "/index.html") http.Get("/", serve);
  }

  // Any other path or method: a JSON error rather than an empty body. Every
  // error (a route's JSON error too) passes here first: a Range header must not
  // slice it (httplib 0.11 applies the request's ranges to the body of every
  // routed response and of a Handled error, and would send a part of the JSON
  // with the error status). The ranges are dropped as later httplib versions
  // do before writing an error; `req` is the server's own non-const Request.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                 httplib::Response& res) {
    const_cast<httplib::Request&>(req).ranges.clear();
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      res.set_content(
          ErrorJson(absl::NotFoundError(absl::StrCat("no route for ", req.method, " ", req.path))),
          "application/json");
    } else {
      res.set_content(
          DumpJson(Json{{"error",
                         {{"code", res.status},
                          {"status", res.status < 500 ? "INVALID_ARGUMENT" : "INTERNAL"},
                          {"message", absl::StrCat("HTTP ", res.status)}}}}),
          "application/json");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
}

}  // namespace laserd::server
