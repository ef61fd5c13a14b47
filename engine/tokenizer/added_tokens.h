// tokenizer.json "added_tokens": tokens matched in the text before the model
// tokenizes the rest (HF tokenizers' AddedVocabulary): their options (single
// word, strip left/right, normalized, special) and the leftmost-longest matcher.
// Internal to engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_ADDED_TOKENS_H_
#define LASERD_ENGINE_TOKENIZER_ADDED_TOKENS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

struct AddedToken {
  int32_t id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

// The "added_tokens" array (null: none). Every entry needs an id and a
// non-empty content; `normalized` defaults to `!special`.
absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& j);

// A set of added tokens matched leftmost-longest, as HF's aho-corasick does.
class AddedMatcher {
 public:
  void Add(const AddedToken* t) {
    if (t->content.empty()) return;
    by_first_[static_cast<unsigned char>(t->content[0])].push_back(t);
  }
  bool empty() const {
    for (const auto& v : by_first_) {
      if (!v.empty()) return false;
    }
    return true;
  }
  void Sort() {
    for (auto& v : by_first_) {
      std::stable_sort(v.begin(), v.end(), [](const AddedToken* a, const AddedToken* b) {
        return a->content.size() > b->content.size();
      });
    }
  }
  // Splits `s` into (token or nullptr, text) pieces, HF find_matches semantics.
  std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> Split(
      std::string_view s) const;

 private:
  std::vector<const AddedToken*> by_first_[256];
};

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_ADDED_TOKENS_H_
