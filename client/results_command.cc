// laserctl results: every page of a job's results as a table, CSV or JSON lines.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Results(Connection& conn, const std::string& id, Format format, const std::string& order_by,
            const std::vector<std::string>& types, const std::vector<int>& layers, int page_size) {
  pb::ListResultsRequest req;
  req.set_job_id(id);
  req.set_order_by(order_by);
  req.set_page_size(page_size);
  for (const auto& t : types) req.add_matrix_types(t);
  for (int l : layers) req.add_layers(l);
  std::vector<pb::Result> all;
  std::string token;
  do {
    req.set_page_token(token);
    pb::ListResultsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.sweeps().ListResults(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("results " + id, st);
    for (auto& r : *resp.mutable_results()) all.push_back(std::move(r));
    token = resp.next_page_token();
  } while (!token.empty());
  std::cout << FormatResults(all, format);
  return kExitOk;
}

}  // namespace

void AddResultsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string job_id;
    std::string format = "table";
    std::string order_by;
    std::vector<std::string> types;
    std::vector<int> layers;
    int page_size = 0;
  };
  auto f = std::make_shared<Flags>();
  auto* results = app.add_subcommand("results", "A job's results (every page)");
  results->add_option("job", f->job_id, "Job id")->required();
  results->add_option("--format", f->format, "table | csv | json");
  results->add_option("--order-by", f->order_by,
                      "e.g. \"validation.accuracy desc, validation.log_loss\"");
  results->add_option("--matrix-type", f->types, "Only these matrix types (repeatable)");
  results->add_option("--layer", f->layers, "Only these layers (repeatable)");
  results->add_option("--page-size", f->page_size, "Results per request (server default 100)");
  results->callback([f, conn, run] {
    *run = [f, conn] {
      auto format = ParseFormat(f->format);
      if (!format.ok()) return Fail(kExitUsage, std::string(format.status().message()));
      return WithConnection(*conn, [&](Connection& c) {
        return Results(c, f->job_id, *format, f->order_by, f->types, f->layers, f->page_size);
      });
    };
  });
}

}  // namespace laserd::client
