#include "engine/model/score_layout.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace laserd::model {

absl::StatusOr<ScoreLayout> LayOutScoreBatch(const std::vector<ScoreRequest>& batch,
                                             int64_t vocab_size, int64_t max_positions,
                                             bool prefix_tree) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const ScoreRequest& r = batch[i];
    if (r.answer_start < 1 || r.answer_start >= static_cast<int64_t>(r.tokens.size())) {
      return absl::InvalidArgumentError(absl::StrCat("score request ", i, ": answer_start ",
                                                     r.answer_start, " must be in [1, ",
                                                     r.tokens.size(), ")"));
    }
    for (int32_t t : r.tokens) {
      if (t < 0 || t >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("score request ", i, ": token id ", t, " is outside the vocabulary"));
      }
    }
    // The last token is never an input to a scored prediction, so it is not fed.
    if (static_cast<int64_t>(r.tokens.size()) - 1 > max_positions) {
      return absl::InvalidArgumentError(
          absl::StrCat("score request ", i, ": sequence of ", r.tokens.size() - 1,
                       " input tokens exceeds the model's context of ", max_positions));
    }
  }
  ScoreLayout p;
  // row_of[i][t]: the row holding input token t of request i.
  std::vector<std::vector<int64_t>> row_of(batch.size());
  int64_t packed_rows = 0;
  for (const ScoreRequest& r : batch) packed_rows += static_cast<int64_t>(r.tokens.size()) - 1;
  bool tree = false;
  if (prefix_tree) {
    // A trie over the inputs: a row per distinct (parent row, token).
    std::vector<int64_t> parent;
    std::map<std::pair<int64_t, int32_t>, int64_t> child;
    for (size_t i = 0; i < batch.size(); ++i) {
      int64_t at = -1;
      for (size_t t = 0; t + 1 < batch[i].tokens.size(); ++t) {
        auto [it, added] =
            child.try_emplace({at, batch[i].tokens[t]}, static_cast<int64_t>(parent.size()));
        if (added) {
          parent.push_back(at);
          p.tokens.push_back(batch[i].tokens[t]);
        }
        at = it->second;
        row_of[i].push_back(at);
      }
    }
    // Worth it only when it saves at least a tenth of the rows.
    tree = 10 * static_cast<int64_t>(parent.size()) <= 9 * packed_rows;
    if (tree) {
      p.layout = kernels::SeqLayout::FromParents(std::move(parent));
    } else {
      p.tokens.clear();
      for (auto& r : row_of) r.clear();
    }
  }
  if (!tree) {
    std::vector<int64_t> lengths;
    for (size_t i = 0; i < batch.size(); ++i) {
      lengths.push_back(static_cast<int64_t>(batch[i].tokens.size()) - 1);
      for (size_t t = 0; t + 1 < batch[i].tokens.size(); ++t) {
        row_of[i].push_back(static_cast<int64_t>(p.tokens.size()));
        p.tokens.push_back(batch[i].tokens[t]);
      }
    }
    p.layout = kernels::SeqLayout::FromLengths(lengths);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const ScoreRequest& r = batch[i];
    for (int64_t q = r.answer_start; q < static_cast<int64_t>(r.tokens.size()); ++q) {
      p.rows.push_back(row_of[i][q - 1]);
      p.gold.push_back(r.tokens[q]);
    }
    p.counts.push_back(static_cast<int64_t>(r.tokens.size()) - r.answer_start);
  }
  p.distinct_rows = p.rows;
  std::sort(p.distinct_rows.begin(), p.distinct_rows.end());
  p.distinct_rows.erase(std::unique(p.distinct_rows.begin(), p.distinct_rows.end()),
                        p.distinct_rows.end());
  return p;
}

std::vector<int64_t> RowPositions(const ScoreLayout& p) {
  if (p.layout.is_tree()) return p.layout.position;
  std::vector<int64_t> pos;
  for (int64_t len : p.layout.lengths)
    for (int64_t i = 0; i < len; ++i) pos.push_back(i);
  return pos;
}

std::vector<std::vector<TokenScore>> ScoresPerRequest(
    const ScoreLayout& p, const std::vector<kernels::Backend::RowScore>& scores) {
  std::vector<std::vector<TokenScore>> out(p.counts.size());
  size_t j = 0;
  for (size_t i = 0; i < p.counts.size(); ++i) {
    for (int64_t q = 0; q < p.counts[i]; ++q, ++j) {
      out[i].push_back({scores[j].logprob, scores[j].argmax, scores[j].greater});
    }
  }
  return out;
}

}  // namespace laserd::model
