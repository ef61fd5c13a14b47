#include "server/dataset_handlers.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "engine/eval/dataset.h"
#include "server/paging.h"
#include "server/proto_time.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

namespace pb = ::laser::v1;

absl::StatusOr<pb::Dataset> DatasetHandlers::StoreDataset(const std::string& display_name,
                                                          const std::string& expected_sha256,
                                                          const std::string& bytes) {
  if (display_name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.display_name: ", display_name.size(), " characters; at most 255"));
  }
  if (bytes.empty()) return absl::InvalidArgumentError("dataset: the upload is empty (no bytes)");
  const std::string id = Sha256Hex(bytes);
  if (!expected_sha256.empty() && absl::AsciiStrToLower(expected_sha256) != id) {
    return absl::DataLossError(absl::StrCat("header.expected_sha256: ", expected_sha256,
                                            " but the received bytes hash to ", id));
  }
  if (auto prev = store_.GetDataset(id); prev.ok()) return *prev;
  LASERD_ASSIGN_OR_RETURN(
      const eval::Dataset ds,
      eval::ParseDataset(bytes, display_name.empty() ? "upload" : display_name));
  pb::Dataset d;
  d.set_id(id);
  d.set_display_name(display_name);
  d.set_size_bytes(static_cast<int64_t>(bytes.size()));
  d.set_example_count(static_cast<int64_t>(ds.examples.size()));
  for (const eval::Example& e : ds.examples) {
    if (e.kind == eval::ExampleKind::kChoice) {
      d.set_choice_count(d.choice_count() + 1);
    } else {
      d.set_completion_count(d.completion_count() + 1);
    }
  }
  *d.mutable_create_time() = ProtoNow();
  LASERD_RETURN_IF_ERROR(store_.PutDataset(d, bytes, quota_bytes_));
  spdlog::info("dataset {} stored: {} records, {} bytes", id, d.example_count(), d.size_bytes());
  return d;
}

absl::StatusOr<pb::ListDatasetsResponse> DatasetHandlers::ListDatasets(
    const pb::ListDatasetsRequest& req) {
  LASERD_ASSIGN_OR_RETURN(const Page page,
                          RequestedPage(req.page_token(), req.page_size(), 50, 1000));
  LASERD_ASSIGN_OR_RETURN(const std::vector<pb::Dataset> all, store_.ListDatasets());
  pb::ListDatasetsResponse resp;
  resp.set_next_page_token(CopyPage(page, all, resp.mutable_datasets()));
  return resp;
}

absl::StatusOr<pb::Dataset> DatasetHandlers::GetDataset(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  return store_.GetDataset(id);
}

absl::Status DatasetHandlers::DeleteDataset(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  LASERD_RETURN_IF_ERROR(store_.DeleteDataset(id));
  spdlog::info("dataset {} deleted", id);
  return absl::OkStatus();
}

}  // namespace laserd::server
