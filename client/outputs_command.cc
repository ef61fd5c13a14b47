// laserctl outputs: a job's per-example outputs (every page of
// ListExampleOutputs) as JSON lines, one laser.v1.ExampleOutputs per line:
// the same lines as the example outputs file of the headless `laserd sweep`.
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "proto/results_io.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Outputs(Connection& conn, const std::string& id, std::optional<int64_t> result,
            const std::string& out_path, int page_size) {
  pb::ListExampleOutputsRequest req;
  req.set_job_id(id);
  req.set_page_size(page_size);
  if (result) req.set_result_index(*result);
  std::ofstream file;
  if (!out_path.empty()) {
    file.open(out_path, std::ios::binary | std::ios::trunc);
    if (!file) return Fail(kExitUsage, "cannot write " + out_path);
  }
  std::ostream& out = out_path.empty() ? std::cout : file;
  std::string token;
  int64_t lines = 0;
  do {
    req.set_page_token(token);
    pb::ListExampleOutputsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.sweeps().ListExampleOutputs(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("outputs " + id, st);
    for (const auto& o : resp.outputs()) {
      out << api::JsonLine(o) << "\n";
      ++lines;
    }
    token = resp.next_page_token();
  } while (!token.empty());
  out.flush();
  if (!out) return Fail(kExitUsage, "error writing " + out_path);
  if (!out_path.empty()) std::cerr << "wrote " << lines << " lines to " << out_path << "\n";
  return kExitOk;
}

}  // namespace

void AddOutputsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    int64_t result = 0;
    std::string out;
    int page_size = 0;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand(
      "outputs", "A job's per-example outputs (spec.keep_example_outputs) as JSON lines");
  cmd->add_option("job", f->job_id, "Job id")->required();
  auto* result = cmd->add_option("--result", f->result, "Only this result index (-1: baseline)");
  cmd->add_option("--out", f->out, "Write to this file instead of stdout");
  cmd->add_option("--page-size", f->page_size, "Outputs per request (server default 10)");
  RunConnected(cmd, conn, run, [f, result](Connection& c) {
    return Outputs(c, f->job_id, result->count() ? std::optional<int64_t>(f->result) : std::nullopt,
                   f->out, f->page_size);
  });
}

}  // namespace laserd::client
