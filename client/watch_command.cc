// laserctl watch: streams a job's results and progress until it ends (watch.h);
// the exit code says how it ended.
#include <memory>
#include <string>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "client/watch.h"

namespace laserd::client {

void AddWatchCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    int64_t from = 0;
    WatchFlags watch;
  };
  auto f = std::make_shared<Flags>();
  auto* watch = app.add_subcommand("watch", "Stream a job's results and progress until it ends");
  watch->add_option("job", f->job_id, "Job id")->required();
  watch->add_option("--from", f->from, "First result index to stream")->default_val(0);
  AddWatchFlags(watch, &f->watch);
  watch->callback([f, conn, run] {
    *run = [f, conn] {
      auto wo = f->watch.Parse();
      if (!wo.ok()) return Fail(kExitUsage, std::string(wo.status().message()));
      return WithConnection(*conn,
                            [&](Connection& c) { return Watch(c, f->job_id, f->from, *wo); });
    };
  });
}

}  // namespace laserd::client
