#include "engine/model/loaded_model.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::model {

std::string TokenizerJsonBeside(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(model_path);
  fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  return (dir / "tokenizer.json").string();
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const std::string& device,
                                      const std::string& tokenizer_path) {
  LoadedModel lm;
  LASERD_ASSIGN_OR_RETURN(lm.weights, formats::OpenWeights(path));
  if (!tokenizer_path.empty()) {
    LASERD_ASSIGN_OR_RETURN(lm.tokenizer, tokenizer::LoadTokenizerJson(tokenizer_path));
    lm.tokenizer_source = tokenizer_path;
  } else if (lm.weights->format() == formats::FileFormat::kGguf) {
    auto tok = tokenizer::LoadGgufTokenizer(lm.weights->metadata());
    if (!tok.ok()) {
      return absl::Status(
          tok.status().code(),
          absl::StrCat(path, ": tokenizer from GGUF metadata: ", tok.status().message()));
    }
    lm.tokenizer = *std::move(tok);
    lm.tokenizer_source = "GGUF metadata";
  } else {
    const std::string tj = TokenizerJsonBeside(path);
    std::error_code ec;
    if (!std::filesystem::exists(tj, ec)) {
      return absl::NotFoundError(absl::StrCat("no tokenizer for ", path, ": ", tj,
                                              " does not exist (pass a tokenizer.json)"));
    }
    LASERD_ASSIGN_OR_RETURN(lm.tokenizer, tokenizer::LoadTokenizerJson(tj));
    lm.tokenizer_source = tj;
  }
  LASERD_ASSIGN_OR_RETURN(lm.backend, kernels::MakeBackend(device));
  LASERD_ASSIGN_OR_RETURN(lm.model, Model::Load(*lm.weights, lm.backend.get()));
  return lm;
}

}  // namespace laserd::model
