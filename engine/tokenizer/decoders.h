// tokenizer.json "decoder": how token strings become text again (HF tokenizers'
// decoders: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace,
// BPEDecoder). Internal to engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_DECODERS_H_
#define LASERD_ENGINE_TOKENIZER_DECODERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> Apply(std::vector<std::string> toks) const = 0;
};

// One "decoder" object; `depth` bounds the nesting of Sequence (0 at the top).
// UNIMPLEMENTED for a type this reader does not know.
absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& j, int depth);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_DECODERS_H_
