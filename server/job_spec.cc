#include "server/job_spec.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "server/file_bytes.h"
#include "server/sweep_io.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

namespace pb = ::laser::v1;

absl::StatusOr<laser::SweepConfig> JobInputs::Config(const pb::SweepSpec& spec) const {
  pb::SweepSpec s = spec;
  if (s.dataset().has_dataset_id()) s.mutable_dataset()->set_path("<uploaded dataset>");
  auto hs = SweepConfigFromSpec(s);
  if (!hs.ok()) return SpecError(hs.status(), "spec.");
  laser::SweepConfig cfg = hs->config;
  cfg.cache_budget_bytes = cache_budget_bytes_;
  return cfg;
}

absl::StatusOr<eval::Dataset> JobInputs::Dataset(const pb::SweepSpec& spec, std::string* source,
                                                 std::string* sha256) const {
  std::string bytes;
  if (spec.dataset().has_dataset_id()) {
    auto b = store_->DatasetBytes(spec.dataset().dataset_id());
    if (!b.ok()) {
      return absl::NotFoundError(absl::StrCat("spec.dataset.dataset_id: no dataset '",
                                              spec.dataset().dataset_id(), "' was uploaded"));
    }
    bytes = *std::move(b);
    *source = absl::StrCat("dataset ", spec.dataset().dataset_id());
    // Content-addressed: the id is the digest of the bytes.
    if (sha256 != nullptr) *sha256 = spec.dataset().dataset_id();
  } else {
    namespace fs = std::filesystem;
    if (spec.dataset().path().find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("spec.dataset.path: contains a NUL byte");
    }
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(spec.dataset().path(), ec);
    bool allowed = false;
    for (const std::string& d : data_dirs_) {
      const fs::path dir = fs::weakly_canonical(d, ec);
      auto rel = p.lexically_relative(dir);
      if (!rel.empty() && *rel.begin() != "..") allowed = true;
    }
    if (!allowed) {
      return absl::PermissionDeniedError(
          absl::StrCat("spec.dataset.path: '", spec.dataset().path(),
                       "' is not under a --data-dir of this server; upload it with UploadDataset"));
    }
    LASERD_ASSIGN_OR_RETURN(bytes, ReadFileBytes("spec.dataset.path", p.string()));
    *source = spec.dataset().path();
    if (sha256 != nullptr) *sha256 = Sha256Hex(bytes);
  }
  auto ds = eval::ParseDataset(bytes, *source);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(), absl::StrCat("spec.dataset: ", ds.status().message()));
  }
  return ds;
}

absl::StatusOr<eval::Dataset> JobInputs::PinnedDataset(const pb::SweepSpec& spec,
                                                       const std::string& pinned_sha256,
                                                       std::string* source,
                                                       std::string* sha256) const {
  LASERD_ASSIGN_OR_RETURN(eval::Dataset ds, Dataset(spec, source, sha256));
  if (pinned_sha256.empty() || *sha256 == pinned_sha256) return ds;
  if (spec.dataset().allow_changed_file()) {
    spdlog::warn(
        "spec.dataset.path: '{}' changed since the job was created (sha256 {} then, {} now); "
        "running on the current file because spec.dataset.allow_changed_file is set",
        spec.dataset().path(), pinned_sha256, *sha256);
    return ds;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "spec.dataset.path: '", spec.dataset().path(),
      "' changed since the job was created: its sha256 was ", pinned_sha256, " and is now ",
      *sha256,
      "; the job does not run on different examples than it was created with (restore the "
      "file, or create the job again with spec.dataset.allow_changed_file to run on the "
      "current file)"));
}

}  // namespace laserd::server
