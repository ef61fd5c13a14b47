#include "engine/laser/sweep.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/eval/scorer.h"
#include "engine/laser/direct_edit.h"
#include "engine/laser/intervention.h"
#include "engine/laser/paper_svd.h"
#include "engine/laser/rank.h"
#include "engine/laser/source_dtype.h"
#include "engine/laser/spectrum.h"
#include "engine/laser/svd_batch.h"

namespace laserd::laser {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

absl::Status Prefixed(const absl::Status& s, const std::string& prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

}  // namespace

const char* InterventionKindName(InterventionKind k) {
  switch (k) {
    case InterventionKind::kRankReduction:
      return "rank_reduction";
    case InterventionKind::kZero:
      return "zero";
    case InterventionKind::kPrune:
      return "prune";
  }
  return "?";
}

bool BetterOnValidation(double acc_a, double loss_a, double acc_b, double loss_b) {
  if (acc_a != acc_b) return acc_a > acc_b;  // false when either is NaN
  return loss_a < loss_b;
}

struct SweepRunner::Batch {
  std::vector<std::pair<size_t, size_t>> refs;  // (example, sequence)
  model::Model::ScoreLayout score;
  kernels::Tensor cache;  // residual stream entering cache_layer_
  bool cached = false;    // within the cache budget
};

SweepRunner::SweepRunner() = default;

SweepRunner::~SweepRunner() {
  if (model_ != nullptr) model_->backend()->BindThread();
  Unapply();
}

absl::StatusOr<std::unique_ptr<SweepRunner>> SweepRunner::Create(model::Model* model,
                                                                 const tokenizer::Tokenizer& tok,
                                                                 const eval::Dataset& dataset,
                                                                 const SweepConfig& cfg) {
  model->backend()->BindThread();
  std::unique_ptr<SweepRunner> r(new SweepRunner());
  r->model_ = model;
  r->cfg_ = cfg;
  // Decompositions ask the runner, so that set_interrupt reaches them too.
  r->cfg_.svd.interrupt = [runner = r.get()] { return runner->Interrupted(); };
  r->editor_ = std::make_unique<Editor>(model);
  const int64_t batch_bytes = cfg.svd_batch_bytes >= 0               ? cfg.svd_batch_bytes
                              : model->backend()->DecomposesOnHost() ? 0
                                                                     : int64_t{1} << 30;
  r->batcher_ = std::make_unique<SvdBatcher>(model, r->cfg_.svd, batch_bytes);
  const int64_t L = model->config().layers;

  if (cfg.shard_count < 0 ||
      (cfg.shard_count > 1 && (cfg.shard_index < 0 || cfg.shard_index >= cfg.shard_count)) ||
      (cfg.shard_count <= 1 && cfg.shard_index != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("shard: index ", cfg.shard_index,
                                                   " is not in [0, ",
                                                   std::max<int64_t>(1, cfg.shard_count), ")"));
  }
  if (cfg.compose && cfg.shard_count > 1) {
    return absl::InvalidArgumentError(
        "composition: greedy composition requires an unsharded sweep (shard.count <= 1)");
  }
  if (cfg.batch_sequences < 0 || cfg.batch_tokens < 0) {
    return absl::InvalidArgumentError("batch: sizes must not be negative");
  }
  for (size_t i = 0; i < cfg.topk.size(); ++i) {
    if (cfg.topk[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_k[", i, "]: ", cfg.topk[i], " is not >= 1"));
    }
  }

  // Types.
  std::vector<std::string> names = cfg.matrix_types;
  if (names.empty()) names = {"all"};
  auto types = ExpandMatrixTypes(names, model->MatrixTypes());
  if (!types.ok()) return Prefixed(types.status(), "matrix_types: ");
  if (!cfg.experts.empty()) {
    const int64_t E = model->config().experts;
    std::set<int64_t> keep;
    for (size_t i = 0; i < cfg.experts.size(); ++i) {
      const int64_t e = cfg.experts[i];
      if (E == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("experts[", i, "]: the model has no experts"));
      }
      if (e < 0 || e >= E) {
        return absl::InvalidArgumentError(
            absl::StrCat("experts[", i, "]: ", e, " is outside the model's experts [0, ", E, ")"));
      }
      keep.insert(e);
    }
    std::vector<std::string> kept;
    for (const std::string& t : *types) {
      auto ex = model::ParseExpertMatrixType(t);
      if (!ex || keep.count(ex->second)) kept.push_back(t);
    }
    *types = std::move(kept);
  }

  // Layers.
  std::set<int64_t> layer_set;
  for (size_t i = 0; i < cfg.layer_indices.size(); ++i) {
    const int64_t l = cfg.layer_indices[i];
    if (l < 0 || l >= L) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layers.indices[", i, "]: ", l, " is outside the model's layers [0, ", L, ")"));
    }
    layer_set.insert(l);
  }
  for (size_t i = 0; i < cfg.layer_ranges.size(); ++i) {
    const LayerRange& lr = cfg.layer_ranges[i];
    const std::string where = absl::StrCat("layers.ranges[", i, "]");
    if (lr.start < 0 || lr.start >= L) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".start: ", lr.start, " is outside the model's layers [0, ", L, ")"));
    }
    const int64_t stop = lr.stop.value_or(L);
    if (stop <= lr.start || stop > L) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".stop: ", stop, " is not in (", lr.start, ", ", L, "]"));
    }
    if (lr.step < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".step: ", lr.step, " is negative"));
    }
    const int64_t step = lr.step == 0 ? 1 : lr.step;
    for (int64_t l = lr.start; l < stop; l += step) layer_set.insert(l);
  }
  if (cfg.layer_indices.empty() && cfg.layer_ranges.empty()) {
    for (int64_t l = 0; l < L; ++l) layer_set.insert(l);
  }

  // Kinds.
  bool reduce = cfg.kinds.empty(), prune = false, zero = false;
  for (InterventionKind k : cfg.kinds) {
    reduce |= k == InterventionKind::kRankReduction;
    prune |= k == InterventionKind::kPrune;
    zero |= k == InterventionKind::kZero;
  }

  // Ranks: needed by rank reduction (unless suggested ranks alone) and prune.
  const char* rank_field = cfg.ranks_are_rates ? "rate" : "rho";
  if (cfg.ranks.empty() && ((reduce && !cfg.add_suggested_rank) || prune)) {
    return absl::InvalidArgumentError(
        absl::StrCat(rank_field, ".values: at least one value is required"));
  }

  // The plan: layer-major, then canonical type order, then the ranks as given.
  int64_t pi = 0;
  for (int64_t layer : layer_set) {
    for (const std::string& type : *types) {
      LASERD_ASSIGN_OR_RETURN(const kernels::Tensor* w, model->Matrix(type, layer));
      PlanMatrix m;
      m.matrix_index = static_cast<int64_t>(r->plan_.size());
      m.type = type;
      m.layer = layer;
      m.rows = w->rows();
      m.cols = w->cols();
      // Every rank value is checked even when only prune uses it.
      std::vector<int64_t> kept;
      for (size_t i = 0; i < cfg.ranks.size(); ++i) {
        const double v = cfg.ranks[i];
        auto k = cfg.ranks_are_rates ? KeptRankFromRate(m.rows, m.cols, v)
                                     : KeptRankFromRho(m.rows, m.cols, v);
        if (!k.ok()) {
          return Prefixed(k.status(), absl::StrCat(rank_field, ".values[", i, "]: "));
        }
        kept.push_back(*k);
      }
      auto planned = [&](InterventionKind kind, size_t i) {
        Intervention iv;
        iv.plan_index = pi++;
        iv.kind = kind;
        iv.type = type;
        iv.layer = layer;
        if (i < cfg.ranks.size()) {
          const double v = cfg.ranks[i];
          iv.rho = cfg.ranks_are_rates ? 1.0 - v / 10.0 : v;
          if (cfg.ranks_are_rates) iv.rate = v;
        }
        iv.max_rank = std::min(m.rows, m.cols);
        iv.rows = m.rows;
        iv.cols = m.cols;
        return iv;
      };
      for (size_t i = 0; reduce && i < cfg.ranks.size(); ++i) {
        Intervention iv = planned(InterventionKind::kRankReduction, i);
        iv.rank = kept[i];
        m.k_max = std::max(m.k_max, kept[i]);
        m.interventions.push_back(iv);
      }
      if (reduce && cfg.add_suggested_rank) {
        Intervention iv;
        iv.plan_index = pi++;
        iv.type = type;
        iv.layer = layer;
        iv.suggested = true;  // rank and rho once the spectrum is known
        iv.max_rank = std::min(m.rows, m.cols);
        iv.rows = m.rows;
        iv.cols = m.cols;
        m.interventions.push_back(iv);
      }
      for (size_t i = 0; prune && i < cfg.ranks.size(); ++i) {
        m.interventions.push_back(planned(InterventionKind::kPrune, i));
      }
      if (zero) {
        Intervention iv = planned(InterventionKind::kZero, cfg.ranks.size());
        iv.rho = 0;
        m.interventions.push_back(iv);
      }
      r->plan_.push_back(std::move(m));
    }
  }
  r->total_ = pi;
  if (cfg.round_to_source_dtype) {
    // Every planned matrix must have a type to round to.
    for (const PlanMatrix& m : r->plan_) {
      auto rounding = RoundingForDType(model->SourceDType(m.type, m.layer));
      if (!rounding.ok()) {
        return Prefixed(rounding.status(), absl::StrCat("round_to_source_dtype: ", m.type,
                                                        " of layer ", m.layer, " "));
      }
    }
  }

  // The dataset: filtered, split and tokenized once.
  for (const eval::Example& ex : dataset.examples) {
    if (cfg.task == TaskFilter::kCompletion && ex.kind != eval::ExampleKind::kCompletion) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task: ", dataset.source, " line ", ex.line, " is a choice record, but the task is ",
          eval::IsGenerationRule(cfg.match.rule) ? "generation" : "completion"));
    }
    if (cfg.match.rule != eval::MatchRule::kGreedy && ex.kind != eval::ExampleKind::kCompletion) {
      return absl::InvalidArgumentError(absl::StrCat(
          "match: ", dataset.source, " line ", ex.line, " is a choice record; the match rule ",
          eval::MatchRuleName(cfg.match.rule), " applies to completion records only"));
    }
    if (cfg.task == TaskFilter::kChoice && ex.kind != eval::ExampleKind::kChoice) {
      return absl::InvalidArgumentError(
          absl::StrCat("task: ", dataset.source, " line ", ex.line,
                       " is a completion record, but the task is choice"));
    }
  }
  if (cfg.match.rule != eval::MatchRule::kGreedy) {
    if (absl::Status st = eval::ValidateMatchOptions(cfg.match); !st.ok()) {
      return Prefixed(st, "generation.");
    }
    r->tok_ = &tok;
    r->source_examples_ = dataset.examples;
  }
  auto split = eval::MakeSplit(static_cast<int64_t>(dataset.examples.size()), cfg.split);
  if (!split.ok()) return Prefixed(split.status(), "split: ");
  r->split_ = *std::move(split);
  LASERD_ASSIGN_OR_RETURN(r->examples_,
                          eval::TokenizeDataset(tok, dataset, model->config().max_positions));

  // Batches, fixed for the whole sweep.
  std::vector<std::pair<size_t, size_t>> refs;
  std::vector<int64_t> lengths;
  for (size_t e = 0; e < r->examples_.size(); ++e) {
    for (size_t s = 0; s < r->examples_[e].seqs.size(); ++s) {
      refs.push_back({e, s});
      lengths.push_back(static_cast<int64_t>(r->examples_[e].seqs[s].tokens.size()));
      r->tokens_ += lengths.back();
    }
  }
  r->sequences_ = static_cast<int64_t>(refs.size());
  const int64_t budget = cfg.batch_tokens > 0 ? cfg.batch_tokens : 4096;
  int64_t cache_used = 0;
  for (const std::vector<int64_t>& planned : eval::PlanBatches(lengths, budget)) {
    for (size_t start = 0; start < planned.size();) {
      const size_t n = cfg.batch_sequences > 0
                           ? std::min<size_t>(cfg.batch_sequences, planned.size() - start)
                           : planned.size() - start;
      Batch b;
      std::vector<model::ScoreRequest> reqs;
      for (size_t i = start; i < start + n; ++i) {
        b.refs.push_back(refs[planned[i]]);
        const eval::TokenizedSequence& seq =
            r->examples_[b.refs.back().first].seqs[b.refs.back().second];
        reqs.push_back({seq.tokens, seq.answer_start});
      }
      LASERD_ASSIGN_OR_RETURN(b.score, model->PrepareScore(reqs));
      const int64_t bytes = b.score.layout.total_rows() * model->config().hidden *
                            static_cast<int64_t>(sizeof(float));
      if (cfg.prefix_reuse && cache_used + bytes <= cfg.cache_budget_bytes) {
        b.cached = true;
        cache_used += bytes;
      }
      r->batches_.push_back(std::move(b));
      start += n;
    }
  }
  return r;
}

absl::StatusOr<std::unique_ptr<SweepRunner>> SweepRunner::Create(
    const std::vector<model::Model*>& replicas, const tokenizer::Tokenizer& tok,
    const eval::Dataset& dataset, const SweepConfig& cfg) {
  if (replicas.empty()) return absl::InvalidArgumentError("sweep: no model replica given");
  LASERD_ASSIGN_OR_RETURN(std::unique_ptr<SweepRunner> first,
                          Create(replicas[0], tok, dataset, cfg));
  for (size_t i = 1; i < replicas.size(); ++i) {
    auto r = Create(replicas[i], tok, dataset, cfg);
    if (!r.ok()) {
      return Prefixed(r.status(), absl::StrCat("replica ", i, ": "));
    }
    // The same plan (types, layers, shapes, ranks) on every replica.
    const std::vector<PlanMatrix>& a = first->plan_;
    const std::vector<PlanMatrix>& b = (*r)->plan_;
    bool same = a.size() == b.size();
    for (size_t j = 0; same && j < a.size(); ++j) {
      same = a[j].type == b[j].type && a[j].layer == b[j].layer && a[j].rows == b[j].rows &&
             a[j].cols == b[j].cols && a[j].k_max == b[j].k_max;
    }
    if (!same) {
      return absl::InvalidArgumentError(
          absl::StrCat("replica ", i, " is not the same model as replica 0 (its plan differs)"));
    }
    first->replicas_.push_back(*std::move(r));
  }
  return first;
}

SweepTimings SweepRunner::timings() const {
  SweepTimings t = timings_;
  for (const auto& r : replicas_) {
    const SweepTimings& o = r->timings_;
    t.svd_seconds += o.svd_seconds;
    t.forward_seconds += o.forward_seconds;
    t.cache_seconds += o.cache_seconds;
    t.apply_seconds += o.apply_seconds;
    t.interventions += o.interventions;
    t.decompositions += o.decompositions;
  }
  return t;
}

int64_t SweepRunner::shard_interventions() const {
  int64_t n = 0;
  for (const PlanMatrix& m : plan_) {
    if (InShard(m)) n += static_cast<int64_t>(m.interventions.size());
  }
  return n;
}

bool SweepRunner::InShard(const PlanMatrix& m) const {
  return cfg_.shard_count <= 1 || m.matrix_index % cfg_.shard_count == cfg_.shard_index;
}

void SweepRunner::AdvanceCache(int64_t layer) {
  if (!cfg_.prefix_reuse) return;
  const auto t0 = Clock::now();
  if (cache_layer_ < 0 || layer < cache_layer_) {
    for (Batch& b : batches_) {
      if (!b.cached) continue;
      b.cache = model_->EmbedScore(b.score);
    }
    cache_layer_ = 0;
  }
  if (layer > cache_layer_) {
    for (Batch& b : batches_) {
      if (b.cached) model_->RunLayers(&b.cache, b.score.layout, cache_layer_, layer);
    }
    cache_layer_ = layer;
  }
  timings_.cache_seconds += Since(t0);
}

absl::Status SweepRunner::Interrupted() const {
  return cfg_.interrupt ? cfg_.interrupt() : absl::OkStatus();
}

absl::StatusOr<std::vector<eval::ExampleResult>> SweepRunner::Evaluate(int64_t from_layer) {
  const auto t0 = Clock::now();
  kernels::Backend* be = model_->backend();
  std::vector<std::vector<std::vector<model::TokenScore>>> scores(examples_.size());
  for (size_t e = 0; e < examples_.size(); ++e) scores[e].resize(examples_[e].seqs.size());
  for (Batch& b : batches_) {
    LASERD_RETURN_IF_ERROR(Interrupted());
    std::vector<std::vector<model::TokenScore>> out;
    if (b.cached && cache_layer_ == from_layer) {
      kernels::Tensor h = be->Empty(b.cache.rows(), b.cache.cols());
      be->Copy(b.cache, &h);
      out = model_->ScoreFrom(std::move(h), b.score, from_layer);
    } else {
      out = model_->ScoreFrom(model_->EmbedScore(b.score), b.score, 0);
    }
    for (size_t i = 0; i < b.refs.size(); ++i) {
      scores[b.refs[i].first][b.refs[i].second] = std::move(out[i]);
    }
  }
  std::vector<eval::ExampleResult> results;
  results.reserve(examples_.size());
  for (size_t e = 0; e < examples_.size(); ++e) {
    std::vector<const std::vector<model::TokenScore>*> mine;
    for (const auto& s : scores[e]) mine.push_back(&s);
    LASERD_ASSIGN_OR_RETURN(eval::ExampleResult r,
                            eval::ScoreExample(examples_[e], mine, cfg_.topk));
    results.push_back(std::move(r));
  }
  if (cfg_.match.rule != eval::MatchRule::kGreedy) {
    LASERD_RETURN_IF_ERROR(Interrupted());
    LASERD_RETURN_IF_ERROR(
        eval::ApplyMatchRule(*model_, *tok_, source_examples_, cfg_.match, &results));
  }
  timings_.forward_seconds += Since(t0);
  return results;
}

SplitMetrics SweepRunner::Aggregate(const std::vector<eval::ExampleResult>& r) const {
  SplitMetrics m;
  m.validation = eval::ComputeAggregate(r, cfg_.topk, &split_.validation);
  m.test = eval::ComputeAggregate(r, cfg_.topk, &split_.test);
  return m;
}

absl::StatusOr<SplitMetrics> SweepRunner::Baseline(std::vector<eval::ExampleResult>* examples) {
  model_->backend()->BindThread();
  Unapply();
  AdvanceCache(0);
  LASERD_ASSIGN_OR_RETURN(std::vector<eval::ExampleResult> r, Evaluate(0));
  SplitMetrics m = Aggregate(r);
  if (examples != nullptr) *examples = std::move(r);
  return m;
}

absl::Status SweepRunner::Apply(const Intervention& iv, const kernels::TruncatedSvd& svd) {
  const auto t0 = Clock::now();
  const int64_t m = svd.m, n = svd.n, k = iv.rank;
  absl::Status st;
  if (cfg_.round_to_source_dtype) {
    // W_k densely (as without rounding), then rounded to the source type.
    st = editor_->ApplyDense(iv.type, iv.layer, svd, k);
    if (st.ok()) st = RoundEdited(iv.type, iv.layer);
  } else if (cfg_.factored_apply && k * (m + n) < m * n) {
    LASERD_ASSIGN_OR_RETURN(Factors f, MakeFactors(model_->backend(), svd, k));
    st = model_->SetLowRank(iv.type, iv.layer, std::move(f.us), std::move(f.v));
    if (st.ok()) lowrank_applied_.push_back({iv.type, iv.layer});
  } else {
    st = editor_->ApplyDense(iv.type, iv.layer, svd, k);
  }
  timings_.apply_seconds += Since(t0);
  return st;
}

absl::Status SweepRunner::RoundEdited(const std::string& type, int64_t layer) {
  auto r = RoundingForDType(model_->SourceDType(type, layer));
  if (!r.ok()) {
    return Prefixed(r.status(),
                    absl::StrCat("round_to_source_dtype: ", type, " of layer ", layer, " "));
  }
  if (*r == SourceRounding::kNone) return absl::OkStatus();
  LASERD_ASSIGN_OR_RETURN(std::vector<float> w, MatrixToHost(model_, type, layer));
  RoundInPlace(*r, &w);
  return editor_->ApplyHost(type, layer, w);
}

absl::Status SweepRunner::ApplyDirect(Intervention* iv) {
  const auto t0 = Clock::now();
  LASERD_ASSIGN_OR_RETURN(std::vector<float> w, MatrixToHost(model_, iv->type, iv->layer));
  const DirectEdit e =
      iv->kind == InterventionKind::kZero ? ZeroInPlace(&w) : PruneInPlace(&w, iv->rho, iv->rate);
  iv->relative_error = e.relative_error;
  iv->zeroed = e.zeroed;
  // Zeros and kept entries are already values of the source type: nothing
  // to round.
  absl::Status st = editor_->ApplyHost(iv->type, iv->layer, w);
  timings_.apply_seconds += Since(t0);
  return st;
}

void SweepRunner::Unapply() {
  const auto t0 = Clock::now();
  for (const auto& [type, layer] : lowrank_applied_) model_->ClearLowRank(type, layer);
  lowrank_applied_.clear();
  if (editor_) editor_->RestoreAll();
  timings_.apply_seconds += Since(t0);
}

absl::Status SweepRunner::RunMatrix(const PlanMatrix& m,
                                    const std::vector<const Intervention*>& todo, size_t replica,
                                    const MoreMatrices& more,
                                    const std::function<absl::Status(SweepResult, size_t)>& emit) {
  model_->backend()->BindThread();  // a worker thread of RunParallel, or the caller's
  Unapply();
  AdvanceCache(m.layer);
  // One decomposition to the largest rank (the paper method: one per rank),
  // and every rank's truncation error, on the backend that holds W
  // (kernels::DecomposeOnBackend), possibly with later same-shaped matrices
  // (SvdBatcher). The errors cover every ρ/rate rank of the matrix, also
  // those skipped on a resume: the randomized methods' residuals are computed
  // rank after rank, so the same list gives the same bits as an
  // uninterrupted run.
  auto t0 = Clock::now();
  const std::vector<int64_t> ks = SweptRanks(m);
  // The ρ/rate ranks' decomposition and errors (in ks order), and with
  // add_suggested_rank the exact SVD that gives the suggested rank k_s.
  std::optional<MatrixSvds> dec;
  std::optional<kernels::TruncatedSvd> exact;
  std::vector<const kernels::TruncatedSvd*> swept_svds;  // per ks entry
  const std::vector<double>* swept_errors = nullptr;
  std::vector<double> exact_errors;  // ks..., then k_s
  int64_t k_suggested = 0;
  double batch_seconds = 0;  // time of batched decompositions inside t0's span
  double svd_share = 0;      // this matrix's share of it
  const bool has_suggested = std::any_of(m.interventions.begin(), m.interventions.end(),
                                         [](const Intervention& iv) { return iv.suggested; });
  if (has_suggested) {
    // The full spectrum from an exact fp32 SVD on the host (as GetSpectrum),
    // its Marchenko-Pastur rank k_s, and W_{k_s} from the same SVD.
    LASERD_ASSIGN_OR_RETURN(const std::vector<float> host, MatrixToHost(model_, m.type, m.layer));
    auto e = ExactSpectrumSvd(host, m.rows, m.cols, std::min(m.rows, m.cols));
    if (!e.ok()) return Prefixed(e.status(), absl::StrCat(m.type, " of layer ", m.layer, ": "));
    exact = *std::move(e);
    LASERD_ASSIGN_OR_RETURN(
        const MarchenkoPasturFit fit,
        MarchenkoPasturRank(std::vector<double>(exact->spectrum.begin(), exact->spectrum.end()),
                            m.rows, m.cols, exact->frobenius_sq));
    k_suggested = fit.rank;
    // When the backend decomposes on the host and the ρ/rate ranks' plan is
    // the fp32 exact SVD, this SVD is also their decomposition, bit for bit.
    bool reuse = false;
    if (!ks.empty() && model_->backend()->DecomposesOnHost()) {
      auto plan = kernels::PlanSvd(m.rows, m.cols, m.k_max, cfg_.svd);
      reuse = plan.ok() && plan->method == kernels::SvdMethod::kExact && !plan->exact_in_double;
    }
    std::vector<int64_t> eks = reuse ? ks : std::vector<int64_t>{};
    eks.push_back(k_suggested);
    LASERD_ASSIGN_OR_RETURN(exact_errors, kernels::TruncationErrors(host.data(), *exact, eks));
    if (reuse) {
      swept_svds.assign(ks.size(), &*exact);
      swept_errors = &exact_errors;  // its first ks.size() entries
    }
  }
  if (swept_svds.empty() && !ks.empty()) {
    const auto tb = Clock::now();
    LASERD_ASSIGN_OR_RETURN(dec, batcher_->Take(m, more, &svd_share));
    batch_seconds = Since(tb);
    for (size_t j : dec->svd_of) swept_svds.push_back(&dec->svds[j]);
    swept_errors = &dec->errors;
  }
  const double svd_seconds = Since(t0) - batch_seconds + svd_share;
  timings_.svd_seconds += svd_seconds;
  if (dec || exact) ++timings_.decompositions;
  for (size_t i = 0; i < todo.size(); ++i) {
    SweepResult res;
    res.intervention = *todo[i];
    const kernels::TruncatedSvd* svd = nullptr;
    if (res.intervention.kind != InterventionKind::kRankReduction) {
      // Zero and prune: no decomposition (their results are filled in below).
    } else if (res.intervention.suggested) {
      svd = &*exact;
      res.intervention.rank = k_suggested;
      res.intervention.rho = static_cast<double>(k_suggested) / res.intervention.max_rank;
      res.intervention.relative_error = exact_errors.back();
    } else {
      // The ρ/rate interventions come first in the matrix, in ks order.
      const size_t j = todo[i] - m.interventions.data();
      svd = swept_svds[j];
      res.intervention.relative_error = (*swept_errors)[j];
    }
    if (svd != nullptr) res.intervention.svd_method = svd->method;
    res.shard_index = cfg_.shard_count > 1 ? cfg_.shard_index : 0;
    res.svd_seconds = i == 0 ? svd_seconds : 0.0;
    auto te = Clock::now();
    if (edit_hook_) edit_hook_(replica, true);
    absl::StatusOr<std::vector<eval::ExampleResult>> ex;
    if (absl::Status st =
            svd != nullptr ? Apply(res.intervention, *svd) : ApplyDirect(&res.intervention);
        !st.ok()) {
      ex = st;
    } else {
      ex = Evaluate(m.layer);
    }
    Unapply();
    if (edit_hook_) edit_hook_(replica, false);
    if (!ex.ok()) return ex.status();
    res.metrics = Aggregate(*ex);
    res.eval_seconds = Since(te);
    if (cfg_.keep_examples) res.examples = *std::move(ex);
    ++timings_.interventions;
    LASERD_RETURN_IF_ERROR(emit(std::move(res), i));
  }
  return absl::OkStatus();
}

absl::Status SweepRunner::Run(const std::set<int64_t>& skip,
                              const std::function<absl::Status(const SweepResult&)>& on_result) {
  if (!replicas_.empty()) return RunParallel(skip, on_result);
  std::vector<std::pair<const PlanMatrix*, std::vector<const Intervention*>>> work;
  for (const PlanMatrix& m : plan_) {
    if (!InShard(m)) continue;
    std::vector<const Intervention*> todo;
    for (const Intervention& iv : m.interventions) {
      if (!skip.count(iv.plan_index)) todo.push_back(&iv);
    }
    if (!todo.empty()) work.push_back({&m, std::move(todo)});
  }
  batcher_->Clear();
  for (size_t i = 0; i < work.size(); ++i) {
    // The later same-shaped matrices, in plan order.
    auto more = [&](const PlanMatrix& m, size_t max) {
      std::vector<const PlanMatrix*> out;
      for (size_t j = i + 1; j < work.size() && out.size() < max; ++j) {
        if (work[j].first->rows == m.rows && work[j].first->cols == m.cols) {
          out.push_back(work[j].first);
        }
      }
      return out;
    };
    absl::Status st = RunMatrix(*work[i].first, work[i].second, 0, more,
                                [&](SweepResult res, size_t) { return on_result(res); });
    if (!st.ok()) {
      batcher_->Clear();
      return st;
    }
  }
  batcher_->Clear();
  return absl::OkStatus();
}

absl::Status SweepRunner::Compose(
    const std::vector<SingleSummary>& singles, const SplitMetrics& baseline,
    const std::set<int64_t>& skip,
    const std::function<absl::Status(const CompositionStep&)> on_step) {
  if (cfg_.shard_count > 1) {
    return absl::FailedPreconditionError("composition requires an unsharded sweep");
  }
  model_->backend()->BindThread();
  // The best single of each matrix, then all of them best first.
  std::map<std::pair<std::string, int64_t>, const SingleSummary*> best;
  auto better = [](const SingleSummary* a, const SingleSummary* b) {
    if (a->validation_accuracy != b->validation_accuracy ||
        a->validation_log_loss != b->validation_log_loss) {
      return BetterOnValidation(a->validation_accuracy, a->validation_log_loss,
                                b->validation_accuracy, b->validation_log_loss);
    }
    return a->intervention.plan_index < b->intervention.plan_index;
  };
  for (const SingleSummary& s : singles) {
    auto key = std::make_pair(s.intervention.type, s.intervention.layer);
    auto it = best.find(key);
    if (it == best.end() || better(&s, it->second)) best[key] = &s;
  }
  std::vector<const SingleSummary*> order;
  for (const auto& [key, s] : best) order.push_back(s);
  std::stable_sort(order.begin(), order.end(), better);

  std::map<std::pair<std::string, int64_t>, const PlanMatrix*> matrices;
  for (const PlanMatrix& m : plan_) matrices[{m.type, m.layer}] = &m;

  std::map<std::pair<std::string, int64_t>, kernels::TruncatedSvd> svds;

  std::vector<Intervention> stack;
  double cur_acc = baseline.validation.accuracy, cur_loss = baseline.validation.log_loss;
  for (size_t step = 0; step < order.size(); ++step) {
    if (cfg_.compose_max > 0 && static_cast<int64_t>(stack.size()) >= cfg_.compose_max) break;
    const Intervention& add = order[step]->intervention;
    std::vector<Intervention> edits = stack;
    edits.push_back(add);
    int64_t from = add.layer;
    for (const Intervention& iv : edits) {
      auto key = std::make_pair(iv.type, iv.layer);
      from = std::min(from, iv.layer);
      if (svds.count(key) || iv.kind != InterventionKind::kRankReduction) continue;
      auto mit = matrices.find(key);
      if (mit == matrices.end()) {
        return absl::InvalidArgumentError(absl::StrCat("composition: ", iv.type, " of layer ",
                                                       iv.layer, " is not in the sweep's plan"));
      }
      auto t0 = Clock::now();
      // As Run() decomposes it: a suggested rank from the exact SVD (the
      // prefix of the same sgesdd), the others with the configured method
      // (to k_max, or, for the paper method, to the rank itself with its
      // rank's seed). (Each matrix has one intervention in a composition,
      // its best single.)
      kernels::TruncatedSvd svd;
      if (iv.suggested) {
        LASERD_ASSIGN_OR_RETURN(const std::vector<float> host,
                                MatrixToHost(model_, iv.type, iv.layer));
        LASERD_ASSIGN_OR_RETURN(
            svd, ExactSpectrumSvd(host, mit->second->rows, mit->second->cols, iv.rank));
      } else {
        LASERD_ASSIGN_OR_RETURN(const kernels::Tensor* w, model_->Matrix(iv.type, iv.layer));
        const bool per_rank = PerRankDecomposition(cfg_.svd);
        const int64_t k = per_rank ? iv.rank : mit->second->k_max;
        auto d = kernels::DecomposeOnBackend(model_->backend(), {w}, k,
                                             OptionsForRank(cfg_.svd, iv.type, iv.layer, k), {});
        if (!d.ok()) {
          return Prefixed(d.status(), absl::StrCat(iv.type, " of layer ", iv.layer, ": "));
        }
        svd = std::move((*d)[0].svd);
      }
      timings_.svd_seconds += Since(t0);
      ++timings_.decompositions;
      svds.emplace(key, std::move(svd));
    }
    Unapply();
    AdvanceCache(from);
    for (const Intervention& iv : edits) {
      Intervention direct = iv;
      if (absl::Status st = iv.kind == InterventionKind::kRankReduction
                                ? Apply(iv, svds.at({iv.type, iv.layer}))
                                : ApplyDirect(&direct);
          !st.ok()) {
        Unapply();
        return st;
      }
    }
    absl::StatusOr<std::vector<eval::ExampleResult>> ex = Evaluate(from);
    Unapply();
    if (!ex.ok()) return ex.status();
    ++timings_.interventions;
    CompositionStep cs;
    cs.plan_index = total_ + static_cast<int64_t>(step);
    cs.added = add;
    cs.stacked_on = stack;
    cs.metrics = Aggregate(*ex);
    cs.kept = BetterOnValidation(cs.metrics.validation.accuracy, cs.metrics.validation.log_loss,
                                 cur_acc, cur_loss);
    if (cfg_.keep_examples) cs.examples = *std::move(ex);
    if (!skip.count(cs.plan_index)) {
      LASERD_RETURN_IF_ERROR(on_step(cs));
    }
    if (!cs.kept) break;
    stack.push_back(add);
    cur_acc = cs.metrics.validation.accuracy;
    cur_loss = cs.metrics.validation.log_loss;
  }
  return absl::OkStatus();
}

}  // namespace laserd::laser
