// Greedy decoding with a KV cache, batched: every prompt of a batch runs
// through the layers once (shared prompt prefixes as Model::PrepareScore lays
// them out: a prefix tree where the backend and the model's rotary embedding
// allow it), its keys and values stay in a per-layer cache, and each step
// feeds only the newest token of every unfinished sequence, which attends to
// its own cached rows (Backend::AttentionRows). The next token is the first
// argmax of the logits (torch.argmax's rule), so the ids equal transformers'
// greedy generate() up to floating-point summation order.
#ifndef LASERD_ENGINE_MODEL_GENERATE_H_
#define LASERD_ENGINE_MODEL_GENERATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"

namespace laserd::model {

enum class StopReason {
  kEos,         // a stop id was generated (it is the last id)
  kStopString,  // the stop callback said so after the last id
  kLength,      // max_new_tokens ids were generated
  kContext,     // prompt + ids reached the model's context
};
const char* StopReasonName(StopReason r);

struct GenerateOptions {
  // At most this many new tokens per prompt (>= 1).
  int64_t max_new_tokens = 16;
  // Generation of a prompt stops after it produces one of these ids (EOS); the
  // id is kept as the last generated one, as generate() returns it.
  std::vector<int32_t> stop_ids;
  // Asked after every new id of prompt `i` with all its generated ids so far;
  // true stops that prompt (stop strings). Empty: never.
  std::function<bool(size_t i, const std::vector<int32_t>& ids)> stop;
  // Lay the prompts out as a prefix tree where possible.
  bool share_prefixes = true;
};

struct Generation {
  std::vector<int32_t> ids;  // the generated ids only (no prompt)
  StopReason reason = StopReason::kLength;
};

// Generates for every prompt of the batch (each non-empty, each id in the
// vocabulary, each shorter than the context: INVALID_ARGUMENT naming the
// prompt). Models whose rotary frequencies depend on the sequence length
// (dynamic, longrope scaling) are UNIMPLEMENTED: a cached key would need
// re-rotating as the sequence grows.
absl::StatusOr<std::vector<Generation>> Generate(Model& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const GenerateOptions& opts);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_GENERATE_H_
