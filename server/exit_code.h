// laserd's process exit codes (docs/cli.md) and the mapping of an error
// status to one; every command uses it.
#ifndef LASERD_SERVER_EXIT_CODE_H_
#define LASERD_SERVER_EXIT_CODE_H_

#include "absl/status/status.h"

namespace laserd::server {

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

}  // namespace laserd::server

#endif  // LASERD_SERVER_EXIT_CODE_H_
