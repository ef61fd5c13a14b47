// laserctl cancel: asks the server to cancel a job; prints its state.
#include <iostream>
#include <memory>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

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

}  // namespace

void AddCancelCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  auto job_id = std::make_shared<std::string>();
  auto* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("job", *job_id, "Job id")->required();
  RunConnected(cancel, conn, run, [job_id](Connection& c) { return Cancel(c, *job_id); });
}

}  // namespace laserd::client
