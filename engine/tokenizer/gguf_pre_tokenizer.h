// The pre-tokenizer llama.cpp applies for a GGUF vocabulary's
// tokenizer.ggml.pre name, as public data: the isolating regex splits in
// order, and the BPE settings that go with it. For writers that turn a GGUF
// vocabulary into a Hugging Face tokenizer.json (engine/laser/export.cc).
#ifndef LASERD_ENGINE_TOKENIZER_GGUF_PRE_TOKENIZER_H_
#define LASERD_ENGINE_TOKENIZER_GGUF_PRE_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::tokenizer {

struct GgufPreTokenizerRules {
  std::vector<std::string> regexes;  // PCRE2 patterns, applied in order
  bool ignore_merges = false;        // a whole pre-token in the vocabulary is one token
  bool add_bos_default = false;      // BOS added when tokenizer.ggml.add_bos_token is absent
};

// INVALID_ARGUMENT for names llama.cpp does not know or laserd does not support.
absl::StatusOr<GgufPreTokenizerRules> GgufPreTokenizerRulesFor(const std::string& pre);

}  // namespace laserd::tokenizer

#endif  // LASERD_ENGINE_TOKENIZER_GGUF_PRE_TOKENIZER_H_
