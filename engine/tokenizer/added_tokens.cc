// tokenizer.json added tokens (added_tokens.h), with the `tokenizers` crate's semantics.
#include "engine/tokenizer/added_tokens.h"

#include <unicode/uchar.h>

#include "base/status_macros.h"
#include "engine/tokenizer/hf_fields.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {
namespace {

using json = nlohmann::json;

bool IsWordChar(uint32_t cp) {
  // Rust char::is_alphanumeric() || '_'
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return cp == '_' || u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC) ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

uint32_t LastCodepoint(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return NextCodepoint(s, &start);
}

}  // namespace

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const json& j) {
  std::vector<AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return Bad("added_tokens", "not an array");
  for (const auto& e : j) {
    if (!e.is_object()) return Bad("added_tokens", "entry is not an object");
    AddedToken t;
    LASERD_ASSIGN_OR_RETURN(auto id, Int(e, "id", "added_tokens", -1));
    if (id < 0 || id >= (1 << 21)) return Bad("added_tokens", "missing or invalid \"id\"");
    LASERD_ASSIGN_OR_RETURN(t.content, Str(e, "content", "added_tokens"));
    if (t.content.empty()) return Bad("added_tokens", "empty \"content\"");
    t.id = static_cast<int32_t>(id);
    LASERD_ASSIGN_OR_RETURN(t.single_word, Bool(e, "single_word", "added_tokens", false));
    LASERD_ASSIGN_OR_RETURN(t.lstrip, Bool(e, "lstrip", "added_tokens", false));
    LASERD_ASSIGN_OR_RETURN(t.rstrip, Bool(e, "rstrip", "added_tokens", false));
    LASERD_ASSIGN_OR_RETURN(t.special, Bool(e, "special", "added_tokens", false));
    LASERD_ASSIGN_OR_RETURN(t.normalized, Bool(e, "normalized", "added_tokens", !t.special));
    out.push_back(std::move(t));
  }
  return out;
}

// Splits `s` into (token or nullptr, text) pieces, HF find_matches semantics.
std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> AddedMatcher::Split(
    std::string_view s) const {
  std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> out;
  size_t start_offset = 0;
  size_t i = 0;
  while (i < s.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : by_first_[static_cast<unsigned char>(s[i])]) {
      if (s.compare(i, t->content.size(), t->content) == 0) {
        hit = t;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    i = stop;
    if (hit->single_word) {
      const bool start_ok = start == 0 || !IsWordChar(LastCodepoint(s.substr(0, start)));
      size_t p = stop;
      const bool stop_ok = stop == s.size() || !IsWordChar(NextCodepoint(s, &p));
      if (!start_ok || !stop_ok) continue;
    }
    if (hit->lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t b = ns - 1;
        while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
        size_t p = b;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        ns = b;
      }
      start = std::max(ns, start_offset);
    }
    if (hit->rstrip) {
      while (stop < s.size()) {
        size_t p = stop;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        stop = p;
      }
      i = stop;
    }
    if (start_offset < start) out.push_back({nullptr, {start_offset, start}});
    out.push_back({hit, {start, stop}});
    start_offset = stop;
  }
  if (start_offset < s.size()) out.push_back({nullptr, {start_offset, s.size()}});
  return out;
}

}  // namespace laserd::tokenizer::internal
