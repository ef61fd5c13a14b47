// Internals of the weight readers, shared by the .cc files of engine/formats,
// the unit tests and the fuzz targets. Not part of the public contract.
#ifndef LASERD_ENGINE_FORMATS_INTERNAL_H_
#define LASERD_ENGINE_FORMATS_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/formats/weights.h"

namespace laserd::formats::internal {

// A read-only byte range that stays valid while the object lives: a memory-mapped
// file, or (for fuzzing and tests) a copy of a buffer.
class Bytes {
 public:
  virtual ~Bytes() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
};

// Maps `path` read-only. NOT_FOUND when it does not exist.
absl::StatusOr<std::shared_ptr<const Bytes>> MapFile(const std::string& path);
// Copies `size` bytes from `data`.
std::shared_ptr<const Bytes> CopyBytes(const uint8_t* data, size_t size);

// Parse a GGUF image / a single safetensors image held in memory. `label` is the
// file name used in error messages and returned by path().
absl::StatusOr<std::unique_ptr<WeightSource>> OpenGgufBytes(const std::string& label,
                                                            std::shared_ptr<const Bytes> bytes);
absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensorsBytes(
    const std::string& label, std::shared_ptr<const Bytes> bytes);

// IEEE binary16 / bfloat16 bits to fp32, exact (NaN payloads kept).
float HalfToFloat(uint16_t h);
inline float BF16ToFloat(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// Block geometry of a storage type: `block_elems` elements take `block_bytes`
// bytes (1 and the element size for unquantized types).
struct BlockGeometry {
  int64_t block_elems;
  int64_t block_bytes;
};
BlockGeometry Geometry(DType t);

// Dequantizes `n_elems` elements (a multiple of the block size) stored as `t` at `src`
// into `dst`. The caller guarantees that `src` holds n_elems / block_elems * block_bytes
// bytes. Results are bit-identical to ggml's dequantize_row_* (and gguf-py's
// gguf.quants.dequantize) for quantized types.
void DequantizeRow(DType t, const uint8_t* src, int64_t n_elems, float* dst);

}  // namespace laserd::formats::internal

#endif  // LASERD_ENGINE_FORMATS_INTERNAL_H_
