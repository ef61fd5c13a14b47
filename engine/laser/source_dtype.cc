#include "engine/laser/source_dtype.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace laserd::laser {

absl::StatusOr<SourceRounding> RoundingForDType(const std::string& dtype) {
  if (dtype == "F16") return SourceRounding::kF16;
  if (dtype == "BF16") return SourceRounding::kBF16;
  if (dtype == "F32" || dtype == "F64") return SourceRounding::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("is stored as ", dtype.empty() ? std::string("an unknown type") : dtype,
                   "; only F16 and BF16 (rounded) and F32 or F64 (unchanged) sources can be "
                   "rounded to"));
}

float RoundToF16(float x) {
  // The compiler's IEEE binary16 conversion rounds to nearest, ties to even.
  return static_cast<float>(static_cast<_Float16>(x));
}

float RoundToBF16(float x) {
  if (std::isnan(x)) return x;
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  // Round to nearest even on the upper 16 bits (a carry into the exponent
  // is the correct result, up to infinity).
  b += 0x7FFFu + ((b >> 16) & 1u);
  b &= 0xFFFF0000u;
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

void RoundInPlace(SourceRounding r, std::vector<float>* w) {
  switch (r) {
    case SourceRounding::kNone:
      return;
    case SourceRounding::kF16:
      for (float& x : *w) x = RoundToF16(x);
      return;
    case SourceRounding::kBF16:
      for (float& x : *w) x = RoundToBF16(x);
      return;
  }
}

}  // namespace laserd::laser
