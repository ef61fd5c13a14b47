// Transformer language models over the kernels::Backend op interface. One
// generic decoder, parameterised by an architecture description; every weight
// matrix is addressable by its canonical (type, layer) name of DESIGN.md §1.
#ifndef LASERD_ENGINE_MODEL_MODEL_H_
#define LASERD_ENGINE_MODEL_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "kernels/ops.h"

namespace laserd::model {

enum class Arch { kLlama, kGpt2, kGptJ, kGptNeoX };
const char* ArchName(Arch a);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;  // as the source names it: llama, mistral, qwen2, gpt2, gptj, gpt_neox
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  int64_t max_positions = 0;  // context length
  int64_t rotary_dim = 0;     // 0: no rotary (GPT-2)
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tied_embeddings = false;
  bool parallel_residual = false;  // GPT-J, GPT-NeoX
  bool gated_mlp = false;          // Llama family
  kernels::Activation act = kernels::Activation::kSilu;
  kernels::RopeStyle rope_style = kernels::RopeStyle::kNeox;
  std::optional<int32_t> bos_id, eos_id;
};

// Canonical matrix types, in a fixed order.
const std::vector<std::string>& CanonicalMatrixTypes();

// One answer token to score: the model predicts tokens[pos] from tokens[0..pos).
struct TokenScore {
  float logprob;    // log-softmax over the full vocabulary, at the gold token
  int32_t argmax;   // first argmax
  int64_t greater;  // vocabulary entries with a logit strictly greater than gold's
};

// A sequence to score: the tokens and the first answer position (>= 1); every
// position from answer_start to the end is scored.
struct ScoreRequest {
  std::vector<int32_t> tokens;
  int64_t answer_start = 1;
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const formats::WeightSource& src,
                                                     kernels::Backend* backend);
  ~Model();

  const ModelConfig& config() const { return config_; }
  kernels::Backend* backend() const { return backend_; }

  // Matrix types this architecture has (subset of CanonicalMatrixTypes()).
  std::vector<std::string> MatrixTypes() const;
  // The weight W [out, in] of (type, layer); NOT_FOUND / INVALID_ARGUMENT otherwise.
  absl::StatusOr<kernels::Tensor*> Matrix(const std::string& type, int64_t layer);

  // Scores a batch: one vector of TokenScore per request, one entry per answer
  // position. The LM head runs only on the positions that are scored; shared
  // prefixes as PrepareScore says.
  absl::StatusOr<std::vector<std::vector<TokenScore>>> Score(const std::vector<ScoreRequest>& batch,
                                                             bool share_prefixes = true);

  // Full logits for every position of every sequence, [sum(len), vocab]
  // row-major on the host (for tests against reference implementations).
  absl::StatusOr<std::vector<float>> Logits(const std::vector<std::vector<int32_t>>& seqs);

  // Pieces of the forward pass, for callers that reuse a prefix (issue 3).
  absl::StatusOr<kernels::Tensor> Embed(const std::vector<std::vector<int32_t>>& seqs,
                                        kernels::SeqLayout* layout);
  // Runs layers [from, to) on h. With `keep`, the last of them (to − 1) still
  // computes attention over every row, but its output projection and MLP only
  // for the rows `keep`, and h becomes those rows [keep.size(), hidden] in
  // that order (nothing after the last layer reads the others).
  void RunLayers(kernels::Tensor* h, const kernels::SeqLayout& layout, int64_t from, int64_t to,
                 const std::vector<int64_t>* keep = nullptr);
  // Final norm + LM head on the given rows of h: logits [rows.size(), vocab].
  kernels::Tensor Head(const kernels::Tensor& h, const std::vector<int64_t>& rows);

  // Score split into pieces, for callers that run the layers themselves
  // (prefix reuse, issue 3). PrepareScore validates a batch and lays it out:
  // the model input is every sequence minus its last token, as the rows of
  // `layout` with their input `tokens`. With `share_prefixes` (and a backend
  // that supports it), sequences that begin with the same tokens share those
  // rows — a prefix tree (kernels::SeqLayout) — when that saves at least a
  // tenth of the rows; every row's result is what it would be in its own
  // sequence. `rows`/`gold` are the scored rows and their gold tokens (a row
  // may be scored more than once), `counts` the scored positions per request.
  // Score(b) == ScoreFrom(EmbedScore(p), p, 0) with p = PrepareScore(b).
  struct ScoreLayout {
    kernels::SeqLayout layout;
    std::vector<int32_t> tokens;  // input token of each row of `layout`
    std::vector<int64_t> rows;
    std::vector<int32_t> gold;
    std::vector<int64_t> counts;
    std::vector<int64_t> distinct_rows;  // the scored rows, each once, ascending
  };
  absl::StatusOr<ScoreLayout> PrepareScore(const std::vector<ScoreRequest>& batch,
                                           bool share_prefixes = true) const;
  // The residual stream entering layer 0 for the rows of p.layout.
  kernels::Tensor EmbedScore(const ScoreLayout& p);
  // Runs layers [from, L) on h, the residual stream entering layer `from`
  // (consumed), the last layer only as far as the scored rows need it, then
  // the final norm and LM head once per distinct scored row.
  std::vector<std::vector<TokenScore>> ScoreFrom(kernels::Tensor h, const ScoreLayout& p,
                                                 int64_t from);

  // Low-rank overrides (factored apply, issue 3): while one is set, RunLayers
  // uses W(type, layer) ≈ us · vᵀ, computed as (x · v) · usᵀ (Backend::MatMul
  // then Backend::Linear, the bias unchanged), instead of the stored W, which
  // is left untouched. us [out, k], v [in, k] on this model's backend;
  // INVALID_ARGUMENT on a shape mismatch, NOT_FOUND for an unknown matrix.
  absl::Status SetLowRank(const std::string& type, int64_t layer, kernels::Tensor us,
                          kernels::Tensor v);
  // Removes the override of (type, layer), if any.
  void ClearLowRank(const std::string& type, int64_t layer);
  bool HasLowRank(const std::string& type, int64_t layer) const;

  struct Layer;
  // Number of parameters (for FLOP counts).
  int64_t ParameterCount() const;

 private:
  Model() = default;
  // Embeddings (+ learned positions) of the given tokens at the given positions.
  kernels::Tensor EmbedRows(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos);
  ModelConfig config_;
  kernels::Backend* backend_ = nullptr;
  struct Weights;
  std::unique_ptr<Weights> w_;
};

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_MODEL_H_
