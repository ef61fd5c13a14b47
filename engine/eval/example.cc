#include "engine/eval/example.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::eval {
namespace {

// Decodes the code point that ends at s[end) going backwards; returns its
// start offset, or end - 1 (a single byte) if the bytes there are not UTF-8.
size_t PrevCodePoint(std::string_view s, size_t end, char32_t* cp) {
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
    --start;
  }
  const unsigned char lead = static_cast<unsigned char>(s[start]);
  int len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (len != static_cast<int>(end - start)) {
    *cp = static_cast<unsigned char>(s[end - 1]);
    return end - 1;
  }
  char32_t v = len == 1   ? lead
               : len == 2 ? (lead & 0x1F)
               : len == 3 ? (lead & 0x0F)
                          : (lead & 0x07);
  for (size_t i = start + 1; i < end; ++i) v = (v << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
  *cp = v;
  return start;
}

}  // namespace

// Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::pair<std::string, std::string> MoveTrailingWhitespace(std::string_view prompt,
                                                           std::string_view answer) {
  size_t cut = prompt.size();
  while (cut > 0) {
    char32_t cp;
    const size_t start = PrevCodePoint(prompt, cut, &cp);
    if (!IsPythonSpace(cp)) break;
    cut = start;
  }
  std::string new_answer = std::string(prompt.substr(cut)) + std::string(answer);
  return {std::string(prompt.substr(0, cut)), std::move(new_answer)};
}

absl::StatusOr<TokenizedSequence> TokenizePair(const tokenizer::Tokenizer& tok,
                                               std::string_view prompt, std::string_view answer,
                                               int64_t max_tokens, std::string_view what) {
  auto [ctx, cont] = MoveTrailingWhitespace(prompt, answer);
  auto whole = tok.Encode(ctx + cont, /*add_special=*/true);
  if (!whole.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(what), ": cannot tokenize prompt + answer: ", whole.status().message()));
  }
  auto ctx_ids = tok.Encode(ctx, /*add_special=*/true);
  if (!ctx_ids.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": cannot tokenize prompt: ", ctx_ids.status().message()));
  }
  TokenizedSequence seq;
  seq.answer_start = static_cast<int64_t>(ctx_ids->size());
  seq.tokens = *std::move(whole);
  if (seq.answer_start == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what),
                     ": the prompt encodes to no tokens and the tokenizer adds no BOS, so there is "
                     "nothing to predict the first answer token from"));
  }
  if (static_cast<int64_t>(seq.tokens.size()) <= seq.answer_start) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(what), ": the answer has no tokens past the prompt's ", seq.answer_start,
        " (prompt + answer encodes to ", seq.tokens.size(), " tokens)"));
  }
  if (max_tokens > 0 && static_cast<int64_t>(seq.tokens.size()) > max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": prompt + answer is ", seq.tokens.size(),
                     " tokens, longer than the model's context of ", max_tokens,
                     " tokens (examples are never truncated)"));
  }
  seq.boundary_mismatch = !std::equal(ctx_ids->begin(), ctx_ids->end(), seq.tokens.begin());
  // The model input is ctx + whole[len(ctx):], as lm-eval feeds it
  // (context_enc + continuation_enc); it differs from whole only when a token
  // merges across the prompt/answer boundary.
  std::copy(ctx_ids->begin(), ctx_ids->end(), seq.tokens.begin());
  return seq;
}

absl::StatusOr<TokenizedExample> TokenizeExample(const tokenizer::Tokenizer& tok, const Example& ex,
                                                 int64_t max_tokens) {
  TokenizedExample out;
  out.index = ex.index;
  out.line = ex.line;
  out.kind = ex.kind;
  out.label = ex.label;
  const std::string where = absl::StrCat("line ", ex.line);
  if (ex.kind == ExampleKind::kCompletion) {
    LASERD_ASSIGN_OR_RETURN(auto seq, TokenizePair(tok, ex.prompt, ex.answer, max_tokens, where));
    out.seqs.push_back(std::move(seq));
    return out;
  }
  for (size_t c = 0; c < ex.choices.size(); ++c) {
    LASERD_ASSIGN_OR_RETURN(auto seq, TokenizePair(tok, ex.prompt, ex.choices[c], max_tokens,
                                                   absl::StrCat(where, ", choice ", c)));
    out.seqs.push_back(std::move(seq));
  }
  return out;
}

absl::StatusOr<std::vector<TokenizedExample>> TokenizeDataset(const tokenizer::Tokenizer& tok,
                                                              const Dataset& ds,
                                                              int64_t max_tokens) {
  std::vector<TokenizedExample> out;
  out.reserve(ds.examples.size());
  std::vector<std::string> errors;
  for (const Example& ex : ds.examples) {
    auto t = TokenizeExample(tok, ex, max_tokens);
    if (!t.ok()) {
      errors.emplace_back(t.status().message());
      continue;
    }
    out.push_back(*std::move(t));
  }
  if (!errors.empty()) {
    std::string msg = absl::StrCat("dataset ", ds.source, ": ", errors.size(), " example",
                                   errors.size() == 1 ? "" : "s", " cannot be scored");
    const size_t shown = std::min<size_t>(errors.size(), kMaxReportedErrors);
    for (size_t i = 0; i < shown; ++i) absl::StrAppend(&msg, i == 0 ? ": " : "; ", errors[i]);
    if (shown < errors.size()) absl::StrAppend(&msg, "; and ", errors.size() - shown, " more");
    return absl::InvalidArgumentError(msg);
  }
  return out;
}

}  // namespace laserd::eval
