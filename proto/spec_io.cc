#include "proto/spec_io.h"

#include <google/protobuf/util/json_util.h>
#include <yaml.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

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

// Bounds on what one spec may expand to: aliases can make a short document
// name the same node many times over ("billion laughs").
constexpr int kMaxDepth = 64;
constexpr int64_t kMaxNodes = 100000;

class Converter {
 public:
  Converter(yaml_document_t* doc, const std::string& source) : doc_(doc), source_(source) {}

  absl::StatusOr<json> Convert(yaml_node_t* n, int depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ": nested deeper than ", kMaxDepth, " levels"));
    }
    if (++nodes_ > kMaxNodes) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ": expands to more than ", kMaxNodes, " YAML nodes"));
    }
    switch (n->type) {
      case YAML_SCALAR_NODE: {
        const std::string v(reinterpret_cast<const char*>(n->data.scalar.value),
                            n->data.scalar.length);
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json(v);  // quoted
        return PlainScalar(v);
      }
      case YAML_SEQUENCE_NODE: {
        json a = json::array();
        for (yaml_node_item_t* i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             ++i) {
          LASERD_ASSIGN_OR_RETURN(json v, Convert(yaml_document_get_node(doc_, *i), depth + 1));
          a.push_back(std::move(v));
        }
        return a;
      }
      case YAML_MAPPING_NODE: {
        json o = json::object();
        for (yaml_node_pair_t* p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             ++p) {
          yaml_node_t* k = yaml_document_get_node(doc_, p->key);
          if (k->type != YAML_SCALAR_NODE) {
            return absl::InvalidArgumentError(
                absl::StrCat(source_, ": line ", k->start_mark.line + 1,
                             ": mapping keys must be plain field names"));
          }
          LASERD_ASSIGN_OR_RETURN(json v,
                                  Convert(yaml_document_get_node(doc_, p->value), depth + 1));
          o[std::string(reinterpret_cast<const char*>(k->data.scalar.value),
                        k->data.scalar.length)] = std::move(v);
        }
        return o;
      }
      default:
        return json(nullptr);
    }
  }

 private:
  yaml_document_t* doc_;
  const std::string& source_;
  int64_t nodes_ = 0;
};

// libyaml's parser and documents, released on every path.
struct Parser {
  yaml_parser_t p;
  Parser() { yaml_parser_initialize(&p); }
  ~Parser() { yaml_parser_delete(&p); }
};
struct Document {
  yaml_document_t d;
  bool loaded = false;
  ~Document() {
    if (loaded) yaml_document_delete(&d);
  }
};

absl::Status ParseError(const yaml_parser_t& p, const std::string& source) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": not valid YAML: line ", p.problem_mark.line + 1, ", column ",
                   p.problem_mark.column + 1, ": ", p.problem ? p.problem : "syntax error",
                   p.context ? absl::StrCat(" (", p.context, ")") : ""));
}

}  // namespace

absl::StatusOr<std::string> YamlToJson(const std::string& yaml, const std::string& source) {
  Parser parser;
  yaml_parser_set_input_string(&parser.p, reinterpret_cast<const unsigned char*>(yaml.data()),
                               yaml.size());
  Document first, second;
  if (!yaml_parser_load(&parser.p, &first.d)) return ParseError(parser.p, source);
  first.loaded = true;
  yaml_node_t* root = yaml_document_get_root_node(&first.d);
  if (root != nullptr) {
    if (!yaml_parser_load(&parser.p, &second.d)) return ParseError(parser.p, source);
    second.loaded = true;
    if (yaml_document_get_root_node(&second.d) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": holds more than one YAML document; a spec is one"));
    }
  }
  if (root == nullptr || root->type != YAML_MAPPING_NODE) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a spec must be a YAML mapping of SweepSpec fields"));
  }
  LASERD_ASSIGN_OR_RETURN(const json j, Converter(&first.d, source).Convert(root, 0));
  try {
    return j.dump();
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
    LASERD_ASSIGN_OR_RETURN(json_text, YamlToJson(text, source));
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
