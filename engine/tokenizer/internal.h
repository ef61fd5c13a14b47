// Building blocks shared by the tokenizer.json and GGUF tokenizers. Internal to
// engine/tokenizer (and its tests/fuzzers); not part of the public contract.
#ifndef LASERD_ENGINE_TOKENIZER_INTERNAL_H_
#define LASERD_ENGINE_TOKENIZER_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

// ---------------------------------------------------------------- UTF-8 ----

// Length in bytes of the UTF-8 sequence starting with `lead` (1 for invalid
// lead bytes, so that scanning always advances).
int Utf8Len(unsigned char lead);
// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);
void AppendUtf8(uint32_t cp, std::string* out);
// Decodes the code point at s[*pos] (s must be valid UTF-8) and advances *pos.
uint32_t NextCodepoint(std::string_view s, size_t* pos);
// Unicode White_Space (ICU u_isUWhiteSpace), as Rust's char::is_whitespace.
bool IsWhiteSpace(uint32_t cp);

// GPT-2 bytes_to_unicode: byte -> UTF-8 of its printable stand-in character.
const std::string& ByteToUnicode(uint8_t b);
// Byte-level encoding of raw bytes (each byte -> its stand-in character).
std::string ByteLevelEncode(std::string_view raw);
// Inverse of ByteLevelEncode for one token's text. Characters that are not
// stand-ins are copied through as their UTF-8 bytes (HF ByteLevel decoder).
std::string ByteLevelDecode(std::string_view text);

// Unicode normalization forms (ICU).
enum class NormForm { kNFC, kNFD, kNFKC, kNFKD };
absl::StatusOr<std::string> Normalize(std::string_view s, NormForm form);
std::string ToLowerUnicode(std::string_view s);
// Removes combining marks (Mn), as HF StripAccents does (meant after NFD).
std::string StripMarks(std::string_view s);

// ---------------------------------------------------------------- Regex ----

// A PCRE2 pattern compiled in UTF + UCP mode (\s, \w, \d are Unicode-aware, as
// in Oniguruma which HF tokenizers uses). Lookaheads such as \s+(?!\S) are
// native PCRE2 syntax.
class Regex {
 public:
  static absl::StatusOr<std::shared_ptr<const Regex>> Compile(const std::string& pattern);
  static std::string Escape(std::string_view literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-overlapping matches [begin, end) in byte offsets, left to right. Empty
  // matches are skipped (the scan advances one code point).
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> FindAll(std::string_view s) const;
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// How a matched delimiter is kept (HF SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
absl::StatusOr<SplitBehavior> ParseSplitBehavior(const std::string& name);

// Splits `s` into pieces given the matches of a delimiter (sorted, disjoint).
// When `invert`, the matches are the pieces to keep and the rest the delimiters.
std::vector<std::string> SplitByMatches(std::string_view s,
                                        const std::vector<std::pair<size_t, size_t>>& matches,
                                        SplitBehavior behavior, bool invert);

// ------------------------------------------------------------------ BPE ----

// A BPE vocabulary with merge ranks over token ids. Words are split into
// characters, characters missing from the vocabulary go to byte-fallback tokens
// (<0xNN>) or the unknown token, then the lowest-rank adjacent pair is merged
// repeatedly (ties: leftmost), as both HF tokenizers and llama.cpp do.
class BpeModel {
 public:
  struct Options {
    bool byte_fallback = false;
    std::optional<std::string> unk_token;
    bool fuse_unk = false;
    bool ignore_merges = false;
    std::string continuing_subword_prefix;
    std::string end_of_word_suffix;
  };
  // `vocab`: token text per id (ids are positions; duplicates are an error).
  // `merges`: pairs in rank order. When `skip_bad_merges`, merges whose parts or
  // result are not in the vocabulary are ignored (llama.cpp keeps them but they
  // can never produce a token); otherwise they are an error (HF). When
  // `first_merge_wins`, a repeated pair keeps its first rank (llama.cpp),
  // otherwise its last (HF).
  static absl::StatusOr<BpeModel> Create(
      std::vector<std::string> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, Options options,
      bool skip_bad_merges, bool first_merge_wins);
  // Same with an explicit token -> id map (tokenizer.json "vocab" may have holes).
  static absl::StatusOr<BpeModel> CreateFromMap(
      const std::vector<std::pair<std::string, int32_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, Options options);

  // Appends the ids of one pre-tokenized word.
  absl::Status TokenizeWord(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Empty string for ids with no token.
  const std::string& IdToToken(int32_t id) const;
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  absl::Status Finish(const std::vector<std::pair<std::string, std::string>>& merges,
                      bool skip_bad_merges, bool first_merge_wins);
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  Options options_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  std::vector<int32_t> byte_tokens_;  // <0xNN> ids, -1 when absent
};

// --------------------------------------------------------- tokenizer.json ---

// Parses a tokenizer.json document. `config` is the tokenizer_config.json
// beside it, if any (consulted for add_bos_token / add_eos_token / bos_token).
// `origin` names the input in error messages.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJsonString(std::string_view json_text,
                                                                   const nlohmann::json* config,
                                                                   const std::string& origin);

// Pre-tokenizer regexes llama.cpp uses for tokenizer.ggml.pre (model "gpt2").
// NOT_FOUND-like INVALID_ARGUMENT for names llama.cpp does not know or we do
// not support.
struct GgufPreTokenizer {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos_default = false;
};
absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(const std::string& pre);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_INTERNAL_H_
