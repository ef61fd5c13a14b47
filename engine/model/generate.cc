#include "engine/model/generate.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/rope_scaling.h"

namespace laserd::model {

using kernels::Tensor;

const char* StopReasonName(StopReason r) {
  switch (r) {
    case StopReason::kEos:
      return "eos";
    case StopReason::kStopString:
      return "stop_string";
    case StopReason::kLength:
      return "length";
    case StopReason::kContext:
      return "context";
  }
  return "length";
}

namespace {

// The first argmax of every row of logits.
std::vector<int32_t> Argmax(kernels::Backend* be, const Tensor& logits) {
  const std::vector<int32_t> gold(logits.rows(), 0);
  std::vector<int32_t> out;
  out.reserve(logits.rows());
  for (const kernels::Backend::RowScore& s : be->ScoreRows(logits, gold)) out.push_back(s.argmax);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Generation>> Generate(Model& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const GenerateOptions& opts) {
  const ModelConfig& c = model.config();
  if (opts.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be at least 1, got ", opts.max_new_tokens));
  }
  if (c.rotary_dim > 0 && RopeDependsOnLength(c.rope)) {
    return absl::UnimplementedError(
        "generation is not supported for models whose rotary frequencies depend on the sequence "
        "length (dynamic or longrope scaling)");
  }
  const size_t n = prompts.size();
  std::vector<Generation> out(n);
  if (n == 0) return out;
  // The prompt phase: each prompt plus a placeholder token, scored at its last
  // prompt position, laid out as the scorer lays out a batch.
  std::vector<ScoreRequest> reqs(n);
  for (size_t i = 0; i < n; ++i) {
    if (prompts[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " has no tokens"));
    }
    if (static_cast<int64_t>(prompts[i].size()) >= c.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " of ", prompts[i].size(),
                                                     " tokens leaves no room in the model's "
                                                     "context of ",
                                                     c.max_positions));
    }
    reqs[i].tokens = prompts[i];
    reqs[i].tokens.push_back(0);
    reqs[i].answer_start = static_cast<int64_t>(prompts[i].size());
  }
  LASERD_ASSIGN_OR_RETURN(const Model::ScoreLayout p,
                          model.PrepareScore(reqs, opts.share_prefixes));
  kernels::Backend* be = model.backend();
  const int64_t prompt_rows = p.layout.total_rows();
  // Every sequence's cache rows, in position order: its prompt chain first.
  std::vector<std::vector<int64_t>> rows(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t len = static_cast<int64_t>(prompts[i].size());
    rows[i].resize(len);
    if (p.layout.is_tree()) {
      for (int64_t j = len - 1, r = p.rows[i]; j >= 0; --j, r = p.layout.parent[r]) rows[i][j] = r;
    } else {
      for (int64_t j = 0; j < len; ++j) rows[i][j] = p.layout.offsets[i] + j;
    }
  }
  // Capacity: the prompt rows, then one row per fed generated token (the last
  // generated token of a sequence is never fed).
  const int64_t capacity = prompt_rows + static_cast<int64_t>(n) * (opts.max_new_tokens - 1);
  const int64_t kv_cols = c.kv_heads * c.head_dim;
  KvCache kv;
  for (int64_t l = 0; l < c.layers; ++l) {
    kv.k.push_back(be->Empty(capacity, kv_cols));
    kv.v.push_back(be->Empty(capacity, kv_cols));
  }
  // Prompt phase: every layer over the prompt rows, the last one only as far
  // as each prompt's last row needs it.
  std::vector<int32_t> next;
  {
    Tensor h = model.EmbedScore(p);
    kv.write_at = 0;
    model.RunLayers(&h, p.layout, 0, c.layers, &p.distinct_rows, &kv);
    std::vector<int64_t> at(n);
    for (size_t i = 0; i < n; ++i) {
      at[i] = std::lower_bound(p.distinct_rows.begin(), p.distinct_rows.end(), p.rows[i]) -
              p.distinct_rows.begin();
    }
    next = Argmax(be, model.Head(h, at));
  }
  int64_t write_at = prompt_rows;
  std::vector<size_t> active;
  auto accept = [&](size_t i, int32_t id) {
    Generation& g = out[i];
    g.ids.push_back(id);
    const int64_t len = static_cast<int64_t>(prompts[i].size() + g.ids.size());
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end()) {
      g.reason = StopReason::kEos;
    } else if (opts.stop && opts.stop(i, g.ids)) {
      g.reason = StopReason::kStopString;
    } else if (static_cast<int64_t>(g.ids.size()) >= opts.max_new_tokens) {
      g.reason = StopReason::kLength;
    } else if (len >= c.max_positions) {
      g.reason = StopReason::kContext;
    } else {
      active.push_back(i);
    }
  };
  for (size_t i = 0; i < n; ++i) accept(i, next[i]);
  while (!active.empty()) {
    const std::vector<size_t> step = std::move(active);
    active.clear();
    const int64_t m = static_cast<int64_t>(step.size());
    std::vector<int64_t> ids(m), pos(m);
    kv.key_offsets.assign(1, 0);
    kv.keys.clear();
    for (int64_t j = 0; j < m; ++j) {
      const size_t i = step[j];
      ids[j] = out[i].ids.back();
      pos[j] = static_cast<int64_t>(rows[i].size());
      rows[i].push_back(write_at + j);
      kv.keys.insert(kv.keys.end(), rows[i].begin(), rows[i].end());
      kv.key_offsets.push_back(static_cast<int64_t>(kv.keys.size()));
    }
    // The new rows as a layout for the rotary embedding: each at its position.
    kernels::SeqLayout layout;
    layout.parent.assign(m, -1);
    layout.position = pos;
    Tensor h = model.EmbedRows(ids, pos);
    kv.write_at = write_at;
    model.RunLayers(&h, layout, 0, c.layers, nullptr, &kv);
    write_at += m;
    std::vector<int64_t> all(m);
    for (int64_t j = 0; j < m; ++j) all[j] = j;
    next = Argmax(be, model.Head(h, all));
    for (int64_t j = 0; j < m; ++j) accept(step[j], next[j]);
  }
  return out;
}

}  // namespace laserd::model
