// laserd: the LASER sweep service and its headless commands.
//
//   laserd eval --model PATH --data FILE ...   score a model on a held-out set
//   laserd sweep --model PATH --spec FILE --out FILE   run a LASER sweep headless
//   laserd merge A.jsonl B.jsonl ... --out FILE  join shard result files
//   laserd export --model PATH --out DIR ...   write an edited model (docs/export.md)
//   laserd serve --model PATH --state-dir DIR ...  serve laser.v1 over gRPC (docs/server.md)
//
// Each subcommand registers itself the same way, in its own file (see commands.h).
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "server/commands.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only results (tables, --json).
  spdlog::set_default_logger(spdlog::stderr_color_mt("laserd"));
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");

  CLI::App app{"laserd: LASER rank-reduction sweeps on transformer language models"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  laserd::server::Runner run;
  laserd::server::AddEvalCommand(app, &run);
  laserd::server::AddSweepCommand(app, &run);
  laserd::server::AddMergeCommand(app, &run);
  laserd::server::AddExportCommand(app, &run);
  laserd::server::AddServeCommand(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help or the error
    return code == 0 ? laserd::server::kExitOk : laserd::server::kExitUsage;
  }
  if (verbose) spdlog::set_level(spdlog::level::debug);
  if (!run) return laserd::server::kExitUsage;
  return run();
}
