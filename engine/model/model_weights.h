// The weights of a loaded model on its backend, and their loading from a
// weight file by the architecture's tensor names (architecture.h). Internal to
// engine/model: the rest of laserd reaches weights through Model.
#ifndef LASERD_ENGINE_MODEL_MODEL_WEIGHTS_H_
#define LASERD_ENGINE_MODEL_MODEL_WEIGHTS_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "engine/model/config.h"
#include "kernels/ops.h"

namespace laserd::model {

struct LayerWeights {
  // Canonical matrices W [out, in] and their biases (absent when the file has none).
  std::map<std::string, kernels::Tensor> w, b;
  // Low-rank overrides {us [out, k], v [in, k]} (Model::SetLowRank).
  std::map<std::string, std::pair<kernels::Tensor, kernels::Tensor>> lowrank;
  // Input norms of attention (ln1) and MLP (ln2; empty when the MLP reads ln1's output).
  kernels::Tensor ln1_w, ln1_b, ln2_w, ln2_b;
  // Per-head q / k norm weights [1, head_dim] (Qwen3, Gemma 3) and Gemma's
  // norms of the attention and MLP outputs (empty when the architecture has none).
  kernels::Tensor q_norm_w, k_norm_w, post_attn_w, post_mlp_w;
};

struct ModelWeights {
  kernels::Tensor embed;      // [vocab, d]
  kernels::Tensor pos_embed;  // [positions, d] (learned positions)
  std::vector<LayerWeights> layers;
  kernels::Tensor norm_w, norm_b;
  kernels::Tensor lm_head;  // [vocab, d]; shares embed when tied
  kernels::Tensor lm_head_b;
  // Rotary inverse frequencies and cos/sin factor (empty: no rotary); for
  // length-dependent scaling, those of a sequence within the original context.
  std::vector<float> inv_freq;
  float rope_attention_factor = 1.0f;
  // Those of the sliding-window layers where their rotary base differs
  // (ModelConfig::rope_local_theta, unscaled); empty otherwise.
  std::vector<float> inv_freq_local;
};

// Loads every weight of the model `c` describes (c->arch) from `src` onto
// `backend`: matrices in Hugging Face [out, in] row order whatever the file's
// layout (Conv1D transposed, fused q/k/v split, GGUF rotary rows unpermuted),
// every shape checked. Sets c->tied_embeddings to whether the LM head is the
// embedding.
absl::StatusOr<std::unique_ptr<ModelWeights>> LoadModelWeights(const formats::WeightSource& src,
                                                               kernels::Backend* backend,
                                                               ModelConfig* c);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_MODEL_WEIGHTS_H_
