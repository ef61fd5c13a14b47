// tokenizer.json post-processors (post_processors.h), with the `tokenizers` crate's semantics.
#include "engine/tokenizer/post_processors.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/hf_fields.h"

namespace laserd::tokenizer::internal {

using json = nlohmann::json;

absl::Status ParsePostProcessor(const json& j, int32_t vocab_size, std::vector<int32_t>* prefix,
                                std::vector<int32_t>* suffix, int depth) {
  const std::string where = "post_processor";
  if (j.is_null()) return absl::OkStatus();
  LASERD_ASSIGN_OR_RETURN(const std::string type, ComponentType(j, where, depth));
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) return Bad(where, "Sequence without \"processors\"");
    for (const auto& p : *it) {
      std::vector<int32_t> pre, suf;
      LASERD_RETURN_IF_ERROR(ParsePostProcessor(p, vocab_size, &pre, &suf, depth + 1));
      prefix->insert(prefix->begin(), pre.begin(), pre.end());
      suffix->insert(suffix->end(), suf.begin(), suf.end());
    }
    return absl::OkStatus();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto get = [&](const char* key) -> absl::StatusOr<int32_t> {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
        return Bad(where, absl::StrCat(type, " needs \"", key, "\": [token, id]"));
      }
      const int64_t id = (*it)[1].get<int64_t>();
      if (id < 0 || id >= vocab_size) {
        return Bad(where, absl::StrCat(type, " \"", key, "\" id ", id, " is out of range"));
      }
      return static_cast<int32_t>(id);
    };
    LASERD_ASSIGN_OR_RETURN(auto cls, get("cls"));
    LASERD_ASSIGN_OR_RETURN(auto sep, get("sep"));
    prefix->push_back(cls);
    suffix->push_back(sep);
    return absl::OkStatus();
  }
  if (type == "TemplateProcessing") {
    auto single = j.find("single");
    if (single == j.end() || !single->is_array()) return Bad(where, "template without \"single\"");
    auto specials = j.find("special_tokens");
    bool seen_seq = false;
    for (const auto& item : *single) {
      if (!item.is_object()) return Bad(where, "template item is not an object");
      if (item.contains("Sequence")) {
        if (seen_seq) return Bad(where, "template \"single\" has two sequences");
        seen_seq = true;
        continue;
      }
      auto st = item.find("SpecialToken");
      if (st == item.end() || !st->is_object()) {
        return Bad(where, "template item is neither Sequence nor SpecialToken");
      }
      LASERD_ASSIGN_OR_RETURN(auto name, Str(*st, "id", where));
      std::vector<int32_t> ids;
      const json* spec = nullptr;
      if (specials != j.end() && specials->is_object()) {
        auto s = specials->find(name);
        if (s != specials->end()) spec = &*s;
      }
      if (spec == nullptr) {
        return Bad(where, absl::StrCat("template token \"", name, "\" not in special_tokens"));
      }
      auto ids_it = spec->find("ids");
      if (ids_it == spec->end() || !ids_it->is_array()) {
        return Bad(where, absl::StrCat("special token \"", name, "\" has no ids"));
      }
      for (const auto& v : *ids_it) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
          return Bad(where, absl::StrCat("special token \"", name, "\" has an invalid id"));
        }
        ids.push_back(v.get<int32_t>());
      }
      auto& dst = seen_seq ? *suffix : *prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    if (!seen_seq) return Bad(where, "template \"single\" has no $A sequence");
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("unsupported post_processor type \"", type, "\""));
}

}  // namespace laserd::tokenizer::internal
