#include "proto/spec_io.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace laserd::proto {
namespace {

using nlohmann::json;

// A plain (unquoted) YAML scalar as the YAML 1.2 core schema types it.
json PlainScalar(const std::string& s) {
  static const std::regex kNull("~|null|Null|NULL|");
  static const std::regex kTrue("true|True|TRUE");
  static const std::regex kFalse("false|False|FALSE");
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(s, kNull)) return nullptr;
  if (std::regex_match(s, kTrue)) return true;
  if (std::regex_match(s, kFalse)) return false;
  if (std::regex_match(s, kInt)) {
    try {
      return std::stoll(s);
    } catch (const std::out_of_range&) {
      return s;  // protobuf JSON takes 64-bit integers as strings too
    }
  }
  if (std::regex_match(s, kFloat)) {
    // Out of double's range (1e999): left as text for the message parser to judge.
    errno = 0;
    const double v = std::strtod(s.c_str(), nullptr);
    if (errno == ERANGE) return s;
    return v;
  }
  return s;
}

absl::StatusOr<json> ToJson(const YAML::Node& n, const std::string& source) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json(nullptr);
    case YAML::NodeType::Scalar:
      // Quoted scalars carry the non-specific tag "!": always strings.
      if (n.Tag() == "!") return json(n.Scalar());
      return PlainScalar(n.Scalar());
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const YAML::Node& e : n) {
        auto v = ToJson(e, source);
        if (!v.ok()) return v.status();
        a.push_back(*std::move(v));
      }
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": line ", kv.first.Mark().line + 1,
                           ": mapping keys must be plain field names"));
        }
        auto v = ToJson(kv.second, source);
        if (!v.ok()) return v.status();
        o[kv.first.Scalar()] = *std::move(v);
      }
      return o;
    }
  }
  return json(nullptr);
}

}  // namespace

absl::StatusOr<std::string> YamlToJson(const std::string& yaml, const std::string& source) {
  YAML::Node root;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml);
    if (docs.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": holds ", docs.size(), " YAML documents; a spec is one"));
    }
    if (!docs.empty()) root = docs[0];
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: line ",
                                                   e.mark.line + 1, ", column ", e.mark.column + 1,
                                                   ": ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a spec must be a YAML mapping of SweepSpec fields"));
  }
  auto j = ToJson(root, source);
  if (!j.ok()) return j.status();
  try {
    return j->dump();
  } catch (const json::exception& e) {  // a string that is not UTF-8
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid UTF-8 text: ", e.what()));
  }
}

absl::StatusOr<::laser::v1::SweepSpec> ParseSweepSpecText(const std::string& text,
                                                          const std::string& source) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  std::string json_text = text;
  const bool is_json = first != std::string::npos && text[first] == '{';
  if (!is_json) {
    auto converted = YamlToJson(text, source);
    if (!converted.ok()) return converted.status();
    json_text = *std::move(converted);
  }
  ::laser::v1::SweepSpec spec;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json_text, &spec, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a laser.v1.SweepSpec in ",
                                                   is_json ? "JSON" : "YAML",
                                                   " form: ", std::string(st.message())));
  }
  return spec;
}

absl::StatusOr<::laser::v1::SweepSpec> ReadSweepSpecFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open spec file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSweepSpecText(ss.str(), path);
}

}  // namespace laserd::proto
