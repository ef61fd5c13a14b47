// Tokenizers: byte-level BPE (GPT-2 style, with the pre-tokenizer variants the
// supported models use) and SentencePiece-style BPE with byte fallback, read
// from a Hugging Face tokenizer.json or from GGUF metadata (tokenizer.ggml.*).
#ifndef LASERD_ENGINE_TOKENIZER_TOKENIZER_H_
#define LASERD_ENGINE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes raw text (no chat template). When add_special is true the tokens the
  // model's tokenizer adds by default (BOS for Llama-2 style, none for GPT-2) are
  // added, exactly as the reference (`tokenizers` encode(add_special_tokens=True),
  // llama.cpp tokenize(add_special=True)) does. Special-token strings inside the
  // text are NOT parsed as special tokens (plain text in, plain text tokens out).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      bool add_special) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  // True when Encode(text, true) prepends BOS.
  virtual bool adds_bos() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
};

// tokenizer.json from Hugging Face `tokenizers` (BPE models only). A
// tokenizer_config.json beside it, if present, is consulted for add_bos_token.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::string& path);
// GGUF metadata as given by formats::WeightSource::metadata() (tokenizer.ggml.model
// "gpt2" or "llama"; tokenizer.ggml.pre selects the pre-tokenizer like llama.cpp).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const nlohmann::json& metadata);

}  // namespace laserd::tokenizer

#endif  // LASERD_ENGINE_TOKENIZER_TOKENIZER_H_
