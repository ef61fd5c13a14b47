// A Llama-architecture model with random weights, made on demand (no file, no
// download): the weights of Llama-2-7B's shape by default (d 4096, MLP 11008,
// 32 heads, vocabulary 32000), or any smaller shape for rehearsals. Matrices
// are uniform with std 0.02, as initialised LMs are; norm weights are 1.
// Values come from a counter-based generator (splitmix64 of the element
// index), so they are the same whatever the thread count, and every tensor
// is filled by all hardware threads at once.
#ifndef LASERD_BENCH_GPU_RANDOM_LLAMA_H_
#define LASERD_BENCH_GPU_RANDOM_LLAMA_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/formats/weights.h"
#include "nlohmann/json.hpp"

namespace laserd::bench {

struct LlamaShape {
  int64_t layers = 32;
  int64_t hidden = 4096;
  int64_t intermediate = 11008;
  int64_t heads = 32;
  int64_t vocab = 32000;
  // transformers' LlamaConfig fields of this shape.
  nlohmann::json HfConfig() const;
  // GEMM FLOPs of one token through every layer (projections and MLP).
  double LayerFlopsPerToken() const;
};

// Fills out[0, n) with uniform values in [-a, a): element i depends on (seed, i) only.
void FillUniformParallel(uint64_t seed, float a, float* out, int64_t n);

class RandomLlama : public formats::WeightSource {
 public:
  explicit RandomLlama(const LlamaShape& shape);
  formats::FileFormat format() const override { return formats::FileFormat::kSafetensors; }
  const std::string& path() const override { return path_; }
  const nlohmann::json& metadata() const override { return meta_; }
  const std::vector<formats::TensorInfo>& tensors() const override { return infos_; }
  bool Has(const std::string& name) const override { return index_.count(name) > 0; }
  absl::StatusOr<formats::TensorF32> LoadF32(const std::string& name) const override;

 private:
  void Add(const std::string& name, std::vector<int64_t> shape);
  std::string path_ = "random-llama";
  nlohmann::json meta_;
  std::vector<formats::TensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

}  // namespace laserd::bench

#endif  // LASERD_BENCH_GPU_RANDOM_LLAMA_H_
