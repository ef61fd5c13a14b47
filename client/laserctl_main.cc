// laserctl: command-line client of a laserd server (laser.v1 over gRPC).
// docs/cli.md, section "laserctl", documents the commands and exit codes.
//
// Each subcommand registers itself the same way, in its own file (commands.h);
// the global flags say how to reach the server (connection.h).
#include "CLI/CLI.hpp"
#include "client/commands.h"
#include "client/connection.h"
#include "client/failure.h"
#include "client/laserctl_core.h"

namespace laserd::client {
namespace {

int Run(int argc, char** argv) {
  CLI::App app{"laserctl: client of a laserd server (laser.v1 gRPC API)"};
  app.require_subcommand(1);
  ConnectionOptions conn;
  AddConnectionFlags(app, &conn);
  Runner run;
  AddSubmitCommand(app, &conn, &run);
  AddWatchCommand(app, &conn, &run);
  AddGetCommand(app, &conn, &run);
  AddListCommand(app, &conn, &run);
  AddCancelCommand(app, &conn, &run);
  AddDeleteCommand(app, &conn, &run);
  AddResultsCommand(app, &conn, &run);
  AddModelCommand(app, &conn, &run);
  AddDatasetsCommand(app, &conn, &run);
  AddSpectrumCommand(app, &conn, &run);
  AddOutputsCommand(app, &conn, &run);
  AddSignificanceCommand(app, &conn, &run);
  AddMergeCommand(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (!run) return Fail(kExitUsage, "no command");
  return run();
}

}  // namespace
}  // namespace laserd::client

int main(int argc, char** argv) { return laserd::client::Run(argc, argv); }
