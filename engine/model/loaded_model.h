// A model ready to run: its weight file, a compute backend, its tokenizer and
// the loaded Model, opened together from a path and a device name.
#ifndef LASERD_ENGINE_MODEL_LOADED_MODEL_H_
#define LASERD_ENGINE_MODEL_LOADED_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/ops.h"

namespace laserd::model {

// Everything a loaded model needs, kept alive together. Members are destroyed
// bottom-up: the model before its backend and weights.
struct LoadedModel {
  std::unique_ptr<formats::WeightSource> weights;
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<Model> model;
  std::string tokenizer_source;  // "GGUF metadata" or the tokenizer.json path
};

// The tokenizer.json used for a safetensors model at `model_path`: beside the
// weights (in the directory, or in the directory of a .safetensors file).
std::string TokenizerJsonBeside(const std::string& model_path);

// formats::OpenWeights(path); the tokenizer from GGUF metadata or from
// `tokenizer_path` (default: TokenizerJsonBeside); kernels::MakeBackend(device);
// Model::Load.
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& device,
                                      const std::string& tokenizer_path = "");

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_LOADED_MODEL_H_
