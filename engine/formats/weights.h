// Weight files: one read-only view over safetensors (+config.json) and GGUF models.
//
// Every tensor is handed out dequantized to fp32, row-major, with its shape in
// PyTorch order (outermost dimension first). For GGUF that is the reverse of
// ggml's ne[] (ne[0] is the innermost dimension). Files are memory-mapped while
// loading. Every failure names the file, the tensor (where there is one) and
// the reason; no input, however corrupt, may crash or read out of bounds.
#ifndef LASERD_ENGINE_FORMATS_WEIGHTS_H_
#define LASERD_ENGINE_FORMATS_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::formats {

// Storage types a tensor may have on disk.
enum class DType {
  kF32,
  kF16,
  kBF16,
  kF64,
  kI8,
  kI16,
  kI32,
  kI64,
  kU8,
  kBool,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kQ8_K,
};
const char* DTypeName(DType t);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order, outermost first
  DType dtype;
  int64_t NumElements() const;
};

// A tensor dequantized to fp32.
struct TensorF32 {
  std::vector<int64_t> shape;  // PyTorch order
  std::vector<float> data;     // row-major
  int64_t NumElements() const;
};

enum class FileFormat { kSafetensors, kGguf };

// A model's weights and metadata.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual FileFormat format() const = 0;
  // The path given to Open (a directory for safetensors models, the file for GGUF).
  virtual const std::string& path() const = 0;
  // safetensors: the parsed config.json beside the weights (empty object if none).
  // GGUF: every metadata key/value as JSON: numbers, bools, strings, arrays
  //       (tokenizer.ggml.tokens etc. included), keyed by the GGUF key.
  virtual const nlohmann::json& metadata() const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  virtual bool Has(const std::string& name) const = 0;
  // Dequantizes one tensor to fp32. NOT_FOUND if absent; DATA_LOSS/INVALID_ARGUMENT
  // with file, tensor and reason if its bytes are missing or malformed.
  virtual absl::StatusOr<TensorF32> LoadF32(const std::string& name) const = 0;
};

// `path`: a directory holding model.safetensors or model.safetensors.index.json
// (sharded) and config.json, or a single .safetensors file (config.json read from
// its directory if present).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensors(const std::string& path);
// `path`: a GGUF v2 or v3 file.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenGguf(const std::string& path);
// Picks by content: a directory or *.safetensors -> safetensors, GGUF magic -> GGUF.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& path);

}  // namespace laserd::formats

#endif  // LASERD_ENGINE_FORMATS_WEIGHTS_H_
