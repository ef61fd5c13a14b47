// Typed fields of tokenizer.json (hf_fields.h).
#include "engine/tokenizer/hf_fields.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::tokenizer::internal {

using json = nlohmann::json;

absl::Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<std::string> Str(const json& o, const char* key, const std::string& where,
                                std::optional<std::string> dflt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (dflt.has_value()) return *dflt;
    return Bad(where, absl::StrCat("missing string field \"", key, "\""));
  }
  if (!it->is_string()) return Bad(where, absl::StrCat("field \"", key, "\" is not a string"));
  return it->get<std::string>();
}

absl::StatusOr<bool> Bool(const json& o, const char* key, const std::string& where, bool dflt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return Bad(where, absl::StrCat("field \"", key, "\" is not a boolean"));
  return it->get<bool>();
}

absl::StatusOr<int64_t> Int(const json& o, const char* key, const std::string& where,
                            int64_t dflt) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_number_integer()) {
    return Bad(where, absl::StrCat("field \"", key, "\" is not an integer"));
  }
  return it->get<int64_t>();
}

absl::StatusOr<std::string> ComponentType(const json& j, const std::string& where, int depth) {
  if (depth > 32) return Bad(where, "nesting too deep");
  if (!j.is_object()) return Bad(where, "not an object");
  return Str(j, "type", where);
}

absl::StatusOr<std::shared_ptr<const Regex>> ParsePattern(const json& o, const std::string& where) {
  auto it = o.find("pattern");
  if (it == o.end() || !it->is_object()) return Bad(where, "missing object field \"pattern\"");
  if (auto s = it->find("String"); s != it->end() && s->is_string()) {
    const std::string lit = s->get<std::string>();
    if (lit.empty()) return std::shared_ptr<const Regex>();  // matches nothing
    return Regex::Compile(Regex::Escape(lit));
  }
  if (auto r = it->find("Regex"); r != it->end() && r->is_string()) {
    auto re = Regex::Compile(r->get<std::string>());
    if (!re.ok()) return Bad(where, std::string(re.status().message()));
    return re;
  }
  return Bad(where, "\"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
}

absl::StatusOr<std::string> ReplaceAll(std::string_view s, const Regex* re,
                                       const std::string& content) {
  if (re == nullptr) return std::string(s);
  LASERD_ASSIGN_OR_RETURN(auto matches, re->FindAll(s));
  std::string out;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    out.append(s.substr(prev, b - prev));
    out += content;
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace laserd::tokenizer::internal
