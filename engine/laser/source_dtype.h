// Rounding an edited matrix to the model's source type (round_to_source_dtype):
// the paper's code edits GPT-J loaded in fp16, computing W_k in fp32 and
// assigning it to the fp16 parameter, i.e. rounding every entry to the
// nearest fp16 value (ties to even). laserd scores in fp32; with this option
// the edited matrix is rounded the same way to the type its file stores it in.
#ifndef LASERD_ENGINE_LASER_SOURCE_DTYPE_H_
#define LASERD_ENGINE_LASER_SOURCE_DTYPE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::laser {

enum class SourceRounding { kNone, kF16, kBF16 };

// How a matrix stored as `dtype` (formats::DTypeName) is rounded: F16 and BF16
// to that type, F32 and F64 not at all (every fp32 value is exact in both);
// INVALID_ARGUMENT for any other type (the quantized GGUF types, whose
// rounding would be a re-quantization, and an unknown, empty type), whose
// message ("is stored as Q4_1; …") the caller prefixes with the matrix.
absl::StatusOr<SourceRounding> RoundingForDType(const std::string& dtype);

// x rounded to the nearest IEEE binary16 value, ties to even (overflow to
// ±inf, NaN stays NaN), as a float.
float RoundToF16(float x);
// x rounded to the nearest bfloat16 value, ties to even (overflow to ±inf,
// NaN stays NaN), as a float.
float RoundToBF16(float x);

// Rounds every entry of w.
void RoundInPlace(SourceRounding r, std::vector<float>* w);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_SOURCE_DTYPE_H_
