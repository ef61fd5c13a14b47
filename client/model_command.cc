// laserctl model: the served model (architecture, sizes, device, matrix types).
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"
#include "client/output.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Model(Connection& conn, bool json) {
  pb::ModelInfo m;
  auto ctx = conn.Context();
  auto st = conn.models().DescribeModel(ctx.get(), pb::DescribeModelRequest(), &m);
  if (!st.ok()) return FailRpc("model", st);
  if (json) {
    std::cout << PrettyJson(m) << "\n";
    return kExitOk;
  }
  std::cout << "name:          " << m.name() << "\n"
            << "path:          " << m.path() << "\n"
            << "format:        " << m.format() << " (sha256 " << m.sha256() << ")\n"
            << "architecture:  " << m.architecture() << ", " << m.num_layers() << " layers, hidden "
            << m.hidden_size() << ", mlp " << m.intermediate_size() << ", heads "
            << m.num_attention_heads() << "/" << m.num_key_value_heads() << "\n"
            << "vocab/context: " << m.vocab_size() << " / " << m.context_length() << "\n"
            << "parameters:    " << m.parameter_count() << "\n"
            << "compute:       " << m.compute_dtype() << " on " << pb::Device_Name(m.device())
            << " " << m.device_name() << "\n"
            << absl::StrFormat("memory:        weights %.1f MiB, cache %.1f / %.1f MiB\n",
                               m.memory().weights_bytes() / 1048576.0,
                               m.memory().cache_bytes() / 1048576.0,
                               m.memory().cache_budget_bytes() / 1048576.0)
            << absl::StrFormat("%-9s %7s %7s %8s  %-8s %s\n", "matrix", "rows", "cols", "max_rank",
                               "dtype", "tensor (layer 0)");
  for (const auto& t : m.matrix_types()) {
    std::cout << absl::StrFormat("%-9s %7d %7d %8d  %-8s %s%s\n", t.matrix_type(), t.rows(),
                                 t.cols(), t.max_rank(), t.source_dtype(), t.source_tensor(),
                                 t.fused_block().empty() ? "" : " [" + t.fused_block() + "]");
  }
  return kExitOk;
}

}  // namespace

void AddModelCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  auto json = std::make_shared<bool>(false);
  auto* model = app.add_subcommand("model", "Describe the served model");
  model->add_flag("--json", *json, "The whole ModelInfo as JSON");
  RunConnected(model, conn, run, [json](Connection& c) { return Model(c, *json); });
}

}  // namespace laserd::client
