#include "server/job_spec.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/file_bytes.h"
#include "server/sweep_io.h"

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

absl::StatusOr<eval::Dataset> JobInputs::Dataset(const pb::SweepSpec& spec,
                                                 std::string* source) const {
  std::string bytes;
  if (spec.dataset().has_dataset_id()) {
    auto b = store_->DatasetBytes(spec.dataset().dataset_id());
    if (!b.ok()) {
      return absl::NotFoundError(absl::StrCat("spec.dataset.dataset_id: no dataset '",
                                              spec.dataset().dataset_id(), "' was uploaded"));
    }
    bytes = *std::move(b);
    *source = absl::StrCat("dataset ", spec.dataset().dataset_id());
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
  }
  auto ds = eval::ParseDataset(bytes, *source);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(), absl::StrCat("spec.dataset: ", ds.status().message()));
  }
  return ds;
}

}  // namespace laserd::server
