#include "engine/eval/scorer.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::eval {

std::vector<std::vector<int64_t>> PlanBatches(const std::vector<int64_t>& lengths, int64_t budget) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<int64_t>> batches;
  int64_t used = 0;
  for (int64_t i : order) {
    if (batches.empty() || (used + lengths[i] > budget && !batches.back().empty())) {
      batches.emplace_back();
      used = 0;
    }
    batches.back().push_back(i);
    used += lengths[i];
  }
  return batches;
}

absl::StatusOr<std::vector<ExampleResult>> ScoreExamples(
    model::Model& model, const std::vector<TokenizedExample>& examples, const ScoreOptions& opts) {
  if (opts.batch_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_tokens must be positive, got ", opts.batch_tokens));
  }
  // Flatten: sequence s belongs to examples[owner[s]].seqs[which[s]].
  struct Ref {
    size_t example, seq;
  };
  std::vector<Ref> refs;
  std::vector<int64_t> lengths;
  const int64_t vocab = model.config().vocab_size;
  for (size_t e = 0; e < examples.size(); ++e) {
    for (size_t s = 0; s < examples[e].seqs.size(); ++s) {
      const TokenizedSequence& seq = examples[e].seqs[s];
      for (int32_t id : seq.tokens) {
        if (id < 0 || (vocab > 0 && id >= vocab)) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", examples[e].line, ": token id ", id,
                           " is outside the model's vocabulary of ", vocab,
                           " (tokenizer and model do not match)"));
        }
      }
      refs.push_back({e, s});
      lengths.push_back(static_cast<int64_t>(seq.tokens.size()));
    }
  }
  std::vector<std::vector<model::TokenScore>> scores(refs.size());
  const int64_t total = static_cast<int64_t>(refs.size());
  int64_t done = 0;
  for (const std::vector<int64_t>& batch : PlanBatches(lengths, opts.batch_tokens)) {
    std::vector<model::ScoreRequest> reqs;
    reqs.reserve(batch.size());
    for (int64_t s : batch) {
      const TokenizedSequence& seq = examples[refs[s].example].seqs[refs[s].seq];
      reqs.push_back({seq.tokens, seq.answer_start});
    }
    LASERD_ASSIGN_OR_RETURN(auto out, model.Score(reqs, opts.share_prefixes));
    if (out.size() != batch.size()) {
      return absl::InternalError(absl::StrCat("Model::Score returned ", out.size(), " results for ",
                                              batch.size(), " sequences"));
    }
    for (size_t b = 0; b < batch.size(); ++b) scores[batch[b]] = std::move(out[b]);
    done += static_cast<int64_t>(batch.size());
    if (opts.progress) opts.progress(done, total);
  }
  std::vector<ExampleResult> results;
  results.reserve(examples.size());
  size_t s = 0;
  for (const TokenizedExample& ex : examples) {
    std::vector<const std::vector<model::TokenScore>*> mine;
    for (size_t k = 0; k < ex.seqs.size(); ++k) mine.push_back(&scores[s++]);
    LASERD_ASSIGN_OR_RETURN(auto r, ScoreExample(ex, mine, opts.topk));
    results.push_back(std::move(r));
  }
  return results;
}

absl::Status WritePerExampleJsonl(const std::vector<ExampleResult>& results,
                                  const std::vector<int>& topk, const Split& split,
                                  std::ostream& out) {
  std::vector<const char*> label(results.size(), "test");
  for (int64_t i : split.validation) {
    if (i >= 0 && i < static_cast<int64_t>(results.size())) label[i] = "validation";
  }
  for (size_t i = 0; i < results.size(); ++i) {
    out << ExampleJson(results[i], topk, label[i]).dump() << '\n';
  }
  out.flush();
  if (!out) return absl::DataLossError("error writing per-example results");
  return absl::OkStatus();
}

}  // namespace laserd::eval
