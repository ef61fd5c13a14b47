// Watching a job (watch.h).
#include "client/watch.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "client/failure.h"
#include "client/watch_display.h"

namespace laserd::client {

namespace pb = ::laser::v1;

absl::StatusOr<WatchOptions> WatchFlags::Parse() const {
  WatchOptions o = options;
  LASERD_ASSIGN_OR_RETURN(o.format, ParseFormat(format));
  return o;
}

void AddWatchFlags(CLI::App* c, WatchFlags* f) {
  c->add_option("--format", f->format, "Result lines on stdout: table, csv, json");
  c->add_flag("-q,--quiet", f->options.quiet, "No progress or best-so-far on stderr");
  c->add_option("--retry-for", f->options.retry_for,
                "Seconds to keep reconnecting after the connection is lost")
      ->default_val(300);
}

namespace {

bool Retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::INTERNAL || c == grpc::StatusCode::UNKNOWN ||
         c == grpc::StatusCode::ABORTED || c == grpc::StatusCode::CANCELLED;
}

}  // namespace

int Watch(Connection& conn, const std::string& job_id, int64_t from, const WatchOptions& o) {
  WatchCursor cursor(from);
  WatchDisplay display(!o.quiet, o.best_rows);
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

}  // namespace laserd::client
