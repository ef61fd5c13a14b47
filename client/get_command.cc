// laserctl get: one job, as a summary or its whole JSON.
#include <iostream>
#include <memory>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "client/output.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

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

}  // namespace

void AddGetCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* get = app.add_subcommand("get", "Show a job");
  get->add_option("job", f->job_id, "Job id")->required();
  get->add_flag("--json", f->json, "The whole Job as JSON");
  RunConnected(get, conn, run, [f](Connection& c) { return Get(c, f->job_id, f->json); });
}

}  // namespace laserd::client
