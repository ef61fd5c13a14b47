#include "server/upload_reactor.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/grpc_status.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

namespace pb = ::laser::v1;

UploadReactor::UploadReactor(ServerState* state, grpc::CallbackServerContext* ctx,
                             pb::Dataset* resp)
    : state_(state), resp_(resp), t0_(std::chrono::steady_clock::now()) {
  absl::Status st = state_->auth.Authorize(ctx, true);
  if (!st.ok()) {
    Done(st);
    return;
  }
  StartRead(&req_);
}

void UploadReactor::OnReadDone(bool ok) {
  if (!ok) {  // end of the stream
    if (!have_header_) {
      Done(absl::InvalidArgumentError("header: the stream ended before the header"));
      return;
    }
    Done([&]() -> absl::Status {
      LASERD_ASSIGN_OR_RETURN(
          *resp_,
          state_->datasets.StoreDataset(header_.display_name(), header_.expected_sha256(), bytes_));
      return absl::OkStatus();
    }());
    return;
  }
  if (req_.has_header()) {
    if (have_header_) {
      Done(absl::InvalidArgumentError("header: sent twice; it must be the first message only"));
      return;
    }
    have_header_ = true;
    header_ = req_.header();
  } else if (req_.part_case() == pb::UploadDatasetRequest::kChunk) {
    if (!have_header_) {
      Done(absl::InvalidArgumentError("header: the first message must be the header"));
      return;
    }
    const int64_t limit = state_->options.max_dataset_bytes;
    if (static_cast<int64_t>(bytes_.size() + req_.chunk().size()) > limit) {
      Done(absl::ResourceExhaustedError(absl::StrCat("dataset: over this server's limit of ", limit,
                                                     " bytes (--max-dataset-bytes)")));
      return;
    }
    bytes_ += req_.chunk();
  } else {
    Done(absl::InvalidArgumentError("part: a message with neither header nor chunk"));
    return;
  }
  StartRead(&req_);
}

void UploadReactor::Done(const absl::Status& st) {
  const grpc::Status gs = ToGrpc(st);
  state_->prometheus.RecordRpc(
      "UploadDataset", GrpcCodeName(gs.error_code()),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  if (!gs.ok()) {
    spdlog::info("rpc UploadDataset -> {}: {}", GrpcCodeName(gs.error_code()), gs.error_message());
  }
  Finish(gs);
}

}  // namespace laserd::server
