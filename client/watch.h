// Watching a job (`laserctl watch`, `laserctl submit --watch`): results on
// stdout in the chosen format as they arrive, progress and best-so-far on
// stderr, reconnecting with backoff from the next result index when the stream
// drops, so that no result is missed or printed twice.
#ifndef LASERD_CLIENT_WATCH_H_
#define LASERD_CLIENT_WATCH_H_

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "client/connection.h"
#include "client/laserctl_core.h"

namespace laserd::client {

struct WatchOptions {
  Format format = Format::kTable;
  bool quiet = false;      // no progress on stderr
  double retry_for = 300;  // give up reconnecting after this many seconds without success
  int best_rows = 5;
};

// The flags of a watching command (--format, -q/--quiet, --retry-for).
struct WatchFlags {
  std::string format = "table";
  WatchOptions options;
  // The options with the format parsed (INVALID_ARGUMENT for an unknown one).
  absl::StatusOr<WatchOptions> Parse() const;
};
void AddWatchFlags(CLI::App* c, WatchFlags* f);

// Streams the job's events from result index `from` until the job ends; the
// exit code of its final state (or of the error that ended the watch).
int Watch(Connection& conn, const std::string& job_id, int64_t from, const WatchOptions& o);

}  // namespace laserd::client

#endif  // LASERD_CLIENT_WATCH_H_
