// laserctl's subcommands. Each lives in its own file (submit_command.cc,
// watch_command.cc, ...) and registers itself on the top-level CLI11 app; main()
// (laserctl_main.cc) parses the command line and runs the one that was chosen.
// These files map flags to requests and answers to output; what does not talk
// to a server lives in laserctl_core.
#ifndef LASERD_CLIENT_COMMANDS_H_
#define LASERD_CLIENT_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "client/connection.h"

namespace laserd::client {

// Adds a subcommand to `app`. When it is chosen, `*run` is set to the function
// that executes it and returns the process exit code. Commands that talk to the
// server connect with `*conn`, which is read only when the command runs (after
// the whole command line is parsed).
using Runner = std::function<int()>;
void AddSubmitCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddWatchCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddGetCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddListCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddCancelCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddDeleteCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddResultsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddModelCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
// `datasets upload`, `datasets list` and `datasets delete` (alias `dataset`).
void AddDatasetsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddSpectrumCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
// Per-example outputs (ListExampleOutputs) and significance (GetSignificance).
void AddOutputsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
void AddSignificanceCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run);
// Local: joins shard files without a server.
void AddMergeCommand(CLI::App& app, Runner* run);

// Makes `sub`, when chosen, set `*run` to: connect with `*conn`, then run
// `command(Connection&)` (WithConnection).
template <typename Command>
void RunConnected(CLI::App* sub, const ConnectionOptions* conn, Runner* run, Command command) {
  sub->callback(
      [conn, run, command] { *run = [conn, command] { return WithConnection(*conn, command); }; });
}

}  // namespace laserd::client

#endif  // LASERD_CLIENT_COMMANDS_H_
