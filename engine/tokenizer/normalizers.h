// tokenizer.json "normalizer": the text transformations applied before
// pre-tokenization (HF tokenizers' normalizers: Sequence, Prepend, Replace,
// NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, Strip). Internal to engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_NORMALIZERS_H_
#define LASERD_ENGINE_TOKENIZER_NORMALIZERS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual absl::StatusOr<std::string> Apply(std::string s) const = 0;
};

// One "normalizer" object; `depth` bounds the nesting of Sequence (0 at the top).
// UNIMPLEMENTED for a type this reader does not know.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& j, int depth);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_NORMALIZERS_H_
