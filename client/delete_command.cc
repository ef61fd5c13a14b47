// laserctl delete: deletes a job and its results (--force cancels it first).
#include <iostream>
#include <memory>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "google/protobuf/empty.pb.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

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

}  // namespace

void AddDeleteCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    bool force = false;
  };
  auto f = std::make_shared<Flags>();
  auto* del = app.add_subcommand("delete", "Delete a job and its results");
  del->add_option("job", f->job_id, "Job id")->required();
  del->add_flag("--force", f->force, "Cancel a queued or running job first");
  RunConnected(del, conn, run, [f](Connection& c) { return Delete(c, f->job_id, f->force); });
}

}  // namespace laserd::client
