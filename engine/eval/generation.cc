#include "engine/eval/generation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/eval/scorer.h"
#include "engine/model/generate.h"
#include "unicode/unistr.h"

namespace laserd::eval {
namespace {

// Invalid UTF-8 (a token cut in the middle of a character) as U+FFFD, the
// way a lossy decode shows it.
std::string ValidUtf8(const std::string& s) {
  std::string out;
  icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())))
      .toUTF8String(out);
  return out;
}

// The decoded continuation, without a final stop id, ended before the first
// stop string.
std::string ContinuationText(const tokenizer::Tokenizer& tok, const model::Generation& g,
                             const MatchOptions& opts) {
  std::vector<int32_t> ids = g.ids;
  if (g.reason == model::StopReason::kEos && !ids.empty()) ids.pop_back();
  std::string text = ValidUtf8(tok.Decode(ids));
  size_t cut = std::string::npos;
  for (const std::string& s : opts.stop_strings) cut = std::min(cut, text.find(s));
  if (cut != std::string::npos) text.resize(cut);
  return text;
}

}  // namespace

absl::Status ValidateMatchOptions(const MatchOptions& opts) {
  if (!IsGenerationRule(opts.rule)) return absl::OkStatus();
  if (opts.max_new_tokens < kMinNewTokens || opts.max_new_tokens > kMaxNewTokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: ", opts.max_new_tokens,
                                                   " is not in [", kMinNewTokens, ", ",
                                                   kMaxNewTokens, "]"));
  }
  if (opts.stop_strings.size() > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop_strings: ", opts.stop_strings.size(), " strings, at most 16"));
  }
  for (size_t i = 0; i < opts.stop_strings.size(); ++i) {
    if (opts.stop_strings[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stop_strings[", i, "]: empty"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyMatchRule(model::Model& model, const tokenizer::Tokenizer& tok,
                            const std::vector<Example>& examples, const MatchOptions& opts,
                            std::vector<ExampleResult>* results) {
  if (opts.rule == MatchRule::kGreedy) return absl::OkStatus();
  LASERD_RETURN_IF_ERROR(ValidateMatchOptions(opts));
  if (examples.size() != results->size()) {
    return absl::InternalError(
        absl::StrCat(examples.size(), " examples for ", results->size(), " results"));
  }
  for (const Example& ex : examples) {
    if (ex.kind != ExampleKind::kCompletion) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", ex.line, ": the match rule ", MatchRuleName(opts.rule),
                       " applies to completion examples only, and this is a choice example"));
    }
  }
  if (opts.rule == MatchRule::kTop1Decoded) {
    for (size_t i = 0; i < examples.size(); ++i) {
      ExampleResult& r = (*results)[i];
      const std::string top = ValidUtf8(tok.Decode({r.greedy_ids.at(0)}));
      r.correct = NormalizeAnswer(top) == NormalizeAnswer(examples[i].answer);
    }
    return absl::OkStatus();
  }
  // Prompts as generate() is given them: the raw prompt, encoded with the
  // tokenizer's default special tokens.
  std::vector<std::vector<int32_t>> prompts(examples.size());
  std::vector<int64_t> lengths(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    auto ids = tok.Encode(examples[i].prompt, /*add_special=*/true);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", examples[i].line, ": cannot tokenize the prompt: ", ids.status().message()));
    }
    if (ids->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", examples[i].line, ": the prompt encodes to no tokens"));
    }
    prompts[i] = *std::move(ids);
    lengths[i] = static_cast<int64_t>(prompts[i].size()) + opts.max_new_tokens;
  }
  model::GenerateOptions g;
  g.max_new_tokens = opts.max_new_tokens;
  g.share_prefixes = opts.share_prefixes;
  if (tok.eos_id()) g.stop_ids.push_back(*tok.eos_id());
  if (!opts.stop_strings.empty()) {
    g.stop = [&](size_t, const std::vector<int32_t>& ids) {
      const std::string text = tok.Decode(ids);
      for (const std::string& s : opts.stop_strings) {
        if (text.find(s) != std::string::npos) return true;
      }
      return false;
    };
  }
  const int64_t budget = opts.batch_tokens > 0 ? opts.batch_tokens : 4096;
  for (const std::vector<int64_t>& batch : PlanBatches(lengths, budget)) {
    std::vector<std::vector<int32_t>> bp;
    for (int64_t i : batch) bp.push_back(std::move(prompts[i]));
    LASERD_ASSIGN_OR_RETURN(std::vector<model::Generation> gen, model::Generate(model, bp, g));
    for (size_t b = 0; b < batch.size(); ++b) {
      const Example& ex = examples[batch[b]];
      ExampleResult& r = (*results)[batch[b]];
      r.generated = true;
      r.generated_ids = gen[b].ids;
      r.stop_reason = model::StopReasonName(gen[b].reason);
      r.generated_text = ContinuationText(tok, gen[b], opts);
      const std::string compared =
          opts.match_prompt ? ValidUtf8(ex.prompt) + r.generated_text : r.generated_text;
      r.correct = TextMatches(opts.rule, NormalizeAnswer(compared), NormalizeAnswer(ex.answer));
      const F1PR f = WordF1(compared, ex.answer);
      r.f1 = f.f1;
      r.precision = f.precision;
      r.recall = f.recall;
    }
  }
  return absl::OkStatus();
}

}  // namespace laserd::eval
