#include "engine/eval/dataset.h"

#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace laserd::eval {
namespace {

using nlohmann::json;

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), if any.
std::optional<size_t> FirstInvalidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (int k = 2; k < len; ++k) {
      const unsigned char ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xBF) return i;
    }
    i += len;
  }
  return std::nullopt;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// Reads a required non-empty string field; returns the reason on failure.
std::optional<std::string> GetString(const json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::StrCat("missing field '", key, "'");
  if (!it->is_string()) {
    return absl::StrCat("field '", key, "' must be a string, got ", it->type_name());
  }
  *out = it->get<std::string>();
  if (out->empty()) return absl::StrCat("field '", key, "' is empty");
  return std::nullopt;
}

// Parses one non-blank line into `ex`; returns the reason on failure.
std::optional<std::string> ParseRecord(std::string_view text, Example* ex) {
  if (auto bad = FirstInvalidUtf8(text)) {
    return absl::StrCat("invalid UTF-8 at byte ", *bad + 1, " of the line");
  }
  json obj;
  try {
    obj = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return absl::StrCat("invalid JSON: ", e.what());
  }
  if (!obj.is_object()) {
    return absl::StrCat("record must be a JSON object, got ", obj.type_name());
  }
  const bool has_prompt = obj.contains("prompt");
  const bool has_question = obj.contains("question");
  if (!has_prompt && has_question) {
    // The paper's CounterFact layout.
    ex->kind = ExampleKind::kCompletion;
    if (auto r = GetString(obj, "question", &ex->prompt)) return r;
    if (auto r = GetString(obj, "gold-answer", &ex->answer)) return r;
    return std::nullopt;
  }
  if (!has_prompt) {
    return "missing field 'prompt' (expected {prompt, answer}, {prompt, choices, label} or "
           "{question, gold-answer})";
  }
  if (auto r = GetString(obj, "prompt", &ex->prompt)) return r;
  const bool has_answer = obj.contains("answer");
  const bool has_choices = obj.contains("choices");
  if (has_answer && has_choices) {
    return "record has both 'answer' and 'choices'; a record is either a completion or a choice";
  }
  if (!has_answer && !has_choices) return "missing field 'answer' (or 'choices' and 'label')";
  if (has_answer) {
    ex->kind = ExampleKind::kCompletion;
    if (auto r = GetString(obj, "answer", &ex->answer)) return r;
    return std::nullopt;
  }
  ex->kind = ExampleKind::kChoice;
  const json& choices = obj["choices"];
  if (!choices.is_array()) {
    return absl::StrCat("field 'choices' must be an array of strings, got ", choices.type_name());
  }
  if (choices.size() < 2) {
    return absl::StrCat("field 'choices' must have at least 2 entries, has ", choices.size());
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    if (!choices[i].is_string()) {
      return absl::StrCat("field 'choices[", i, "]' must be a string, got ",
                          choices[i].type_name());
    }
    std::string c = choices[i].get<std::string>();
    if (c.empty()) return absl::StrCat("field 'choices[", i, "]' is empty");
    ex->choices.push_back(std::move(c));
  }
  auto it = obj.find("label");
  if (it == obj.end()) return "missing field 'label'";
  if (!it->is_number_integer()) {
    return absl::StrCat("field 'label' must be an integer, got ",
                        it->is_number_float() ? "a non-integer number" : it->type_name());
  }
  // Non-negative integers parse as unsigned; read them as such so that a huge
  // value cannot wrap around into range.
  const bool in_range =
      it->is_number_unsigned()
          ? it->get<uint64_t>() < choices.size()
          : it->get<int64_t>() >= 0 && it->get<int64_t>() < static_cast<int64_t>(choices.size());
  if (!in_range) {
    return absl::StrCat("field 'label' is ", it->dump(), ", out of range for ", choices.size(),
                        " choices (0..", choices.size() - 1, ")");
  }
  ex->label =
      it->is_number_unsigned() ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>();
  return std::nullopt;
}

}  // namespace

const char* ExampleKindName(ExampleKind k) {
  return k == ExampleKind::kChoice ? "choice" : "completion";
}

ParseResult ParseDatasetLines(std::string_view content, std::string_view source,
                              size_t max_errors) {
  ParseResult out;
  out.dataset.source = std::string(source);
  // A UTF-8 byte-order mark at the very start is not part of the first record.
  if (content.substr(0, 3) == "\xEF\xBB\xBF") content.remove_prefix(3);
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    Example ex;
    ex.line = line_no;
    if (auto reason = ParseRecord(line, &ex)) {
      if (out.errors.size() < max_errors) out.errors.push_back({line_no, *std::move(reason)});
      ++out.error_count;
      continue;
    }
    ex.index = static_cast<int64_t>(out.dataset.examples.size());
    out.dataset.examples.push_back(std::move(ex));
  }
  return out;
}

absl::StatusOr<Dataset> ParseDataset(std::string_view content, std::string_view source) {
  ParseResult r = ParseDatasetLines(content, source, kMaxReportedErrors);
  if (r.error_count > 0) {
    std::string msg = absl::StrCat("dataset ", std::string(source), ": ", r.error_count,
                                   " bad record", r.error_count == 1 ? "" : "s");
    for (size_t i = 0; i < r.errors.size(); ++i) {
      absl::StrAppend(&msg, i == 0 ? ": " : "; ", "line ", r.errors[i].line, ": ",
                      r.errors[i].reason);
    }
    const int64_t shown = static_cast<int64_t>(r.errors.size());
    if (shown < r.error_count) absl::StrAppend(&msg, "; and ", r.error_count - shown, " more");
    return absl::InvalidArgumentError(msg);
  }
  if (r.dataset.examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", std::string(source), " has no records"));
  }
  return std::move(r.dataset);
}

absl::StatusOr<Dataset> LoadDataset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open dataset ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading dataset ", path));
  return ParseDataset(ss.str(), path);
}

}  // namespace laserd::eval
