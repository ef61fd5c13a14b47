// tokenizer.json "pre_tokenizer": how normalized text is cut into words before
// the BPE model sees them (HF tokenizers' pre_tokenizers: Sequence, ByteLevel,
// Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation,
// BertPreTokenizer, CharDelimiterSplit). Internal to engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_
#define LASERD_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

struct Word {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual absl::Status Apply(std::vector<Word>* words) const = 0;
};

// One "pre_tokenizer" object; `depth` bounds the nesting of Sequence (0 at the
// top). UNIMPLEMENTED for a type this reader does not know.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& j, int depth);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_PRE_TOKENIZERS_H_
