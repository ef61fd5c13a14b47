// tokenizer.json "post_processor": the special tokens Encode(add_special = true)
// puts around a single sequence (HF tokenizers' processors: ByteLevel, Sequence,
// RobertaProcessing, BertProcessing, TemplateProcessing). Internal to
// engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_POST_PROCESSORS_H_
#define LASERD_ENGINE_TOKENIZER_POST_PROCESSORS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

// Appends the ids the "post_processor" object `j` puts before (`prefix`) and
// after (`suffix`) the sequence; a null `j` adds none. Ids must be below
// `vocab_size`. `depth` bounds the nesting of Sequence (0 at the top).
absl::Status ParsePostProcessor(const nlohmann::json& j, int32_t vocab_size,
                                std::vector<int32_t>* prefix, std::vector<int32_t>* suffix,
                                int depth);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_POST_PROCESSORS_H_
