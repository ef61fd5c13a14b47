// Factored LASER exports (docs/export.md): a tensor `<name>` may be stored as
// two factors `<name>.laser_a` [rows, k] and `<name>.laser_b` [cols, k], the
// dense tensor being a · bᵀ [rows, cols] in the tensor's own stored layout.
// Model::Load reads such files through ExpandLaserFactors, so every
// architecture's loader sees the ordinary dense tensors.
#ifndef LASERD_ENGINE_MODEL_LASER_FACTORS_H_
#define LASERD_ENGINE_MODEL_LASER_FACTORS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"

namespace laserd::model {

inline constexpr char kLaserFactorA[] = ".laser_a";
inline constexpr char kLaserFactorB[] = ".laser_b";

// nullptr when `src` has no factor tensors. Otherwise a view of `src` (which
// must outlive it) where each pair is replaced by the dense `<name>` = a · bᵀ
// (fp32, computed in LoadF32). INVALID_ARGUMENT naming the tensor for an
// unpaired factor, factors that are not 2-D with equal k >= 1, or a pair whose
// `<name>` is also stored.
absl::StatusOr<std::unique_ptr<formats::WeightSource>> ExpandLaserFactors(
    const formats::WeightSource& src);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_LASER_FACTORS_H_
