// laserctl: command-line client of a laserd server (laser.v1 over gRPC).
// docs/cli.md, section "laserctl", documents the commands and exit codes.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/laserctl_core.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "proto/spec_io.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

struct Global {
  std::string server;
  std::string token;
  std::string token_file;
  std::string tls_ca;
  bool tls = false;
  double timeout = 30;
};

// Errors: a message on stderr and the exit code.
struct Failure {
  int code;
  std::string message;
};

int Fail(const Failure& f) {
  std::cerr << "laserctl: " << f.message << "\n";
  return f.code;
}

int FailRpc(const std::string& what, const grpc::Status& st) {
  return Fail({ExitCodeForStatusCode(st.error_code()),
               absl::StrCat(what, ": ", StatusCodeName(static_cast<int>(st.error_code())), ": ",
                            st.error_message())});
}

int FailStatus(const absl::Status& st) {
  return Fail({ExitCodeForStatusCode(static_cast<int>(st.code())), std::string(st.message())});
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Connection {
 public:
  explicit Connection(const Global& g) : g_(g) {}

  absl::Status Init() {
    if (g_.server.empty()) {
      const char* env = std::getenv("LASERD_SERVER");
      g_.server = env && *env ? env : "localhost:50051";
    }
    if (g_.token.empty() && !g_.token_file.empty()) {
      auto t = ReadFile(g_.token_file);
      if (!t.ok()) return t.status();
      g_.token = std::string(absl::StripAsciiWhitespace(*t));
    }
    if (g_.token.empty()) {
      const char* env = std::getenv("LASERD_TOKEN");
      if (env) g_.token = env;
    }
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (!g_.tls_ca.empty() || g_.tls) {
      grpc::SslCredentialsOptions opts;
      if (!g_.tls_ca.empty()) {
        auto ca = ReadFile(g_.tls_ca);
        if (!ca.ok()) return ca.status();
        opts.pem_root_certs = *ca;
      }
      creds = grpc::SslCredentials(opts);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(g_.server, creds, args);
    sweeps_ = pb::SweepService::NewStub(channel_);
    models_ = pb::ModelService::NewStub(channel_);
    datasets_ = pb::DatasetService::NewStub(channel_);
    return absl::OkStatus();
  }

  // A context with the token and, unless `streaming`, the deadline.
  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!g_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + g_.token);
    if (!streaming && g_.timeout > 0) {
      ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(g_.timeout * 1000)));
    }
    return ctx;
  }

  pb::SweepService::Stub& sweeps() { return *sweeps_; }
  pb::ModelService::Stub& models() { return *models_; }
  pb::DatasetService::Stub& datasets() { return *datasets_; }
  const Global& global() const { return g_; }

 private:
  Global g_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::SweepService::Stub> sweeps_;
  std::unique_ptr<pb::ModelService::Stub> models_;
  std::unique_ptr<pb::DatasetService::Stub> datasets_;
};

std::string PrettyJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string Timestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  char buf[32];
  time_t s = t.seconds();
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void PrintJobSummary(const pb::Job& j) {
  std::cout << "id:        " << j.id() << "\n"
            << "state:     " << JobStateName(j.state())
            << (j.cancel_requested() && !IsTerminal(j.state()) ? " (cancel requested)" : "") << "\n"
            << "progress:  " << ProgressLine(j.progress()) << "\n"
            << "results:   " << j.result_count() << "\n"
            << "examples:  validation " << j.validation_examples() << ", test " << j.test_examples()
            << "\n"
            << "created:   " << Timestamp(j.create_time()) << "\n";
  if (j.has_baseline()) {
    std::cout << absl::StrFormat("baseline:  val acc %.2f loss %.4f, test acc %.2f loss %.4f\n",
                                 j.baseline().validation().accuracy(),
                                 j.baseline().validation().log_loss(),
                                 j.baseline().test().accuracy(), j.baseline().test().log_loss());
  }
  if (j.progress().has_best()) {
    std::cout << "best:      " << TableRow(j.progress().best()) << "\n";
  }
  if (j.state() == pb::JOB_STATE_FAILED) {
    std::cout << "error:     " << StatusCodeName(j.error().code()) << ": " << j.error().message()
              << "\n";
  }
  for (const auto& [k, v] : j.spec().labels()) std::cout << "label:     " << k << "=" << v << "\n";
}

// ------------------------------------------------------------------ watch

struct WatchOptions {
  Format format = Format::kTable;
  bool quiet = false;      // no progress on stderr
  double retry_for = 300;  // give up reconnecting after this many seconds without success
  int best_rows = 5;
};

// The stderr display: on a terminal, a block (progress bar + best-so-far table)
// redrawn in place; otherwise plain lines.
class Display {
 public:
  Display(bool enabled, int best_rows)
      : enabled_(enabled), tty_(isatty(2)), best_(static_cast<size_t>(best_rows)) {}

  void Progress(const pb::Progress& p) {
    progress_ = p;
    have_progress_ = true;
    if (!enabled_) return;
    if (tty_) {
      Redraw();
    } else {
      const int decile = static_cast<int>(p.fraction() * 10);
      auto now = std::chrono::steady_clock::now();
      if (decile != last_decile_ || now - last_line_ > std::chrono::seconds(30)) {
        last_decile_ = decile;
        last_line_ = now;
        std::cerr << ProgressLine(p) << "\n";
      }
    }
  }

  void Result(const pb::Result& r) {
    const bool changed = best_.Add(r);
    if (!enabled_) return;
    if (tty_) {
      Redraw();
    } else if (changed && best_.rows().front().index() == r.index()) {
      std::cerr << "best so far: " << TableRow(r) << "\n";
    }
  }

  void Note(const std::string& line) {
    if (!enabled_) return;
    Clear();
    std::cerr << line << "\n";
    drawn_ = 0;
    if (tty_) Redraw();
  }

  // Before a line goes to stdout: on a terminal the block is erased first (stdout and
  // stderr usually share it), and the next Result() redraws it below the line.
  void BeforeOutput() {
    if (enabled_ && tty_) {
      Clear();
      std::cerr.flush();
    }
  }

  void Finish() {
    if (enabled_ && tty_) std::cerr.flush();
  }

 private:
  void Clear() {
    if (tty_ && drawn_ > 0) std::cerr << "\x1b[" << drawn_ << "F\x1b[J";
    drawn_ = 0;
  }
  void Redraw() {
    Clear();
    int lines = 0;
    if (have_progress_) {
      std::cerr << ProgressBar(progress_) << "\n";
      ++lines;
    }
    if (!best_.rows().empty()) {
      std::cerr << "best so far:\n" << TableHeader() << "\n";
      lines += 2;
      for (const auto& r : best_.rows()) {
        std::cerr << TableRow(r) << "\n";
        ++lines;
      }
    }
    std::cerr.flush();
    drawn_ = lines;
  }

  bool enabled_;
  bool tty_;
  BestTable best_;
  pb::Progress progress_;
  bool have_progress_ = false;
  int drawn_ = 0;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point last_line_{};
};

bool Retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::INTERNAL || c == grpc::StatusCode::UNKNOWN ||
         c == grpc::StatusCode::ABORTED || c == grpc::StatusCode::CANCELLED;
}

int Watch(Connection& conn, const std::string& job_id, int64_t from, const WatchOptions& o) {
  WatchCursor cursor(from);
  Display display(!o.quiet, o.best_rows);
  bool header_printed = false;
  pb::JobState state = pb::JOB_STATE_UNSPECIFIED;
  std::mt19937_64 rng(std::random_device{}());
  double backoff = 0.25;
  auto last_ok = std::chrono::steady_clock::now();
  for (;;) {
    auto ctx = conn.Context(/*streaming=*/true);
    pb::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_from_result_index(cursor.next_index());
    auto reader = conn.sweeps().WatchJob(ctx.get(), req);
    pb::WatchJobEvent ev;
    bool gap = false;
    bool got_event = false;
    while (reader->Read(&ev)) {
      got_event = true;
      last_ok = std::chrono::steady_clock::now();
      backoff = 0.25;
      switch (ev.event_case()) {
        case pb::WatchJobEvent::kJob:
          state = ev.job().state();
          if (ev.job().has_progress()) display.Progress(ev.job().progress());
          break;
        case pb::WatchJobEvent::kStateChange:
          state = ev.state_change().current();
          display.Note(absl::StrCat("state: ", JobStateName(ev.state_change().previous()), " -> ",
                                    JobStateName(state)));
          if (state == pb::JOB_STATE_FAILED) {
            display.Note(absl::StrCat("error: ", ev.state_change().error().message()));
          }
          break;
        case pb::WatchJobEvent::kProgress:
          display.Progress(ev.progress());
          break;
        case pb::WatchJobEvent::kBaseline:
          display.Note(absl::StrFormat(
              "baseline: val acc %.2f loss %.4f, test acc %.2f loss %.4f",
              ev.baseline().validation().accuracy(), ev.baseline().validation().log_loss(),
              ev.baseline().test().accuracy(), ev.baseline().test().log_loss()));
          break;
        case pb::WatchJobEvent::kResult: {
          const pb::Result& r = ev.result();
          auto v = cursor.Offer(r);
          if (v == WatchCursor::Verdict::kDuplicate) break;
          if (v == WatchCursor::Verdict::kGap) {
            display.Note(absl::StrCat("result ", r.index(), " arrived before ", cursor.next_index(),
                                      "; resuming from ", cursor.next_index()));
            gap = true;
            break;
          }
          display.BeforeOutput();
          if (o.format == Format::kJson) {
            std::cout << JsonLine(r) << "\n";
          } else if (o.format == Format::kCsv) {
            if (!header_printed) {
              std::string head = FormatResults({r}, Format::kCsv);
              std::cout << head.substr(0, head.find('\n') + 1);
              header_printed = true;
            }
            std::string text = FormatResults({r}, Format::kCsv);
            std::cout << text.substr(text.find('\n') + 1);
          } else {
            if (!header_printed) {
              std::cout << TableHeader() << "\n";
              header_printed = true;
            }
            std::cout << TableRow(r) << "\n";
          }
          std::cout.flush();
          display.Result(r);
          break;
        }
        default:
          break;
      }
      if (gap) break;
    }
    if (gap) {
      ctx->TryCancel();
      reader->Finish();
      continue;
    }
    grpc::Status st = reader->Finish();
    if (st.ok() && IsTerminal(state)) {
      display.Finish();
      std::cerr << "job " << job_id << " " << JobStateName(state) << " (" << cursor.next_index()
                << " results)\n";
      return ExitCodeForJobState(state);
    }
    if (!st.ok() && !Retryable(st.error_code())) return FailRpc("watch " + job_id, st);
    // Dropped (or ended without a terminal state): reconnect from the cursor.
    const double since =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_ok).count();
    if (since > o.retry_for) {
      return FailRpc(absl::StrCat("watch ", job_id, ": gave up reconnecting after ",
                                  static_cast<int>(since), " s"),
                     st.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended") : st);
    }
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    const double wait = backoff * jitter(rng);
    display.Note(absl::StrFormat("connection lost (%s); reconnecting in %.1f s from result %d",
                                 st.ok() ? "stream ended" : st.error_message(), wait,
                                 cursor.next_index()));
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    backoff = got_event ? 0.25 : std::min(backoff * 2, 10.0);
  }
}

// ------------------------------------------------------------------ commands

int Submit(Connection& conn, const std::string& spec_file, const SpecFlags& flags,
           const std::string& request_id, bool validate_only, bool watch, const WatchOptions& wo) {
  pb::SweepSpec base;
  if (!spec_file.empty()) {
    auto text = ReadFile(spec_file);
    if (!text.ok()) return FailStatus(text.status());
    auto spec = proto::ParseSweepSpecText(*text, spec_file);
    if (!spec.ok()) return Fail({kExitUsage, std::string(spec.status().message())});
    base = *spec;
  }
  auto spec = ApplySpecFlags(flags, base);
  if (!spec.ok()) return Fail({kExitUsage, std::string(spec.status().message())});
  pb::CreateSweepRequest req;
  *req.mutable_spec() = *spec;
  req.set_request_id(request_id);
  req.set_validate_only(validate_only);
  pb::Job job;
  auto ctx = conn.Context();
  auto st = conn.sweeps().CreateSweep(ctx.get(), req, &job);
  if (!st.ok()) return FailRpc("submit", st);
  if (validate_only) {
    std::cout << "valid: " << job.progress().interventions_total() << " interventions\n";
    return kExitOk;
  }
  std::cout << job.id() << "\n";
  std::cout.flush();
  if (watch) return Watch(conn, job.id(), 0, wo);
  return kExitOk;
}

int Get(Connection& conn, const std::string& id, bool json) {
  pb::GetJobRequest req;
  req.set_job_id(id);
  pb::Job job;
  auto ctx = conn.Context();
  auto st = conn.sweeps().GetJob(ctx.get(), req, &job);
  if (!st.ok()) return FailRpc("get " + id, st);
  if (json) {
    std::cout << PrettyJson(job) << "\n";
  } else {
    PrintJobSummary(job);
  }
  return kExitOk;
}

int List(Connection& conn, const std::vector<std::string>& states,
         const std::vector<std::string>& labels, int page_size, std::string page_token, bool all,
         bool json) {
  pb::ListJobsRequest req;
  for (const auto& s : states) {
    auto st = ParseJobState(s);
    if (!st.ok()) return Fail({kExitUsage, std::string(st.status().message())});
    req.add_states(*st);
  }
  for (const auto& l : labels) {
    auto kv = ParseLabel(l);
    if (!kv.ok()) return Fail({kExitUsage, std::string(kv.status().message())});
    (*req.mutable_labels())[kv->first] = kv->second;
  }
  req.set_page_size(page_size);
  if (!json) {
    std::cout << absl::StrFormat("%-28s %-10s %9s %8s  %-20s  %s\n", "id", "state", "progress",
                                 "results", "created", "labels");
  }
  for (;;) {
    req.set_page_token(page_token);
    pb::ListJobsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.sweeps().ListJobs(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("list", st);
    for (const auto& j : resp.jobs()) {
      if (json) {
        std::cout << JsonLine(j) << "\n";
        continue;
      }
      std::string lab;
      for (const auto& [k, v] : j.spec().labels())
        absl::StrAppend(&lab, lab.empty() ? "" : ",", k, "=", v);
      std::cout << absl::StrFormat("%-28s %-10s %8.0f%% %8d  %-20s  %s\n", j.id(),
                                   JobStateName(j.state()), 100 * j.progress().fraction(),
                                   j.result_count(), Timestamp(j.create_time()), lab);
    }
    page_token = resp.next_page_token();
    if (page_token.empty()) break;
    if (!all) {
      std::cerr << "more: --page-token " << page_token << " (or --all)\n";
      break;
    }
  }
  return kExitOk;
}

int Cancel(Connection& conn, const std::string& id) {
  pb::CancelJobRequest req;
  req.set_job_id(id);
  pb::Job job;
  auto ctx = conn.Context();
  auto st = conn.sweeps().CancelJob(ctx.get(), req, &job);
  if (!st.ok()) return FailRpc("cancel " + id, st);
  std::cout << job.id() << " " << JobStateName(job.state())
            << (job.cancel_requested() && !IsTerminal(job.state()) ? " (cancel requested)" : "")
            << "\n";
  return kExitOk;
}

int Delete(Connection& conn, const std::string& id, bool force) {
  pb::DeleteJobRequest req;
  req.set_job_id(id);
  req.set_force(force);
  google::protobuf::Empty empty;
  auto ctx = conn.Context();
  auto st = conn.sweeps().DeleteJob(ctx.get(), req, &empty);
  if (!st.ok()) return FailRpc("delete " + id, st);
  std::cout << "deleted " << id << "\n";
  return kExitOk;
}

int Results(Connection& conn, const std::string& id, Format format, const std::string& order_by,
            const std::vector<std::string>& types, const std::vector<int>& layers, int page_size) {
  pb::ListResultsRequest req;
  req.set_job_id(id);
  req.set_order_by(order_by);
  req.set_page_size(page_size);
  for (const auto& t : types) req.add_matrix_types(t);
  for (int l : layers) req.add_layers(l);
  std::vector<pb::Result> all;
  std::string token;
  do {
    req.set_page_token(token);
    pb::ListResultsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.sweeps().ListResults(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("results " + id, st);
    for (auto& r : *resp.mutable_results()) all.push_back(std::move(r));
    token = resp.next_page_token();
  } while (!token.empty());
  std::cout << FormatResults(all, format);
  return kExitOk;
}

int Model(Connection& conn, bool json) {
  pb::ModelInfo m;
  auto ctx = conn.Context();
  auto st = conn.models().DescribeModel(ctx.get(), pb::DescribeModelRequest(), &m);
  if (!st.ok()) return FailRpc("model", st);
  if (json) {
    std::cout << PrettyJson(m) << "\n";
    return kExitOk;
  }
  std::cout << "name:          " << m.name() << "\n"
            << "path:          " << m.path() << "\n"
            << "format:        " << m.format() << " (sha256 " << m.sha256() << ")\n"
            << "architecture:  " << m.architecture() << ", " << m.num_layers() << " layers, hidden "
            << m.hidden_size() << ", mlp " << m.intermediate_size() << ", heads "
            << m.num_attention_heads() << "/" << m.num_key_value_heads() << "\n"
            << "vocab/context: " << m.vocab_size() << " / " << m.context_length() << "\n"
            << "parameters:    " << m.parameter_count() << "\n"
            << "compute:       " << m.compute_dtype() << " on " << pb::Device_Name(m.device())
            << " " << m.device_name() << "\n"
            << absl::StrFormat("memory:        weights %.1f MiB, cache %.1f / %.1f MiB\n",
                               m.memory().weights_bytes() / 1048576.0,
                               m.memory().cache_bytes() / 1048576.0,
                               m.memory().cache_budget_bytes() / 1048576.0)
            << absl::StrFormat("%-9s %7s %7s %8s  %-8s %s\n", "matrix", "rows", "cols", "max_rank",
                               "dtype", "tensor (layer 0)");
  for (const auto& t : m.matrix_types()) {
    std::cout << absl::StrFormat("%-9s %7d %7d %8d  %-8s %s%s\n", t.matrix_type(), t.rows(),
                                 t.cols(), t.max_rank(), t.source_dtype(), t.source_tensor(),
                                 t.fused_block().empty() ? "" : " [" + t.fused_block() + "]");
  }
  return kExitOk;
}

int Spectrum(Connection& conn, const std::string& type, int layer, bool values, bool json) {
  pb::GetSpectrumRequest req;
  req.set_matrix_type(type);
  req.set_layer(layer);
  pb::Spectrum s;
  auto ctx = conn.Context();
  auto st = conn.models().GetSpectrum(ctx.get(), req, &s);
  if (!st.ok()) return FailRpc("spectrum", st);
  if (json) {
    std::cout << JsonLine(s) << "\n";
    return kExitOk;
  }
  const auto& mp = s.marchenko_pastur();
  std::cout << s.matrix_type() << " layer " << s.layer() << ": " << s.rows() << " x " << s.cols()
            << ", max rank " << s.max_rank() << "\n"
            << absl::StrFormat("frobenius norm:   %.6g\n", s.frobenius_norm());
  if (s.singular_values_size() > 0) {
    std::cout << absl::StrFormat("singular values:  %.6g (max) .. %.6g (min)\n",
                                 s.singular_values(0),
                                 s.singular_values(s.singular_values_size() - 1));
  }
  std::cout << absl::StrFormat(
      "marchenko-pastur: sigma %.6g, beta %.6g, threshold %.6g\n"
      "suggested rank:   %d (rho %.4f), relative error %.4f\n",
      mp.sigma(), mp.beta(), mp.threshold(), mp.suggested_rank(), mp.suggested_rho(),
      mp.relative_error());
  if (values) {
    for (double v : s.singular_values()) std::cout << absl::StrFormat("%.9g\n", v);
  }
  return kExitOk;
}

int Upload(Connection& conn, const std::string& path, std::string name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail({kExitNotFound, "cannot read " + path});
  if (name.empty()) name = path.substr(path.find_last_of('/') + 1);
  pb::Dataset ds;
  auto ctx = conn.Context(/*streaming=*/true);
  auto writer = conn.datasets().UploadDataset(ctx.get(), &ds);
  pb::UploadDatasetRequest head;
  head.mutable_header()->set_display_name(name);
  bool ok = writer->Write(head);
  std::string buf(1 << 20, '\0');
  while (ok && in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    pb::UploadDatasetRequest chunk;
    chunk.set_chunk(buf.data(), static_cast<size_t>(n));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  auto st = writer->Finish();
  if (!st.ok()) return FailRpc("datasets upload " + path, st);
  std::cout << ds.id() << "\n";
  std::cerr << absl::StrFormat("%s: %d bytes, %d examples (%d completion, %d choice)\n",
                               ds.display_name(), ds.size_bytes(), ds.example_count(),
                               ds.completion_count(), ds.choice_count());
  return kExitOk;
}

int ListDatasets(Connection& conn, bool json) {
  pb::ListDatasetsRequest req;
  std::string token;
  if (!json) {
    std::cout << absl::StrFormat("%-64s %10s %8s  %-20s  %s\n", "id", "bytes", "examples",
                                 "created", "name");
  }
  do {
    req.set_page_token(token);
    pb::ListDatasetsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.datasets().ListDatasets(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("datasets list", st);
    for (const auto& d : resp.datasets()) {
      if (json) {
        std::cout << JsonLine(d) << "\n";
      } else {
        std::cout << absl::StrFormat("%-64s %10d %8d  %-20s  %s\n", d.id(), d.size_bytes(),
                                     d.example_count(), Timestamp(d.create_time()),
                                     d.display_name());
      }
    }
    token = resp.next_page_token();
  } while (!token.empty());
  return kExitOk;
}

int Merge(const std::vector<std::string>& inputs, const std::string& out, bool allow_incomplete) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& p : inputs) {
    auto t = ReadFile(p);
    if (!t.ok()) return FailStatus(t.status());
    files.emplace_back(p, *std::move(t));
  }
  auto merged = MergeResults(files, allow_incomplete);
  if (!merged.ok()) return FailStatus(merged.status());
  if (out.empty() || out == "-") {
    std::cout << *merged;
    return kExitOk;
  }
  const std::string tmp = out + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    o << *merged;
    o.flush();
    if (!o) return Fail({kExitError, "cannot write " + tmp});
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    return Fail({kExitError, "cannot rename " + tmp + " to " + out});
  }
  return kExitOk;
}

int Run(int argc, char** argv) {
  CLI::App app{"laserctl: client of a laserd server (laser.v1 gRPC API)"};
  app.require_subcommand(1);
  Global g;
  app.add_option("--server", g.server,
                 "HOST:PORT of laserd (env LASERD_SERVER; default localhost:50051)");
  app.add_option("--token", g.token, "Bearer token (env LASERD_TOKEN)");
  app.add_option("--token-file", g.token_file, "File holding the bearer token");
  app.add_option("--tls-ca", g.tls_ca, "PEM root certificates; enables TLS");
  app.add_flag("--tls", g.tls, "Use TLS with the system's root certificates");
  app.add_option("--timeout", g.timeout, "Deadline of each unary call in seconds (0: none)")
      ->default_val(30);

  WatchOptions wo;
  std::string format_text = "table";
  auto add_watch_opts = [&](CLI::App* c) {
    c->add_option("--format", format_text, "Result lines on stdout: table, csv, json");
    c->add_flag("-q,--quiet", wo.quiet, "No progress or best-so-far on stderr");
    c->add_option("--retry-for", wo.retry_for,
                  "Seconds to keep reconnecting after the connection is lost")
        ->default_val(300);
  };

  // submit
  auto* submit = app.add_subcommand("submit", "Submit a sweep; prints the job id");
  SpecFlags sf;
  std::string spec_file, request_id;
  bool validate_only = false, submit_watch = false;
  std::vector<std::string> rho_text, rate_text, topk_text;
  submit->add_option("--spec", spec_file,
                     "laser.v1.SweepSpec in protobuf JSON (flags override it)");
  submit->add_option("--dataset-id", sf.dataset_id, "Uploaded dataset id (sha256)");
  submit->add_option("--dataset-path", sf.dataset_path, "JSONL path on the server");
  submit->add_option("--task", sf.task, "completion | choice (default: per record)");
  submit->add_option(
      "--matrix-types,--types", sf.matrix_types,
      "Matrix types (comma-separated or repeated): attn.q ... mlp.out, aliases, mlp, attn, all");
  submit->add_option("--layers", sf.layers, "Layers: 22 | 0,4,8 | 20-29 | 20:30:2 | 20:");
  submit->add_option("--rho", rho_text, "Kept-rank fractions in (0, 1], comma-separated")
      ->delimiter(',');
  submit->add_option("--rate", rate_text, "The paper's rate values in [0, 10), comma-separated")
      ->delimiter(',');
  submit->add_flag("--add-suggested-rank", sf.add_suggested_rank, "Also the Marchenko-Pastur rank");
  submit->add_option("--svd", sf.svd_method, "auto | exact | randomized | paper");
  submit->add_option("--oversampling", sf.oversampling, "Randomized SVD oversampling");
  submit->add_option("--power-iterations", sf.power_iterations, "Randomized SVD power iterations");
  submit->add_option("--seed", sf.seed, "SVD seed");
  submit->add_option("--split", sf.split, "first | shuffle");
  submit->add_option("--validation-fraction", sf.validation_fraction, "Validation fraction");
  submit->add_option("--split-seed", sf.split_seed, "Seed of --split shuffle");
  submit->add_option("--top-k", topk_text, "k values of top-k accuracy, comma-separated")
      ->delimiter(',');
  submit->add_option("--batch-size", sf.batch_size, "Sequences per forward pass");
  submit->add_option("--max-batch-tokens", sf.max_batch_tokens, "Token budget of a forward pass");
  submit->add_option("--composition", sf.composition, "none | greedy");
  submit->add_option("--max-interventions", sf.max_interventions, "Composition stack bound");
  submit->add_option("--priority", sf.priority, "Higher runs first");
  submit->add_option("--label", sf.labels, "key=value (repeatable)");
  submit->add_option("--model", sf.model, "Refuse unless the served model has this name or sha256");
  submit->add_option("--request-id", request_id, "Idempotency key: a retry returns the same job");
  submit->add_flag("--validate-only", validate_only, "Check the spec and count interventions only");
  submit->add_flag("--watch", submit_watch, "Watch the job after submitting it");
  add_watch_opts(submit);

  // watch
  auto* watch = app.add_subcommand("watch", "Stream a job's results and progress until it ends");
  std::string job_id;
  int64_t from = 0;
  watch->add_option("job", job_id, "Job id")->required();
  watch->add_option("--from", from, "First result index to stream")->default_val(0);
  add_watch_opts(watch);

  auto* get = app.add_subcommand("get", "Show a job");
  bool json = false;
  get->add_option("job", job_id, "Job id")->required();
  get->add_flag("--json", json, "The whole Job as JSON");

  auto* list = app.add_subcommand("list", "List jobs, newest first");
  std::vector<std::string> states, labels;
  int page_size = 0;
  std::string page_token;
  bool all_pages = false;
  list->add_option("--state", states, "queued|running|succeeded|failed|cancelled (repeatable)");
  list->add_option("--label", labels, "key=value (repeatable; all must match)");
  list->add_option("--page-size", page_size, "Jobs per page (server default 50)");
  list->add_option("--page-token", page_token, "Continue from a previous page");
  list->add_flag("--all", all_pages, "Follow every page");
  list->add_flag("--json", json, "One Job JSON per line");

  auto* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("job", job_id, "Job id")->required();

  auto* del = app.add_subcommand("delete", "Delete a job and its results");
  bool force = false;
  del->add_option("job", job_id, "Job id")->required();
  del->add_flag("--force", force, "Cancel a queued or running job first");

  auto* results = app.add_subcommand("results", "A job's results (every page)");
  std::string order_by;
  std::vector<std::string> rtypes;
  std::vector<int> rlayers;
  results->add_option("job", job_id, "Job id")->required();
  results->add_option("--format", format_text, "table | csv | json");
  results->add_option("--order-by", order_by,
                      "e.g. \"validation.accuracy desc, validation.log_loss\"");
  results->add_option("--matrix-type", rtypes, "Only these matrix types (repeatable)");
  results->add_option("--layer", rlayers, "Only these layers (repeatable)");
  results->add_option("--page-size", page_size, "Results per request (server default 100)");

  auto* model = app.add_subcommand("model", "Describe the served model");
  model->add_flag("--json", json, "The whole ModelInfo as JSON");

  auto* datasets = app.add_subcommand("datasets", "Upload or list datasets");
  datasets->require_subcommand(1);
  auto* upload = datasets->add_subcommand("upload", "Upload a JSONL dataset; prints its id");
  std::string file, display_name;
  upload->add_option("file", file, "JSONL file")->required();
  upload->add_option("--name", display_name, "Display name (default: the file name)");
  auto* dlist = datasets->add_subcommand("list", "List datasets");
  dlist->add_flag("--json", json, "One Dataset JSON per line");

  auto* spectrum =
      app.add_subcommand("spectrum", "Singular values and Marchenko-Pastur rank of a matrix");
  std::string type;
  int layer = 0;
  bool values = false;
  spectrum->add_option("type", type, "Matrix type, e.g. mlp.in")->required();
  spectrum->add_option("layer", layer, "0-based layer")->required();
  spectrum->add_flag("--values", values, "Print every singular value");
  spectrum->add_flag("--json", json, "The Spectrum as JSON");

  auto* merge = app.add_subcommand("merge", "Join `laserd sweep` shard files into one run's file");
  std::vector<std::string> inputs;
  std::string out;
  bool allow_incomplete = false;
  merge->add_option("inputs", inputs, "Shard results files (JSONL)")->required();
  merge->add_option("--out,-o", out, "Merged file (default: stdout)");
  merge->add_flag("--allow-incomplete", allow_incomplete, "Merge even when results are missing");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  auto parse_doubles = [](const std::vector<std::string>& in, const std::string& flag,
                          std::vector<double>* out_vals) -> absl::Status {
    for (const auto& s : in) {
      double v;
      if (!absl::SimpleAtod(s, &v)) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", s, "\" is not a number"));
      }
      out_vals->push_back(v);
    }
    return absl::OkStatus();
  };

  if (merge->parsed()) return Merge(inputs, out, allow_incomplete);

  auto fmt = ParseFormat(format_text);
  if (!fmt.ok()) return Fail({kExitUsage, std::string(fmt.status().message())});
  wo.format = *fmt;

  Connection conn(g);
  if (auto st = conn.Init(); !st.ok()) return FailStatus(st);

  if (submit->parsed()) {
    if (auto st = parse_doubles(rho_text, "--rho", &sf.rho); !st.ok()) {
      return Fail({kExitUsage, std::string(st.message())});
    }
    if (auto st = parse_doubles(rate_text, "--rate", &sf.rate); !st.ok()) {
      return Fail({kExitUsage, std::string(st.message())});
    }
    for (const auto& s : topk_text) {
      int32_t k;
      if (!absl::SimpleAtoi(s, &k))
        return Fail({kExitUsage, "--top-k: \"" + s + "\" is not an integer"});
      sf.top_k.push_back(k);
    }
    return Submit(conn, spec_file, sf, request_id, validate_only, submit_watch, wo);
  }
  if (watch->parsed()) return Watch(conn, job_id, from, wo);
  if (get->parsed()) return Get(conn, job_id, json);
  if (list->parsed()) return List(conn, states, labels, page_size, page_token, all_pages, json);
  if (cancel->parsed()) return Cancel(conn, job_id);
  if (del->parsed()) return Delete(conn, job_id, force);
  if (results->parsed())
    return Results(conn, job_id, wo.format, order_by, rtypes, rlayers, page_size);
  if (model->parsed()) return Model(conn, json);
  if (upload->parsed()) return Upload(conn, file, display_name);
  if (dlist->parsed()) return ListDatasets(conn, json);
  if (spectrum->parsed()) return Spectrum(conn, type, layer, values, json);
  return Fail({kExitUsage, "no command"});
}

}  // namespace
}  // namespace laserd::client

int main(int argc, char** argv) { return laserd::client::Run(argc, argv); }
