// PCRE2 regexes (UTF + UCP), delimiter splitting, and llama.cpp's table of
// GGUF pre-tokenizer regexes (tokenizer.ggml.pre).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {

absl::StatusOr<std::shared_ptr<const Regex>> Regex::Compile(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(absl::StrCat("invalid regex \"", pattern, "\" at offset ",
                                                   err_offset, ": ",
                                                   reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to interpreter
  std::shared_ptr<Regex> re(new Regex());
  re->pattern_ = pattern;
  re->code_ = code;
  return std::shared_ptr<const Regex>(std::move(re));
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

std::string Regex::Escape(std::string_view literal) {
  // \Q...\E quoting, with any \E inside the literal split out.
  std::string out = "\\Q";
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'E') {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out.push_back(literal[i]);
    }
  }
  out += "\\E";
  return out;
}

absl::StatusOr<std::vector<std::pair<size_t, size_t>>> Regex::FindAll(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (md == nullptr) return absl::ResourceExhaustedError("pcre2_match_data_create failed");
  size_t pos = 0;
  std::optional<size_t> last_match_end;
  absl::Status status;
  while (pos <= s.size()) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos,
                               PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      status = absl::ResourceExhaustedError(absl::StrCat(
          "regex \"", pattern_, "\" failed to match: ", reinterpret_cast<const char*>(msg)));
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (b == e) {
      // Empty match: accepted unless it touches the previous match's end (as
      // Oniguruma's find_iter); the scan then moves on by one code point.
      if (!last_match_end.has_value() || *last_match_end != e) {
        out.emplace_back(b, e);
        last_match_end = e;
      }
      if (b >= s.size()) break;
      pos = b + Utf8Len(static_cast<unsigned char>(s[b]));
      if (pos > s.size()) pos = s.size();
      continue;
    }
    out.emplace_back(b, e);
    last_match_end = e;
    pos = e;
  }
  pcre2_match_data_free(md);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<SplitBehavior> ParseSplitBehavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("unknown split behavior \"", name, "\""));
}

std::vector<std::string> SplitByMatches(std::string_view s,
                                        const std::vector<std::pair<size_t, size_t>>& matches,
                                        SplitBehavior behavior, bool invert) {
  struct Piece {
    size_t b, e;
    bool is_match;
  };
  std::vector<Piece> pieces;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) pieces.push_back({prev, b, false});
    pieces.push_back({b, e, true});
    prev = e;
  }
  if (prev < s.size()) pieces.push_back({prev, s.size(), false});
  if (invert) {
    for (auto& p : pieces) p.is_match = !p.is_match;
  }
  std::vector<std::pair<size_t, size_t>> spans;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& p : pieces) {
        if (!p.is_match) spans.emplace_back(p.b, p.e);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& p : pieces) spans.emplace_back(p.b, p.e);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : pieces) {
        if (p.is_match && !previous_match && !spans.empty()) {
          spans.back().second = p.e;
        } else {
          spans.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !spans.empty()) {
          spans.back().first = it->b;
        } else {
          spans.emplace_back(it->b, it->e);
        }
        previous_match = it->is_match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& p : pieces) {
        if (p.is_match == previous_match && !spans.empty()) {
          spans.back().second = p.e;
        } else {
          spans.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
  }
  std::vector<std::string> out;
  for (const auto& [b, e] : spans) {
    if (e > b) out.emplace_back(s.substr(b, e - b));
  }
  return out;
}

namespace {

// The regexes below are copied from llama.cpp (src/llama-vocab.cpp,
// llm_tokenizer_bpe), which rewrites the tokenizer.json originals' (?i:...)
// groups as explicit character classes.
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen35 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]"
    "+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kBloom = " ?[^(\\s|.,!?…。，、।۔،)]+";

}  // namespace

absl::StatusOr<GgufPreTokenizer> GgufPreTokenizerFor(const std::string& pre) {
  GgufPreTokenizer p;
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (pre == n) return true;
    }
    return false;
  };
  if (pre.empty() || pre == "default") {
    p.regexes = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
  } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                 "lfm2", "jina-v5-nano"})) {
    p.regexes = {kLlama3};
    p.ignore_merges = true;
    p.add_bos_default = true;
  } else if (is({"dbrx", "smaug-bpe", "chatglm-bpe"})) {
    p.regexes = {kLlama3};
  } else if (is({"glm4", "glm5"})) {
    p.regexes = {kLlama3};
    p.ignore_merges = true;
  } else if (pre == "deepseek-coder") {
    p.regexes = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  } else if (pre == "deepseek-v3") {
    p.regexes = {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                 "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?["
                 "\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};
  } else if (pre == "falcon") {
    p.regexes = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"};
  } else if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
                 "minerva-7b"})) {
    p.regexes = {"\\p{N}", kGpt2};
  } else if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                 "a.x-4.0", "mellum", "modern-bert", "mpt", "olmo", "jais", "trillion", "exaone4",
                 "granite-docling"})) {
    p.regexes = {kGpt2};
  } else if (is({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez"})) {
    p.regexes = {kQwen2};
  } else if (pre == "qwen35") {
    p.regexes = {kQwen35};
  } else if (is({"poro-chat", "bloom", "gpt3-finnish"})) {
    p.regexes = {kBloom};
  } else if (pre == "viking") {
    p.regexes = {kBloom, "\\p{N}"};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported GGUF pre-tokenizer tokenizer.ggml.pre=\"", pre,
                     "\" (supported: default, gpt-2 family, llama-bpe/llama3 family, qwen2 "
                     "family, qwen35, smollm/starcoder family, falcon, deepseek-coder, "
                     "deepseek-v3, dbrx, smaug-bpe, chatglm-bpe, glm4, bloom family, viking)"));
  }
  return p;
}

}  // namespace laserd::tokenizer::internal
