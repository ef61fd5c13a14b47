// The served model described as a laser.v1.ModelInfo (DescribeModel): file,
// hash, architecture, shapes, tokenizer, devices, and for every canonical
// matrix type its shape and the tensor of the model file it comes from.
#ifndef LASERD_SERVER_MODEL_DESCRIPTION_H_
#define LASERD_SERVER_MODEL_DESCRIPTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/loaded_model.h"
#include "laser/v1/model.pb.h"

namespace laserd::server {

// The description of `lm`, loaded from `path`, resident on `device_names`
// (one per replica, each holding its own copy of the weights). The memory
// figures of the host are left to the caller (they change).
absl::StatusOr<::laser::v1::ModelInfo> DescribeLoadedModel(
    const std::string& path, const model::LoadedModel& lm,
    const std::vector<std::string>& device_names, int64_t cache_budget_bytes);

}  // namespace laserd::server

#endif  // LASERD_SERVER_MODEL_DESCRIPTION_H_
