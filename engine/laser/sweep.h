// LASER sweeps on a resident model. A SweepRunner loads nothing itself: it is given a loaded model,
// its tokenizer and a parsed dataset, splits and tokenizes the dataset once,
// scores the unedited baseline, then evaluates every planned intervention
// (T, ℓ, ρ), each applied to the model and removed again.
//
// The plan. Matrices are ordered by layer (ascending), then by matrix type in
// canonical order; each matrix's interventions follow in the order of the
// requested ranks, then (add_suggested_rank) one more at the matrix's
// Marchenko–Pastur suggested rank, then (SweepConfig::kinds) a prune at each
// requested rank and one zero. plan_index numbers the interventions
// densely in that order, the same for every shard; a suggested intervention
// has its slot in the plan although its k is known only once its matrix is
// decomposed. Shard i of N owns the matrices whose position in
// the matrix order is ≡ i (mod N), so each matrix is decomposed by exactly one
// shard and deep and shallow layers are spread evenly.
//
// Speed levers, each exact (the same model is scored; only floating-point
// summation order differs):
//   one decomposition per matrix  one truncated SVD of (T, ℓ) to the largest k
//                                 any requested rank needs; each rank takes the
//                                 prefix U_k Σ_k V_kᵀ. Not for svd.method
//                                 paper, which (as the paper's code) runs one
//                                 randomized SVD to exactly k per rank, each
//                                 with its own seed (engine/laser/paper_svd.h).
//   batched decompositions        same-shaped matrices of one runner (e.g.
//                                 every layer's mlp.in) are decomposed in one
//                                 kernels::DecomposeOnBackend call within
//                                 `svd_batch_bytes` (strided-batched GEMMs on
//                                 a GPU; engine/laser/svd_batch.h); the same
//                                 bits as one at a time.
//   prefix reuse                  the residual stream entering layer ℓ of every
//                                 batch is cached (as long as the cache fits
//                                 `cache_budget_bytes`; batches past it are
//                                 recomputed from the embeddings), so an
//                                 intervention at ℓ runs layers ℓ..L−1 only.
//                                 Interventions run in layer order, so the cache
//                                 advances by the unedited layers between them.
//   factored apply                when k(m+n) < mn the edited matrix is applied
//                                 as (x·V_k)·(U_kΣ_k)ᵀ (Model::SetLowRank);
//                                 otherwise W_k is written densely (Editor).
//   answer-only head              Model::ScoreFrom runs the last layer's output
//                                 projection and MLP, the final norm and the LM
//                                 head only on the scored (answer) rows, each
//                                 distinct row once.
//   shared prefixes               on the CPU backend, sequences of a batch that
//                                 begin with the same tokens compute those rows
//                                 once (a prefix tree, Model::PrepareScore).
//
// Suggested ranks (add_suggested_rank): each matrix's full spectrum comes
// from an exact fp32 SVD of W on the host (the one ModelService.GetSpectrum
// reads, engine/laser/spectrum.h), giving the Marchenko–Pastur rank k_s; the
// suggested intervention is the exact W_{k_s} from that same SVD (svd_method
// exact whatever the configured method). The ρ/rate ranks are decomposed
// exactly as without add_suggested_rank (to k_max with the configured method),
// so their results are the same bits; on the CPU, when that method is (or
// `auto` resolves to) exact, the exact SVD is reused for them instead of a
// second one. The suggested intervention is evaluated and reported as its own
// result (rank_source SUGGESTED, ρ = k_s / max_rank) even when a swept ρ has
// the same k. Compose() decomposes a suggested single the same way.
//
// Several replicas (laserd --devices, engine/laser/replicas.h): the runner may
// be given one resident copy of the model per device. Run() then hands the
// shard's matrices, in plan order, to one worker thread per replica as each
// becomes free (a work queue of (type, ℓ) matrices: one SVD per matrix, all
// its ranks on the same replica, and every replica's matrices ascend in layer
// order, so each replica's prefix cache only moves forward). Results reach
// `on_result` on the calling thread in plan order, exactly as a one-replica
// run reports them; with replicas of one backend kind the numbers are the
// same bits (every matrix's computation is independent of which replica and
// of what ran before on it; on the CPU, at the same OpenBLAS thread count).
// Baseline() and Compose() run on the first replica.
#ifndef LASERD_ENGINE_LASER_SWEEP_H_
#define LASERD_ENGINE_LASER_SWEEP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/dataset.h"
#include "engine/eval/example.h"
#include "engine/eval/generation.h"
#include "engine/eval/metrics.h"
#include "engine/eval/split.h"
#include "engine/laser/intervention.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/svd.h"

namespace laserd::laser {

class SvdBatcher;  // engine/laser/svd_batch.h

// Which records a dataset may hold.
enum class TaskFilter { kAny, kCompletion, kChoice };

// What an intervention does to W (engine/laser/direct_edit.h for zero and prune).
enum class InterventionKind {
  kRankReduction,  // W ← W_k
  kZero,           // W ← 0 (the paper code's `zero`)
  kPrune,          // the paper code's `dropout`: the smallest-magnitude entries set to 0
};
// "rank_reduction" | "zero" | "prune".
const char* InterventionKindName(InterventionKind k);

// Layers [start, stop) by step; stop absent = through the last layer.
struct LayerRange {
  int64_t start = 0;
  std::optional<int64_t> stop;
  int64_t step = 1;
};

// Everything about one sweep, in engine terms (server/ converts the API's
// SweepSpec into this).
struct SweepConfig {
  TaskFilter task = TaskFilter::kAny;
  // Canonical names, aliases or groups; empty = every type the model has.
  std::vector<std::string> matrix_types;
  // Mixture-of-experts models: the experts whose matrices (moe.in[e], …) the
  // selected types keep; empty = every expert. Types without an expert
  // (attention, moe.router) are not filtered. INVALID_ARGUMENT for an index
  // outside [0, experts) or for a model without experts.
  std::vector<int64_t> experts;
  // Union of indices and ranges, sorted and deduplicated; both empty = all.
  std::vector<int64_t> layer_indices;
  std::vector<LayerRange> layer_ranges;
  // Kept ranks: ρ values, or the paper's rate values when `ranks_are_rates`.
  // May be empty only with add_suggested_rank.
  std::vector<double> ranks;
  bool ranks_are_rates = false;
  // Also the Marchenko–Pastur suggested rank of every selected matrix (a
  // rank reduction: only when kinds includes it).
  bool add_suggested_rank = false;
  // The kinds of intervention planned for every selected matrix; empty = rank
  // reduction only. Per matrix, whatever the order given: the rank
  // reductions (ranks in order, then the suggested rank), then prune at each
  // rank value (its ρ or rate is the kept fraction), then one zero.
  std::vector<InterventionKind> kinds;
  kernels::SvdOptions svd;
  // Round every edited matrix W_k to the type its file stores it in (F16 or
  // BF16; F32 unchanged) before scoring, as the paper's code does by
  // assigning the fp32 W_k to an fp16 model (engine/laser/source_dtype.h).
  // Edits are then always applied densely. A planned matrix stored in any
  // other type (a quantized GGUF type) is INVALID_ARGUMENT. Reported
  // relative errors stay those of the unrounded W_k.
  bool round_to_source_dtype = false;
  eval::SplitOptions split;
  std::vector<int> topk = eval::DefaultTopK();
  // How an example counts as correct (engine/eval/generation.h): a rule other
  // than greedy needs completion records only; a generation rule generates
  // for every example of every evaluation, on the whole edited model (the
  // teacher-forced scores still use prefix reuse).
  eval::MatchOptions match;
  // Batching: at most `batch_sequences` sequences (0: no limit) and
  // `batch_tokens` tokens (0: 4096) per forward pass.
  int64_t batch_sequences = 0;
  int64_t batch_tokens = 0;
  // Greedy composition after the singles (unsharded sweeps only).
  bool compose = false;
  int64_t compose_max = 0;  // 0: no limit
  // Shard index of count (count <= 1: unsharded).
  int64_t shard_index = 0;
  int64_t shard_count = 1;
  // Speed levers (both exact; switches exist for tests and benchmarks).
  bool prefix_reuse = true;
  int64_t cache_budget_bytes = int64_t{1} << 30;
  bool factored_apply = true;
  // Memory for batched decompositions: the results waiting for their matrix
  // and the working set of one batch (SvdPlan::ResultBytes + WorkingBytes per
  // matrix); 0: one matrix at a time. Negative (the default): 1 GiB on a
  // backend that decomposes on the device, one at a time on one that
  // decomposes on the host (there a batch is a loop: it gains nothing and
  // would hold later matrices' factors early).
  int64_t svd_batch_bytes = -1;
  // Keep per-example results in each SweepResult (tests).
  bool keep_examples = false;
  // Asked whether to stop (a cancellation or a shutdown): a non-OK status
  // from it ends the call in progress (Baseline, Run, Compose) with that
  // status. Asked before every batch of a scoring pass and, on every
  // backend, before each matrix and between the power iterations of a
  // decomposition (kernels::SvdOptions::interrupt), so a request to stop takes
  // effect within one batch or one iteration. With several replicas it is
  // asked from their threads too. Empty: never stops. Results are the same
  // with or without it.
  std::function<absl::Status()> interrupt;
};

// One planned intervention.
struct Intervention {
  int64_t plan_index = 0;
  InterventionKind kind = InterventionKind::kRankReduction;
  std::string type;  // canonical; an expert's matrix is moe.in[e] (model/architecture.h)
  int64_t layer = 0;
  double rho = 0;              // requested ρ (1 − rate/10 for rates)
  std::optional<double> rate;  // when given as a rate
  // The matrix's Marchenko–Pastur suggested rank (add_suggested_rank): rank
  // and rho (= rank / max_rank) are 0 in the plan and filled in once performed.
  bool suggested = false;
  int64_t rank = 0;            // kept k (0 for zero and prune)
  int64_t max_rank = 0;        // min(rows, cols)
  int64_t rows = 0, cols = 0;  // W [rows = out, cols = in]
  // Filled in once performed:
  double relative_error = 0;                                   // ‖W − W_k‖_F / ‖W‖_F
  kernels::SvdMethod svd_method = kernels::SvdMethod::kExact;  // never kAuto
  int64_t zeroed = 0;                                          // zero and prune: entries set to 0
};

// One matrix of the plan and its interventions.
struct PlanMatrix {
  int64_t matrix_index = 0;  // position in the matrix order
  std::string type;
  int64_t layer = 0;
  int64_t rows = 0, cols = 0;
  // Largest kept rank of its ρ/rate interventions (0 when there are none).
  int64_t k_max = 0;
  std::vector<Intervention> interventions;
};

// Aggregates of one model state on both splits.
struct SplitMetrics {
  eval::Aggregate validation, test;
};

struct SweepResult {
  Intervention intervention;
  SplitMetrics metrics;
  int64_t shard_index = 0;
  // 0 when the matrix's decomposition was reused; includes the spectrum's
  // exact SVD with add_suggested_rank.
  double svd_seconds = 0;
  double eval_seconds = 0;
  std::vector<eval::ExampleResult> examples;  // only with keep_examples
};

// What composition needs of a single result (also rebuilt from a results file).
struct SingleSummary {
  Intervention intervention;
  double validation_accuracy = 0;
  double validation_log_loss = 0;
};

struct CompositionStep {
  int64_t plan_index = 0;  // total singles + step number (0-based)
  Intervention added;
  std::vector<Intervention> stacked_on;
  SplitMetrics metrics;
  bool kept = false;
  std::vector<eval::ExampleResult> examples;  // only with keep_examples
};

// a is better than b: higher validation accuracy, ties by lower log-loss.
bool BetterOnValidation(double acc_a, double loss_a, double acc_b, double loss_b);

// Where the time went.
struct SweepTimings {
  double svd_seconds = 0;      // truncated SVDs and truncation errors
  double forward_seconds = 0;  // scoring forwards (layers, head, scores)
  double cache_seconds = 0;    // advancing the prefix cache
  double apply_seconds = 0;    // building factors, editing and restoring
  int64_t interventions = 0;   // evaluated (singles and composition steps)
  int64_t decompositions = 0;
};

class SweepRunner {
 public:
  // Validates `cfg` against the model (types, layers, ranks), builds the plan,
  // filters, splits and tokenizes the dataset. The model must outlive the
  // runner and is left as it was found after every call.
  static absl::StatusOr<std::unique_ptr<SweepRunner>> Create(model::Model* model,
                                                             const tokenizer::Tokenizer& tok,
                                                             const eval::Dataset& dataset,
                                                             const SweepConfig& cfg);
  // One runner over several resident replicas of the same model (the first
  // is used by Baseline and Compose; Run spreads matrices over all of them).
  // The replicas must be loaded from the same file; their shapes are checked.
  static absl::StatusOr<std::unique_ptr<SweepRunner>> Create(
      const std::vector<model::Model*>& replicas, const tokenizer::Tokenizer& tok,
      const eval::Dataset& dataset, const SweepConfig& cfg);
  ~SweepRunner();

  // Number of replicas Run() uses (1 for a single model).
  size_t replica_count() const { return 1 + replicas_.size(); }
  // Called on the thread that edits replica `replica`, with `editing` true just
  // before an intervention of Run() is applied to it and false once it is
  // restored (also after a failure). The server uses it to let a spectrum
  // request read the unedited first replica while other replicas keep working.
  using EditHook = std::function<void(size_t replica, bool editing)>;
  void set_edit_hook(const EditHook& hook) {
    edit_hook_ = hook;
    for (auto& r : replicas_) r->edit_hook_ = hook;
  }

  // Replaces SweepConfig::interrupt (of every replica).
  void set_interrupt(const std::function<absl::Status()>& interrupt) {
    cfg_.interrupt = interrupt;
    for (auto& r : replicas_) r->cfg_.interrupt = interrupt;
  }

  const SweepConfig& config() const { return cfg_; }
  // The whole plan (every shard's matrices).
  const std::vector<PlanMatrix>& plan() const { return plan_; }
  int64_t total_interventions() const { return total_; }
  // Interventions of this runner's shard.
  int64_t shard_interventions() const;
  bool InShard(const PlanMatrix& m) const;
  const eval::Split& split() const { return split_; }
  int64_t sequences() const { return sequences_; }
  int64_t tokens() const { return tokens_; }

  // Scores the unedited model; `examples`, when given, receives every
  // example's result (dataset order).
  absl::StatusOr<SplitMetrics> Baseline(std::vector<eval::ExampleResult>* examples = nullptr);

  // Evaluates the shard's interventions in plan order, skipping the plan
  // indices in `skip`; `on_result` is called after each, in plan order and on
  // the calling thread (an error from it stops the run and is returned; with
  // several replicas, interventions in flight on the others are discarded).
  absl::Status Run(const std::set<int64_t>& skip,
                   const std::function<absl::Status(const SweepResult&)>& on_result);

  // Greedy composition over the singles of the whole sweep: the best single of
  // each matrix, best first (validation accuracy, then log-loss, then
  // plan_index), each stacked while it improves validation over the previous
  // state (the baseline at first); the first that does not is reported
  // (kept = false) and ends it. `baseline` is the unedited validation state.
  // Steps whose plan_index is in `skip` are evaluated but not reported.
  absl::Status Compose(const std::vector<SingleSummary>& singles, const SplitMetrics& baseline,
                       const std::set<int64_t>& skip,
                       const std::function<absl::Status(const CompositionStep&)> on_step);

  // Summed over the replicas (so device-seconds, not wall time, with several).
  SweepTimings timings() const;

 private:
  struct Batch;
  struct Edit;
  SweepRunner();
  absl::StatusOr<std::vector<eval::ExampleResult>> Evaluate(int64_t from_layer);
  // cfg_.interrupt(), OK when there is none.
  absl::Status Interrupted() const;
  void AdvanceCache(int64_t layer);
  SplitMetrics Aggregate(const std::vector<eval::ExampleResult>& r) const;
  absl::Status Apply(const Intervention& iv, const kernels::TruncatedSvd& svd);
  // Applies a zero or prune intervention, filling in its relative_error and
  // zeroed.
  absl::Status ApplyDirect(Intervention* iv);
  // Rounds the edited W(type, layer) to its source type (round_to_source_dtype).
  absl::Status RoundEdited(const std::string& type, int64_t layer);
  void Unapply();
  // One matrix's interventions on this runner's model; `emit(result, i)` gets
  // the result of todo[i]. `more(m, n)` names up to n later same-shaped
  // matrices this runner will run, to decompose with m.
  using MoreMatrices =
      std::function<std::vector<const PlanMatrix*>(const PlanMatrix& m, size_t max)>;
  absl::Status RunMatrix(const PlanMatrix& m, const std::vector<const Intervention*>& todo,
                         size_t replica, const MoreMatrices& more,
                         const std::function<absl::Status(SweepResult, size_t)>& emit);
  absl::Status RunParallel(const std::set<int64_t>& skip,
                           const std::function<absl::Status(const SweepResult&)>& on_result);

  model::Model* model_ = nullptr;
  const tokenizer::Tokenizer* tok_ = nullptr;   // kept for match rules other than greedy
  std::vector<eval::Example> source_examples_;  // the same, with their text
  SweepConfig cfg_;
  std::vector<PlanMatrix> plan_;
  int64_t total_ = 0;
  std::vector<eval::TokenizedExample> examples_;
  eval::Split split_;
  int64_t sequences_ = 0, tokens_ = 0;
  std::vector<Batch> batches_;
  int64_t cache_layer_ = -1;  // the cached states enter this layer; -1: none
  SweepTimings timings_;
  // Decomposition in use (one matrix at a time; more during composition).
  std::vector<std::pair<std::pair<std::string, int64_t>, kernels::TruncatedSvd>> svds_;
  std::vector<std::pair<std::string, int64_t>> lowrank_applied_;
  std::unique_ptr<Editor> editor_;
  std::unique_ptr<SvdBatcher> batcher_;
  // Runners of replicas 1..N-1 (empty for one model), and the edit hook.
  std::vector<std::unique_ptr<SweepRunner>> replicas_;
  EditHook edit_hook_;
};

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_SWEEP_H_
