// Typed fields of a tokenizer.json document, shared by the readers of its
// components (normalizers, pre-tokenizers, decoders, post-processors, added
// tokens): absent or null keys give the default, a wrong type is an error that
// names where it was found. Internal to engine/tokenizer.
#ifndef LASERD_ENGINE_TOKENIZER_HF_FIELDS_H_
#define LASERD_ENGINE_TOKENIZER_HF_FIELDS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/internal.h"
#include "nlohmann/json.hpp"

namespace laserd::tokenizer::internal {

// INVALID_ARGUMENT "where: what".
absl::Status Bad(const std::string& where, const std::string& what);

absl::StatusOr<std::string> Str(const nlohmann::json& o, const char* key, const std::string& where,
                                std::optional<std::string> dflt = std::nullopt);
absl::StatusOr<bool> Bool(const nlohmann::json& o, const char* key, const std::string& where,
                          bool dflt);
absl::StatusOr<int64_t> Int(const nlohmann::json& o, const char* key, const std::string& where,
                            int64_t dflt);

// A "pattern" field: {"String": "..."} (a literal) or {"Regex": "..."}. An empty
// literal gives a null regex, which matches nothing.
absl::StatusOr<std::shared_ptr<const Regex>> ParsePattern(const nlohmann::json& o,
                                                          const std::string& where);

// The "type" of a component object (normalizer, pre-tokenizer, decoder,
// post-processor) at Sequence nesting `depth`: INVALID_ARGUMENT when it is nested
// deeper than 32, not an object, or has no string "type".
absl::StatusOr<std::string> ComponentType(const nlohmann::json& j, const std::string& where,
                                          int depth);

// The parts of a "Sequence" component: each element of its array `key`, read by
// `parse(element, depth + 1)`.
template <typename T, typename Parse>
absl::StatusOr<std::vector<std::unique_ptr<T>>> ParseSequence(const nlohmann::json& j,
                                                              const char* key,
                                                              const std::string& where, int depth,
                                                              Parse parse) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    return Bad(where, absl::StrCat("Sequence without \"", key, "\""));
  }
  std::vector<std::unique_ptr<T>> parts;
  for (const auto& e : *it) {
    LASERD_ASSIGN_OR_RETURN(auto p, parse(e, depth + 1));
    parts.push_back(std::move(p));
  }
  return parts;
}

// `s` with every match of `re` replaced by `content` (`s` itself when `re` is null).
absl::StatusOr<std::string> ReplaceAll(std::string_view s, const Regex* re,
                                       const std::string& content);

}  // namespace laserd::tokenizer::internal

#endif  // LASERD_ENGINE_TOKENIZER_HF_FIELDS_H_
