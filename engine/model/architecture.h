// One description per architecture family: the names of its tensors in
// safetensors (Hugging Face) and GGUF (llama.cpp) files, how matrices are
// stored (nn.Linear or Conv1D, fused q/k/v), its norm, positions, block order
// and MLP, and the readers of its config. The loader (Model::Load), the
// exporter (engine/laser/export.h) and the server all read these; adding an
// architecture means one entry in architectures.cc plus any new ops.
//
// Every weight matrix is named by a canonical (type, layer): the types are
// CanonicalMatrixTypes() (attn.q, attn.k, attn.v, attn.o, mlp.in, mlp.up,
// mlp.out), the same for every architecture; mlp.in is the gate of a gated
// MLP and the only input projection of a plain one.
//
// Mixture-of-experts layers (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE) replace the MLP by a router and
// experts: "moe.router" [experts, hidden] is one matrix per layer; each
// expert e has its own gated MLP "moe.in[e]", "moe.up[e]", "moe.out[e]"
// (ExpertMatrixType). "moe.in" without an index names that matrix of every
// expert (a sweep expands it into one intervention per expert).
#ifndef LASERD_ENGINE_MODEL_ARCHITECTURE_H_
#define LASERD_ENGINE_MODEL_ARCHITECTURE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "kernels/ops.h"
#include "nlohmann/json.hpp"

namespace laserd::model {

struct ModelConfig;
class ConfigReader;

// Canonical matrix types, in a fixed order.
const std::vector<std::string>& CanonicalMatrixTypes();

// ------------------------------------------------------ mixture of experts ---
// The per-expert matrix types (moe.in, moe.up, moe.out) and the router type.
const std::vector<std::string>& ExpertMatrixBaseTypes();
inline constexpr const char kRouterMatrixType[] = "moe.router";
// The shared expert's gate [1, hidden] (Qwen2-MoE): loaded and used by the
// forward pass but not a sweepable matrix (rank 1). The shared expert itself
// is the layer's dense MLP, mlp.in / mlp.up / mlp.out.
inline constexpr const char kSharedExpertGateType[] = "moe.shared_gate";
// "moe.in" and 3 -> "moe.in[3]".
std::string ExpertMatrixType(const std::string& base, int64_t expert);
// "moe.in[3]" -> {"moe.in", 3}; nullopt when `type` has no well-formed
// expert index or its base is not an expert matrix type.
std::optional<std::pair<std::string, int64_t>> ParseExpertMatrixType(const std::string& type);

enum class NormKind {
  kRms,    // x / rms(x) · w
  kLayer,  // (x − mean) / std · w + b (b where the checkpoint has one)
};

enum class PositionKind {
  kRotary,   // rotary embeddings on q and k (style and rotary_dim from the config)
  kLearned,  // a learned position table added to the token embeddings
};

// How a stored tensor holds a matrix W [out, in].
enum class MatrixLayout {
  kLinear,  // [out, in] (torch nn.Linear, GGUF)
  kConv1D,  // [in, out] (GPT-2's Conv1D)
};

// How a tensor holding several matrices (q/k/v) splits along its output rows.
enum class FusedSplit {
  kStacked,  // one block per matrix, in the order of `types` (GPT-2 c_attn)
  kPerHead,  // [heads, matrices, head_dim]: each head's rows of every matrix in
             // turn (GPT-NeoX query_key_value); the matrices have equal head counts
};

// A stored weight tensor holding one canonical matrix or several fused ones.
// Names are templates without ".weight" / ".bias"; "{L}" is the layer.
struct MatrixTensor {
  std::vector<std::string> types;  // canonical types, in storage order
  std::string name;
  MatrixLayout layout = MatrixLayout::kLinear;
  FusedSplit split = FusedSplit::kStacked;  // when types has more than one
  bool bias_required = false;               // else loaded when present
};

// A norm's tensor (template without ".weight"); its ".bias" is read only when `bias`.
struct NormTensor {
  std::string name;
  bool bias = false;
};

// The tensor names of one file format. Every name but the head's follows a
// body prefix: the first of `prefixes` under which `embed` exists (the last
// when none does), e.g. GPT-2 files with and without "transformer.".
struct TensorNaming {
  std::vector<std::string> prefixes = {""};
  std::string embed;       // [vocab, hidden]
  std::string pos_embed;   // [positions, hidden]; PositionKind::kLearned only
  NormTensor final_norm;   // before the LM head
  std::string head;        // [vocab, hidden]; absolute name; absent: tied to embed
  bool head_bias = false;  // ".bias" of the head read when present
  NormTensor attn_norm;    // per layer
  NormTensor mlp_norm;     // per layer; empty name: the MLP reads attn_norm's output
  // Per layer, [head_dim]: RMSNorm of each head of q and of k before the
  // rotary embedding (Qwen3, Gemma 3; over the whole projection where
  // Architecture::qk_norm_whole, OLMoE); empty name: none. Their style (plain
  // w or Gemma's 1 + w) is norm_weight_offset's, as for every norm.
  NormTensor q_norm, k_norm;
  // Rotary tensors llama.cpp writes into GGUF (one each, not per layer; empty:
  // none): rope_freqs divides each inverse frequency (Llama 3's llama3
  // scaling), rope_factors_long / _short are longrope's factors (Phi-3).
  std::string rope_freqs, rope_factors_long, rope_factors_short;
  std::vector<MatrixTensor> matrices;
  // Gemma-style norms (empty names: none), per layer: on the attention output
  // and on the MLP output before each is added to the residual ("sandwich"
  // norms).
  NormTensor post_attn_norm, post_mlp_norm;
  // Added to every norm weight at load: 1 where the file stores the w of a
  // (1 + w) RMSNorm (Hugging Face Gemma); 0 where it is stored with the 1
  // already added (llama.cpp's Gemma GGUF) or the norm is plain.
  float norm_weight_offset = 0.0f;
  // Mixture of experts: one tensor per expert matrix, names with "{L}" and
  // "{E}" (the expert), types {moe.in}, {moe.up} or {moe.out}, nn.Linear
  // layout; or, for a name without "{E}" (llama.cpp's ffn_*_exps), one
  // tensor per layer holding every expert's matrix stacked, [experts, out,
  // in]. The router is an ordinary entry of `matrices` (moe.router).
  std::vector<MatrixTensor> expert_matrices;
};

// One name under which checkpoints declare the architecture.
struct ModelType {
  std::string hf;        // config.json model_type
  std::string gguf;      // GGUF general.architecture; empty: no GGUF support
  std::string hf_class;  // config.json "architectures" written on export
  // llama.cpp's converter permuted the rows of attn.q / attn.k (and their
  // biases) of this GGUF architecture for its rotary layout.
  bool gguf_rotary_permuted = false;
  // The GGUF name means this family only when the file's
  // {gguf}.expert_count is above 0 (llama.cpp writes Mixtral as "llama" with
  // experts); such an entry wins over a family that has the name without it.
  bool gguf_experts = false;
};

struct Architecture {
  std::string name;  // family: llama, gpt2, gptj, gpt_neox, qwen3, phi, phi3
  std::vector<ModelType> model_types;
  TensorNaming safetensors;
  TensorNaming gguf;  // no matrices: GGUF files of this family are not supported
  NormKind norm = NormKind::kRms;
  PositionKind position = PositionKind::kRotary;
  kernels::RopeStyle rope_style = kernels::RopeStyle::kNeox;
  // Parallel blocks: attention and MLP both read the block input (x +=
  // attn(n1(x)) + mlp(n2(x))); sequential: the MLP reads the updated residual.
  // The default; a config may choose (ModelConfig::parallel_residual).
  bool parallel_residual = false;
  bool gated_mlp = false;  // mlp.out(act(mlp.in x) · mlp.up x); else mlp.out(act(mlp.in x))
  // A config that ties the embeddings makes the LM head the embedding even
  // when a head tensor is stored (GPT-2); otherwise a stored head is used.
  bool config_ties_head = false;
  // Embeddings scaled by sqrt(hidden) (Gemma; the fp32 value, as transformers
  // computes in fp32).
  bool embed_scaled = false;
  // Mixture of experts (ModelConfig::experts > 0): the MLP of every layer is
  // the router and experts of TensorNaming::expert_matrices.
  bool moe = false;
  // The q/k norms (TensorNaming::q_norm, k_norm) normalise the whole q and k
  // projections ([heads * head_dim] and [kv_heads * head_dim] weights, OLMoE)
  // rather than each head ([head_dim], Qwen3, Gemma 3).
  bool qk_norm_whole = false;
  // Config readers: dimensions and the per-checkpoint settings (activation,
  // rotary dims, eps, parallel residual, tied embeddings) into `c`, whose
  // arch and model_type are set. read_gguf null: GGUF not supported.
  absl::Status (*read_hf)(const ConfigReader& cfg, ModelConfig* c) = nullptr;
  absl::Status (*read_gguf)(const ConfigReader& cfg, ModelConfig* c) = nullptr;
  // config.json for an export of a GGUF source (null: not exportable).
  absl::StatusOr<nlohmann::json> (*hf_config_from_gguf)(const formats::WeightSource& src,
                                                        const ModelConfig& c) = nullptr;

  const TensorNaming& naming(formats::FileFormat f) const {
    return f == formats::FileFormat::kGguf ? gguf : safetensors;
  }
  // The canonical types this architecture has, in CanonicalMatrixTypes() order.
  std::vector<std::string> MatrixTypes() const;
  // The entry of `model_types` with hf (safetensors) or gguf name `type`; null if none.
  const ModelType* FindModelType(formats::FileFormat f, const std::string& type) const;
};

// Every supported architecture, in a fixed order.
const std::vector<const Architecture*>& Architectures();
// The family called `name` (llama, gpt2, gptj, gpt_neox); null if none.
const Architecture* FindArchitecture(const std::string& name);
// The family a checkpoint declares: config.json model_type (safetensors) or
// general.architecture (GGUF). INVALID_ARGUMENT when the metadata lacks it,
// UNIMPLEMENTED naming the supported types when no family has it.
absl::StatusOr<const Architecture*> ArchitectureOf(const formats::WeightSource& src);
// The family's name ("?" for null).
const char* ArchName(const Architecture* a);

// What a stored tensor is, in architecture terms.
enum class TensorKind {
  kEmbed,
  kPosEmbed,
  kFinalNorm,
  kHead,
  kAttnNorm,
  kMlpNorm,
  kMatrix,
  kQNorm,  // per-head q / k norms (TensorNaming::q_norm, k_norm)
  kKNorm,
  kRopeFreqs,  // GGUF rotary factor tensors (TensorNaming::rope_freqs, ...)
  kRopeFactorsLong,
  kRopeFactorsShort,
  kPostAttnNorm,  // TensorNaming::post_attn_norm
  kPostMlpNorm,   // TensorNaming::post_mlp_norm
};
struct TensorRole {
  TensorKind kind = TensorKind::kEmbed;
  int64_t layer = -1;              // per-layer kinds
  std::vector<std::string> types;  // kMatrix: the canonical matrices it holds
  bool bias = false;               // the ".bias" tensor rather than ".weight"
};

// `tmpl` with "{L}" replaced by `layer`.
std::string ExpandLayer(const std::string& tmpl, int64_t layer);
// The body prefix of `src`'s tensor names (see TensorNaming).
std::string BodyPrefix(const Architecture& a, const formats::WeightSource& src);
// The name of the tensor playing `role` in format `f` under `prefix`; for
// kMatrix, the tensor holding role.types[0]. Empty when the format names none.
std::string TensorName(const Architecture& a, formats::FileFormat f, const std::string& prefix,
                       const TensorRole& role);
// The role of the tensor `name` in format `f` under `prefix`; nullopt for a
// name the architecture does not know.
std::optional<TensorRole> RoleOfTensor(const Architecture& a, formats::FileFormat f,
                                       const std::string& prefix, const std::string& name);
// The same for a tensor of `src` (its format and body prefix).
std::optional<TensorRole> RoleOfTensor(const Architecture& a, const formats::WeightSource& src,
                                       const std::string& name);
// The stored tensor holding W(type, layer) in format `f`; null if none.
const MatrixTensor* FindMatrixTensor(const Architecture& a, formats::FileFormat f,
                                     const std::string& type);

// Whether `t` (an expert_matrices entry) stacks every expert in one tensor.
bool StacksExperts(const MatrixTensor& t);

// Where W(type, layer) is stored in `src`: the tensor's name and, for a fused
// tensor, which of its rows the matrix is (e.g. "rows 64:128 (of the
// transposed [192, 64] weight)"; for an expert in a stacked tensor, "expert 3
// of the stacked [4, 48, 64] tensor"); empty fused_block otherwise. NOT_FOUND when
// the architecture has no such matrix. dtype: the tensor's storage type
// (formats::DTypeName; empty when the file does not hold it under that name).
struct MatrixSource {
  std::string tensor;
  std::string fused_block;
  std::string dtype;
};
absl::StatusOr<MatrixSource> FindMatrixSource(const formats::WeightSource& src,
                                              const ModelConfig& c, const std::string& type,
                                              int64_t layer);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_ARCHITECTURE_H_
