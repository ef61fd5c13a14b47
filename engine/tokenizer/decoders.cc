// tokenizer.json decoders (decoders.h), with the `tokenizers` crate's semantics.
#include "engine/tokenizer/decoders.h"

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/hf_fields.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {
namespace {

using json = nlohmann::json;

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> p) : parts_(std::move(p)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (const auto& p : parts_) toks = p->Apply(std::move(toks));
    return toks;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::string all;
    for (const auto& t : toks) all += ByteLevelDecode(t);
    return {all};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::shared_ptr<const Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (auto& t : toks) {
      auto r = ReplaceAll(t, re_.get(), content_);
      if (r.ok()) t = std::move(*r);
    }
    return toks;
  }

 private:
  std::shared_ptr<const Regex> re_;
  std::string content_;
};

std::optional<uint8_t> ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') {
    return std::nullopt;
  }
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int h = hex(t[3]), l = hex(t[4]);
  if (h < 0 || l < 0) return std::nullopt;
  return static_cast<uint8_t>(h * 16 + l);
}

class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (nbytes == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < nbytes; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      nbytes = 0;
    };
    for (auto& t : toks) {
      if (auto b = ParseByteToken(t)) {
        bytes.push_back(static_cast<char>(*b));
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    std::string all;
    for (const auto& t : toks) all += t;
    return {all};
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int64_t start, int64_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    for (auto& t : toks) {
      size_t b = 0, e = t.size();
      for (int64_t i = 0;
           i < start_ && b + content_.size() <= e && t.compare(b, content_.size(), content_) == 0;
           ++i) {
        b += content_.size();
      }
      for (int64_t i = 0; i < stop_ && e >= b + content_.size() &&
                          t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
    return toks;
  }

 private:
  std::string content_;
  int64_t start_, stop_;
};

// Each occurrence of `marker` in token i becomes a space where `space(i)`, and is
// dropped elsewhere; an empty marker changes nothing.
template <typename SpaceAt>
std::vector<std::string> ReplaceMarker(std::vector<std::string> toks, const std::string& marker,
                                       SpaceAt space) {
  if (marker.empty()) return toks;
  for (size_t i = 0; i < toks.size(); ++i) {
    std::string out;
    const std::string& t = toks[i];
    size_t p = 0;
    while (p < t.size()) {
      if (t.compare(p, marker.size(), marker) == 0) {
        if (space(i)) out.push_back(' ');
        p += marker.size();
      } else {
        out.push_back(t[p++]);
      }
    }
    toks[i] = std::move(out);
  }
  return toks;
}

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_(strip_first) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    return ReplaceMarker(std::move(toks), rep_, [&](size_t i) { return !(i == 0 && strip_); });
  }

 private:
  std::string rep_;
  bool strip_;
};

class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> Apply(std::vector<std::string> toks) const override {
    const size_t n = toks.size();
    return ReplaceMarker(std::move(toks), suffix_, [n](size_t i) { return i + 1 != n; });
  }

 private:
  std::string suffix_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const json& j, int depth) {
  const std::string where = "decoder";
  LASERD_ASSIGN_OR_RETURN(const std::string type, ComponentType(j, where, depth));
  if (type == "Sequence") {
    LASERD_ASSIGN_OR_RETURN(auto parts,
                            ParseSequence<Decoder>(j, "decoders", where, depth, ParseDecoder));
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(parts)));
  }
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Replace") {
    LASERD_ASSIGN_OR_RETURN(auto re, ParsePattern(j, "Replace decoder"));
    LASERD_ASSIGN_OR_RETURN(auto content, Str(j, "content", where));
    return std::unique_ptr<Decoder>(new ReplaceDecoder(re, content));
  }
  if (type == "Strip") {
    LASERD_ASSIGN_OR_RETURN(auto content, Str(j, "content", where));
    LASERD_ASSIGN_OR_RETURN(auto start, Int(j, "start", where, 0));
    LASERD_ASSIGN_OR_RETURN(auto stop, Int(j, "stop", where, 0));
    return std::unique_ptr<Decoder>(new StripDecoder(content, start, stop));
  }
  if (type == "Metaspace") {
    LASERD_ASSIGN_OR_RETURN(auto rep, Str(j, "replacement", where, std::string("\xE2\x96\x81")));
    bool strip = true;
    if (j.contains("prepend_scheme")) {
      LASERD_ASSIGN_OR_RETURN(auto s, Str(j, "prepend_scheme", where));
      strip = s != "never";
    } else {
      LASERD_ASSIGN_OR_RETURN(auto aps, Bool(j, "add_prefix_space", where, true));
      strip = aps;
    }
    if (rep.empty()) return Bad(where, "empty Metaspace replacement");
    return std::unique_ptr<Decoder>(new MetaspaceDecoder(rep, strip));
  }
  if (type == "BPEDecoder") {
    LASERD_ASSIGN_OR_RETURN(auto suffix, Str(j, "suffix", where, std::string("</w>")));
    return std::unique_ptr<Decoder>(new BpeSuffixDecoder(suffix));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported decoder type \"", type, "\""));
}

}  // namespace laserd::tokenizer::internal
