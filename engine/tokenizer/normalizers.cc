// tokenizer.json normalizers (normalizers.h), with the `tokenizers` crate's semantics.
#include "engine/tokenizer/normalizers.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/tokenizer/hf_fields.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {
namespace {

using json = nlohmann::json;

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    for (const auto& p : parts_) {
      LASERD_ASSIGN_OR_RETURN(s, p->Apply(std::move(s)));
    }
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    if (s.empty()) return s;  // HF prepends only to non-empty strings
    return prepend_ + s;
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::shared_ptr<const Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    return ReplaceAll(s, re_.get(), content_);
  }

 private:
  std::shared_ptr<const Regex> re_;
  std::string content_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormForm f) : form_(f) {}
  absl::StatusOr<std::string> Apply(std::string s) const override { return Normalize(s, form_); }

 private:
  NormForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  absl::StatusOr<std::string> Apply(std::string s) const override { return ToLowerUnicode(s); }
};

class StripAccentsNormalizer : public Normalizer {
 public:
  absl::StatusOr<std::string> Apply(std::string s) const override { return StripMarks(s); }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  absl::StatusOr<std::string> Apply(std::string s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t p = b;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        b = p;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t p = start;
        if (!IsWhiteSpace(NextCodepoint(s, &p))) break;
        e = start;
      }
    }
    return s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const json& j, int depth) {
  const std::string where = "normalizer";
  LASERD_ASSIGN_OR_RETURN(const std::string type, ComponentType(j, where, depth));
  if (type == "Sequence") {
    LASERD_ASSIGN_OR_RETURN(
        auto parts, ParseSequence<Normalizer>(j, "normalizers", where, depth, ParseNormalizer));
    return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(parts)));
  }
  if (type == "Prepend") {
    LASERD_ASSIGN_OR_RETURN(auto p, Str(j, "prepend", where));
    return std::unique_ptr<Normalizer>(new PrependNormalizer(p));
  }
  if (type == "Replace") {
    LASERD_ASSIGN_OR_RETURN(auto re, ParsePattern(j, "Replace normalizer"));
    LASERD_ASSIGN_OR_RETURN(auto content, Str(j, "content", where));
    return std::unique_ptr<Normalizer>(new ReplaceNormalizer(re, content));
  }
  if (type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFC));
  if (type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFD));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFKC));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeNormalizer(NormForm::kNFKD));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new StripAccentsNormalizer());
  if (type == "Strip") {
    LASERD_ASSIGN_OR_RETURN(auto l, Bool(j, "strip_left", where, true));
    LASERD_ASSIGN_OR_RETURN(auto r, Bool(j, "strip_right", where, true));
    return std::unique_ptr<Normalizer>(new StripNormalizer(l, r));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported normalizer type \"", type, "\""));
}

}  // namespace laserd::tokenizer::internal
