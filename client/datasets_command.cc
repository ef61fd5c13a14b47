// laserctl datasets (alias dataset): `upload` streams a JSONL file to the
// server in 1 MiB chunks, with its sha256 in the header (the server refuses
// other bytes: DATA_LOSS), and prints its id; `list` lists the uploaded
// datasets; `delete` deletes one.
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sha256.h"
#include "client/commands.h"
#include "client/failure.h"
#include "client/files.h"
#include "client/laserctl_core.h"
#include "client/output.h"
#include "google/protobuf/empty.pb.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Upload(Connection& conn, const std::string& path, std::string name) {
  // The whole file is read first (an upload is at most the server's
  // --max-dataset-bytes), so the digest sent in the header is the digest of
  // exactly the bytes streamed: an upload cut short on the way, or a file
  // changed while it is read, is DATA_LOSS instead of a shorter dataset.
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return Fail(kExitNotFound, std::string(bytes.status().message()));
  if (name.empty()) name = path.substr(path.find_last_of('/') + 1);
  pb::Dataset ds;
  auto ctx = conn.Context(/*streaming=*/true);
  auto writer = conn.datasets().UploadDataset(ctx.get(), &ds);
  pb::UploadDatasetRequest head;
  head.mutable_header()->set_display_name(name);
  head.mutable_header()->set_expected_sha256(Sha256Hex(*bytes));
  bool ok = writer->Write(head);
  constexpr size_t kChunk = 1 << 20;
  for (size_t at = 0; ok && at < bytes->size(); at += kChunk) {
    pb::UploadDatasetRequest chunk;
    chunk.set_chunk(bytes->data() + at, std::min(kChunk, bytes->size() - at));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  auto st = writer->Finish();
  if (!st.ok()) return FailRpc("datasets upload " + path, st);
  std::cout << ds.id() << "\n";
  std::cerr << absl::StrFormat("%s: %d bytes, %d examples (%d completion, %d choice)\n",
                               ds.display_name(), ds.size_bytes(), ds.example_count(),
                               ds.completion_count(), ds.choice_count());
  return kExitOk;
}

int ListDatasets(Connection& conn, bool json) {
  pb::ListDatasetsRequest req;
  std::string token;
  // Written to stdout only once every page has arrived: a failed RPC leaves
  // stdout empty (no header, no partial list).
  std::string out;
  if (!json) {
    out = absl::StrFormat("%-64s %10s %8s  %-20s  %s\n", "id", "bytes", "examples", "created",
                          "name");
  }
  do {
    req.set_page_token(token);
    pb::ListDatasetsResponse resp;
    auto ctx = conn.Context();
    auto st = conn.datasets().ListDatasets(ctx.get(), req, &resp);
    if (!st.ok()) return FailRpc("datasets list", st);
    for (const auto& d : resp.datasets()) {
      if (json) {
        absl::StrAppend(&out, JsonLine(d), "\n");
      } else {
        absl::StrAppend(
            &out, absl::StrFormat("%-64s %10d %8d  %-20s  %s\n", d.id(), d.size_bytes(),
                                  d.example_count(), Timestamp(d.create_time()), d.display_name()));
      }
    }
    token = resp.next_page_token();
  } while (!token.empty());
  std::cout << out;
  return kExitOk;
}

int DeleteDataset(Connection& conn, const std::string& id) {
  pb::DeleteDatasetRequest req;
  req.set_dataset_id(id);
  google::protobuf::Empty empty;
  auto ctx = conn.Context();
  auto st = conn.datasets().DeleteDataset(ctx.get(), req, &empty);
  if (!st.ok()) return FailRpc("datasets delete " + id, st);
  std::cout << "deleted " << id << "\n";
  return kExitOk;
}

}  // namespace

void AddDatasetsCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string file, display_name, id;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* datasets = app.add_subcommand("datasets", "Upload, list or delete datasets");
  datasets->alias("dataset");
  datasets->require_subcommand(1);
  auto* upload = datasets->add_subcommand("upload", "Upload a JSONL dataset; prints its id");
  upload->add_option("file", f->file, "JSONL file")->required();
  upload->add_option("--name", f->display_name, "Display name (default: the file name)");
  RunConnected(upload, conn, run,
               [f](Connection& c) { return Upload(c, f->file, f->display_name); });
  auto* dlist = datasets->add_subcommand("list", "List datasets");
  dlist->add_flag("--json", f->json, "One Dataset JSON per line");
  RunConnected(dlist, conn, run, [f](Connection& c) { return ListDatasets(c, f->json); });
  auto* ddel = datasets->add_subcommand(
      "delete", "Delete a dataset (refused while a queued or running job uses it)");
  ddel->add_option("id", f->id, "Dataset id (its sha256)")->required();
  RunConnected(ddel, conn, run, [f](Connection& c) { return DeleteDataset(c, f->id); });
}

}  // namespace laserd::client
