// laserd's subcommands (eval, sweep, merge, export, serve). Each lives in its
// own *_command.cc file and registers itself on the top-level CLI11 app;
// main() (laserd_main.cc) parses and runs the one that was chosen. The work
// itself is done by engine/ and by the server's own files (the sweep driver,
// the job runner, the handlers); these files map flags to settings and
// results to output, and errors to exit codes (exit_code.h).
#ifndef LASERD_SERVER_COMMANDS_H_
#define LASERD_SERVER_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "server/exit_code.h"

namespace laserd::server {

// Adds a subcommand to `app`. When it is chosen, `*run` is set to the function
// that executes it and returns the process exit code.
using Runner = std::function<int()>;
void AddEvalCommand(CLI::App& app, Runner* run);
void AddSweepCommand(CLI::App& app, Runner* run);
void AddMergeCommand(CLI::App& app, Runner* run);
void AddExportCommand(CLI::App& app, Runner* run);
void AddServeCommand(CLI::App& app, Runner* run);

}  // namespace laserd::server

#endif  // LASERD_SERVER_COMMANDS_H_
