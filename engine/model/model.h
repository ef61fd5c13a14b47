// Transformer language models over the kernels::Backend op interface: one
// generic decoder, parameterised by an architecture description
// (architecture.h); every weight matrix is addressable by its canonical
// (type, layer) name, the same for every architecture.
#ifndef LASERD_ENGINE_MODEL_MODEL_H_
#define LASERD_ENGINE_MODEL_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "engine/model/architecture.h"
#include "engine/model/config.h"
#include "engine/model/score_layout.h"
#include "kernels/ops.h"

namespace laserd::model {

struct ModelWeights;
struct LayerWeights;

// Keys and values a cached forward keeps per layer (greedy decoding,
// engine/model/generate.h). RunLayers with a KvCache stores the keys and
// values of its rows (after the rotary embedding) in rows [write_at,
// write_at + n) of k[layer] and v[layer]; with key lists (key_offsets
// non-empty: q.rows() + 1 offsets into `keys`) row i then attends to the
// cache rows its list names (Backend::AttentionRows) instead of to the
// layout's rows.
struct KvCache {
  std::vector<kernels::Tensor> k, v;  // per layer [capacity, kv_heads * head_dim]
  int64_t write_at = 0;
  std::vector<int64_t> key_offsets, keys;
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
  // The storage type of W(type, layer) in the file it was loaded from
  // (formats::DTypeName: "F16", "BF16", "F32", "Q4_1", …, as FindMatrixSource
  // reports it); empty when unknown.
  std::string SourceDType(const std::string& type, int64_t layer) const;

  // Scores a batch: one vector of TokenScore per request, one entry per answer
  // position. The LM head runs only on the positions that are scored; shared
  // prefixes as PrepareScore says.
  absl::StatusOr<std::vector<std::vector<TokenScore>>> Score(const std::vector<ScoreRequest>& batch,
                                                             bool share_prefixes = true);

  // Full logits for every position of every sequence, [sum(len), vocab]
  // row-major on the host (for tests against reference implementations).
  absl::StatusOr<std::vector<float>> Logits(const std::vector<std::vector<int32_t>>& seqs);

  // Pieces of the forward pass, for callers that reuse the residual stream
  // entering a layer across many runs (a sweep's unedited prefix of layers).
  absl::StatusOr<kernels::Tensor> Embed(const std::vector<std::vector<int32_t>>& seqs,
                                        kernels::SeqLayout* layout);
  // Runs layers [from, to) on h. With `keep`, the last of them (to − 1) still
  // computes attention over every row, but its output projection and MLP only
  // for the rows `keep`, and h becomes those rows [keep.size(), hidden] in
  // that order (nothing after the last layer reads the others).
  // With `kv`, keys and values go to (and attention reads from) the cache as
  // KvCache says.
  void RunLayers(kernels::Tensor* h, const kernels::SeqLayout& layout, int64_t from, int64_t to,
                 const std::vector<int64_t>* keep = nullptr, KvCache* kv = nullptr);
  // Embeddings (+ learned positions) of the given tokens at the given positions.
  kernels::Tensor EmbedRows(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos);
  // Final norm + LM head on the given rows of h: logits [rows.size(), vocab].
  kernels::Tensor Head(const kernels::Tensor& h, const std::vector<int64_t>& rows);

  // Score split into pieces, for callers that run the layers themselves
  // (reusing the residual stream of unedited layers). PrepareScore validates
  // a batch and lays it out (LayOutScoreBatch): with `share_prefixes` (and a
  // backend that supports it, and rotary frequencies that do not depend on
  // the sequence length), sequences that begin with the same tokens
  // share those rows — a prefix tree — when that saves at least a tenth of the
  // rows; every row's result is what it would be in its own sequence.
  // Score(b) == ScoreFrom(EmbedScore(p), p, 0) with p = PrepareScore(b).
  using ScoreLayout = model::ScoreLayout;
  absl::StatusOr<ScoreLayout> PrepareScore(const std::vector<ScoreRequest>& batch,
                                           bool share_prefixes = true) const;
  // The residual stream entering layer 0 for the rows of p.layout.
  kernels::Tensor EmbedScore(const ScoreLayout& p);
  // Runs layers [from, L) on h, the residual stream entering layer `from`
  // (consumed), the last layer only as far as the scored rows need it, then
  // the final norm and LM head once per distinct scored row.
  std::vector<std::vector<TokenScore>> ScoreFrom(kernels::Tensor h, const ScoreLayout& p,
                                                 int64_t from);

  // Low-rank overrides (an edit applied as its factors): while one is set, RunLayers
  // uses W(type, layer) ≈ us · vᵀ, computed as (x · v) · usᵀ (Backend::MatMul
  // then Backend::Linear, the bias unchanged), instead of the stored W, which
  // is left untouched. us [out, k], v [in, k] on this model's backend;
  // INVALID_ARGUMENT on a shape mismatch, NOT_FOUND for an unknown matrix.
  absl::Status SetLowRank(const std::string& type, int64_t layer, kernels::Tensor us,
                          kernels::Tensor v);
  // Removes the override of (type, layer), if any.
  void ClearLowRank(const std::string& type, int64_t layer);
  bool HasLowRank(const std::string& type, int64_t layer) const;

  // Number of parameters (for FLOP counts).
  int64_t ParameterCount() const;

 private:
  Model() = default;
  // The rotary embedding of q and k (each sequence's frequencies, see rope_scaling.h).
  // `sliding`: a sliding-window layer (its own unscaled base where the model
  // has one, ModelConfig::rope_local_theta).
  void ApplyRope(kernels::Tensor* q, kernels::Tensor* k, const kernels::SeqLayout& layout,
                 bool sliding);
  // y = the architecture's norm of x with weight w and bias b (empty: none).
  void Norm(const kernels::Tensor& x, const kernels::Tensor& w, const kernels::Tensor& b,
            kernels::Tensor* y);
  // y (+)= x · W(type)ᵀ + b of a layer, honouring low-rank overrides.
  using LinearFn = std::function<void(const LayerWeights&, const std::string&,
                                      const kernels::Tensor&, kernels::Tensor*, bool)>;
  // res += the mixture-of-experts MLP of `ly` on x (ModelConfig::experts):
  // routing and the weighted sum of the expert outputs run on the host, each
  // expert's gated MLP on the backend over the rows routed to it.
  void MixtureOfExperts(const LayerWeights& ly, const kernels::Tensor& x, kernels::Tensor* res,
                        const LinearFn& linear);
  ModelConfig config_;
  kernels::Backend* backend_ = nullptr;
  std::unique_ptr<ModelWeights> w_;
  std::map<std::pair<std::string, int64_t>, std::string> source_dtypes_;
};

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_MODEL_H_
