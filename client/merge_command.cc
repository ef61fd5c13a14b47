// laserctl merge: joins `laserd sweep` shard files into the one results file of
// the whole run, without a server (the same merge as `laserd merge`).
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/commands.h"
#include "client/failure.h"
#include "client/files.h"
#include "client/laserctl_core.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Merge(const std::vector<std::string>& inputs, const std::string& out, bool allow_incomplete) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& p : inputs) {
    auto t = ReadFile(p);
    if (!t.ok()) return FailStatus(t.status());
    files.emplace_back(p, *std::move(t));
  }
  auto merged = MergeResults(files, allow_incomplete);
  if (!merged.ok()) return FailStatus(merged.status());
  if (out.empty() || out == "-") {
    std::cout << *merged;
    return kExitOk;
  }
  if (absl::Status st = WriteFileAtomically(out, *merged); !st.ok()) return FailStatus(st);
  return kExitOk;
}

}  // namespace

void AddMergeCommand(CLI::App& app, Runner* run) {
  struct Flags {
    std::vector<std::string> inputs;
    std::string out;
    bool allow_incomplete = false;
  };
  auto f = std::make_shared<Flags>();
  auto* merge = app.add_subcommand("merge", "Join `laserd sweep` shard files into one run's file");
  merge->add_option("inputs", f->inputs, "Shard results files (JSONL)")->required();
  merge->add_option("--out,-o", f->out, "Merged file (default: stdout)");
  merge->add_flag("--allow-incomplete", f->allow_incomplete, "Merge even when results are missing");
  merge->callback(
      [f, run] { *run = [f] { return Merge(f->inputs, f->out, f->allow_incomplete); }; });
}

}  // namespace laserd::client
