// laserd's subcommands. Each lives in its own file and registers itself on the
// top-level CLI11 app; main() parses and runs the one that was chosen. Business
// logic stays in engine/ (and later server/ services); these files only map
// flags to configs and results to output.
#ifndef LASERD_SERVER_COMMANDS_H_
#define LASERD_SERVER_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace laserd::server {

// Process exit codes (docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,   // INTERNAL, UNKNOWN and anything not listed below
  kExitUsage = 2,      // bad flags or flag values (CLI parse errors)
  kExitBadInput = 3,   // INVALID_ARGUMENT, OUT_OF_RANGE: bad dataset, example or value
  kExitNotFound = 4,   // NOT_FOUND, PERMISSION_DENIED: a file cannot be opened
  kExitBadModel = 5,   // DATA_LOSS, UNIMPLEMENTED, FAILED_PRECONDITION: corrupt or
                       // unsupported model file, device not available
  kExitResources = 6,  // RESOURCE_EXHAUSTED: out of memory or over a limit
};
int ExitCodeFor(const absl::Status& status);

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
