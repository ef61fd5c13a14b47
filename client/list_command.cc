// laserctl list: jobs, newest first, filtered by state and labels, page by page.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "client/output.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int List(Connection& conn, const std::vector<std::string>& states,
         const std::vector<std::string>& labels, int page_size, std::string page_token, bool all,
         bool json) {
  pb::ListJobsRequest req;
  for (const auto& s : states) {
    auto st = ParseJobState(s);
    if (!st.ok()) return Fail(kExitUsage, std::string(st.status().message()));
    req.add_states(*st);
  }
  for (const auto& l : labels) {
    auto kv = ParseLabel(l);
    if (!kv.ok()) return Fail(kExitUsage, std::string(kv.status().message()));
    (*req.mutable_labels())[kv->first] = kv->second;
  }
  req.set_page_size(page_size);
  // Written to stdout only once every page asked for has arrived: a failed
  // RPC leaves stdout empty (no header, no partial list).
  std::string out;
  if (!json) {
    out = absl::StrFormat("%-28s %-10s %9s %8s  %-20s  %s\n", "id", "state", "progress", "results",
                          "created", "labels");
  }
  std::string more;
  for (;;) {
    req.set_page_token(page_token);
    pb::ListJobsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.sweeps().ListJobs(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("list", st);
    for (const auto& j : resp.jobs()) {
      if (json) {
        absl::StrAppend(&out, JsonLine(j), "\n");
        continue;
      }
      std::string lab;
      for (const auto& [k, v] : j.spec().labels())
        absl::StrAppend(&lab, lab.empty() ? "" : ",", k, "=", v);
      absl::StrAppend(&out, absl::StrFormat("%-28s %-10s %8.0f%% %8d  %-20s  %s\n", j.id(),
                                            JobStateName(j.state()), 100 * j.progress().fraction(),
                                            j.result_count(), Timestamp(j.create_time()), lab));
    }
    page_token = resp.next_page_token();
    if (page_token.empty()) break;
    if (!all) {
      more = absl::StrCat("more: --page-token ", page_token, " (or --all)\n");
      break;
    }
  }
  std::cout << out;
  std::cerr << more;
  return kExitOk;
}

}  // namespace

void AddListCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::vector<std::string> states, labels;
    int page_size = 0;
    std::string page_token;
    bool all_pages = false;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* list = app.add_subcommand("list", "List jobs, newest first");
  list->add_option("--state", f->states, "queued|running|succeeded|failed|cancelled (repeatable)");
  list->add_option("--label", f->labels, "key=value (repeatable; all must match)");
  list->add_option("--page-size", f->page_size, "Jobs per page (server default 50)");
  list->add_option("--page-token", f->page_token, "Continue from a previous page");
  list->add_flag("--all", f->all_pages, "Follow every page");
  list->add_flag("--json", f->json, "One Job JSON per line");
  RunConnected(list, conn, run, [f](Connection& c) {
    return List(c, f->states, f->labels, f->page_size, f->page_token, f->all_pages, f->json);
  });
}

}  // namespace laserd::client
