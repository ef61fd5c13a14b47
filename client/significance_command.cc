// laserctl significance: whether a result's gain over the baseline is
// significant (GetSignificance): the best single unless --result names one.
#include <iostream>
#include <memory>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "client/output.h"
#include "proto/results_io.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Significance(Connection& conn, const pb::GetSignificanceRequest& req, bool json) {
  pb::Significance s;
  auto ctx = conn.Context();
  auto st = conn.sweeps().GetSignificance(ctx.get(), req, &s);
  if (!st.ok()) return FailRpc("significance " + req.job_id(), st);
  if (json) {
    std::cout << PrettyJson(s) << "\n";
  } else {
    std::cout << "result " << s.result_index() << ": " << api::SignificanceLine(s) << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddSignificanceCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    int64_t result = 0;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand(
      "significance",
      "Is a result's gain over the baseline significant (default: the best single)");
  cmd->add_option("job", f->job_id, "Job id")->required();
  auto* result = cmd->add_option("--result", f->result, "Result index (default: the best single)");
  cmd->add_flag("--json", f->json, "The Significance message as JSON");
  RunConnected(cmd, conn, run, [f, result](Connection& c) {
    pb::GetSignificanceRequest req;
    req.set_job_id(f->job_id);
    if (result->count()) req.set_result_index(f->result);
    return Significance(c, req, f->json);
  });
}

}  // namespace laserd::client
