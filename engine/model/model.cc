#include "engine/model/model.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/laser_factors.h"
#include "engine/model/model_weights.h"

namespace laserd::model {

using kernels::Tensor;

Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const formats::WeightSource& src,
                                                   kernels::Backend* backend) {
  // Factored LASER exports: load the dense tensors their factors stand for.
  LASERD_ASSIGN_OR_RETURN(std::unique_ptr<formats::WeightSource> expanded, ExpandLaserFactors(src));
  if (expanded) return Load(*expanded, backend);
  std::unique_ptr<Model> m(new Model());
  m->backend_ = backend;
  LASERD_ASSIGN_OR_RETURN(m->config_, ReadModelConfig(src));
  LASERD_ASSIGN_OR_RETURN(m->w_, LoadModelWeights(src, backend, &m->config_));
  // Each matrix's storage type in the file (round_to_source_dtype).
  const std::vector<std::string> types = m->MatrixTypes();
  for (int64_t l = 0; l < m->config_.layers; ++l) {
    for (const std::string& t : types) {
      auto ms = FindMatrixSource(src, m->config_, t, l);
      if (ms.ok()) m->source_dtypes_[{t, l}] = ms->dtype;
    }
  }
  return m;
}

std::string Model::SourceDType(const std::string& type, int64_t layer) const {
  auto it = source_dtypes_.find({type, layer});
  return it == source_dtypes_.end() ? std::string() : it->second;
}

std::vector<std::string> Model::MatrixTypes() const {
  std::vector<std::string> r;
  for (const std::string& t : CanonicalMatrixTypes()) {
    if (!w_->layers.empty() && w_->layers[0].w.count(t)) r.push_back(t);
  }
  // Mixture of experts: the router, then each expert matrix type for every expert.
  if (config_.experts > 0 && !w_->layers.empty()) {
    if (w_->layers[0].w.count(kRouterMatrixType)) r.push_back(kRouterMatrixType);
    for (const std::string& base : ExpertMatrixBaseTypes()) {
      for (int64_t e = 0; e < config_.experts; ++e) {
        const std::string t = ExpertMatrixType(base, e);
        if (w_->layers[0].w.count(t)) r.push_back(t);
      }
    }
  }
  return r;
}

absl::StatusOr<Tensor*> Model::Matrix(const std::string& type, int64_t layer) {
  if (layer < 0 || layer >= config_.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " is out of range [0, ", config_.layers, ")"));
  }
  auto& ws = w_->layers[layer].w;
  auto it = ws.find(type);
  if (it == ws.end()) {
    return absl::NotFoundError(absl::StrCat("matrix type '", type, "' does not exist in a ",
                                            config_.model_type, " model"));
  }
  return &it->second;
}

absl::Status Model::SetLowRank(const std::string& type, int64_t layer, Tensor us, Tensor v) {
  LASERD_ASSIGN_OR_RETURN(Tensor * w, Matrix(type, layer));
  if (us.rows() != w->rows() || v.rows() != w->cols() || us.cols() != v.cols() || us.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "low-rank factors [", us.rows(), ", ", us.cols(), "] and [", v.rows(), ", ", v.cols(),
        "] do not fit ", type, " of layer ", layer, " [", w->rows(), ", ", w->cols(), "]"));
  }
  w_->layers[layer].lowrank[type] = {std::move(us), std::move(v)};
  return absl::OkStatus();
}

void Model::ClearLowRank(const std::string& type, int64_t layer) {
  if (layer >= 0 && layer < static_cast<int64_t>(w_->layers.size())) {
    w_->layers[layer].lowrank.erase(type);
  }
}

bool Model::HasLowRank(const std::string& type, int64_t layer) const {
  return layer >= 0 && layer < static_cast<int64_t>(w_->layers.size()) &&
         w_->layers[layer].lowrank.count(type) > 0;
}

int64_t Model::ParameterCount() const {
  int64_t n = w_->embed.size() + w_->pos_embed.size() + w_->norm_w.size() + w_->norm_b.size();
  if (!config_.tied_embeddings) n += w_->lm_head.size() + w_->lm_head_b.size();
  for (const LayerWeights& ly : w_->layers) {
    for (const auto& [k, t] : ly.w) n += t.size();
    for (const auto& [k, t] : ly.b) n += t.size();
    n += ly.ln1_w.size() + ly.ln1_b.size() + ly.ln2_w.size() + ly.ln2_b.size();
    n += ly.post_attn_w.size() + ly.post_mlp_w.size() + ly.q_norm_w.size() + ly.k_norm_w.size();
  }
  return n;
}

absl::StatusOr<Tensor> Model::Embed(const std::vector<std::vector<int32_t>>& seqs,
                                    kernels::SeqLayout* layout) {
  std::vector<int64_t> lengths, ids, pos;
  for (const auto& s : seqs) {
    if (static_cast<int64_t>(s.size()) > config_.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("sequence of ", s.size(),
                                                     " tokens exceeds the model's context of ",
                                                     config_.max_positions));
    }
    lengths.push_back(s.size());
    for (size_t p = 0; p < s.size(); ++p) {
      if (s[p] < 0 || s[p] >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", s[p], " is outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
      ids.push_back(s[p]);
      pos.push_back(p);
    }
  }
  *layout = kernels::SeqLayout::FromLengths(lengths);
  return EmbedRows(ids, pos);
}

Tensor Model::EmbedRows(const std::vector<int64_t>& ids, const std::vector<int64_t>& pos) {
  Tensor h = backend_->Empty(ids.size(), config_.hidden);
  backend_->GatherRows(w_->embed, ids, &h);
  if (config_.arch->embed_scaled) {
    backend_->Scale(&h, static_cast<float>(std::sqrt(static_cast<double>(config_.hidden))));
  }
  if (!w_->pos_embed.empty()) {
    Tensor p = backend_->Empty(ids.size(), config_.hidden);
    backend_->GatherRows(w_->pos_embed, pos, &p);
    backend_->Add(p, &h);
  }
  return h;
}

Tensor Model::EmbedScore(const ScoreLayout& p) {
  std::vector<int64_t> ids(p.tokens.begin(), p.tokens.end());
  return EmbedRows(ids, RowPositions(p));
}

void Model::Norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
  if (config_.arch->norm == NormKind::kRms) {
    backend_->RmsNorm(x, w, config_.norm_eps, y);
  } else {
    backend_->LayerNorm(x, w, b.empty() ? nullptr : &b, config_.norm_eps, y);
  }
}

void Model::RunLayers(Tensor* h, const kernels::SeqLayout& layout, int64_t from, int64_t to,
                      const std::vector<int64_t>* keep, KvCache* kv) {
  const ModelConfig& c = config_;
  kernels::Backend* be = backend_;
  const int64_t n = h->rows(), d = c.hidden;
  if (n == 0 || from >= to) {
    if (keep != nullptr) {
      Tensor hk = be->Empty(keep->size(), d);
      be->GatherRows(*h, *keep, &hk);
      *h = std::move(hk);
    }
    return;
  }
  const int64_t q_out = c.heads * c.head_dim, kv_out = c.kv_heads * c.head_dim;
  Tensor a = be->Empty(n, d), q = be->Empty(n, q_out), k = be->Empty(n, kv_out),
         v = be->Empty(n, kv_out), ctx = be->Empty(n, q_out);
  // MLP scratch, sized for every row (or for the kept rows only when every
  // layer that runs here is the last one).
  const bool only_kept = keep != nullptr && from == to - 1;
  const int64_t mlp_rows = only_kept ? static_cast<int64_t>(keep->size()) : n;
  const bool moe = c.experts > 0;  // MixtureOfExperts allocates its own scratch
  Tensor g = moe ? Tensor() : be->Empty(mlp_rows, c.intermediate);
  const bool gated = c.arch->gated_mlp;
  Tensor u = gated && !moe ? be->Empty(mlp_rows, c.intermediate) : Tensor();
  const float scale = c.attn_scale > 0.0 ? static_cast<float>(c.attn_scale)
                                         : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  auto bias = [](const LayerWeights& ly, const std::string& t) -> const Tensor* {
    auto it = ly.b.find(t);
    return it == ly.b.end() ? nullptr : &it->second;
  };
  // y (+)= x · Wᵀ + b, or (x · v) · usᵀ + b under a low-rank override.
  auto linear = [&](const LayerWeights& ly, const std::string& t, const Tensor& x, Tensor* y,
                    bool acc) {
    auto lr = ly.lowrank.find(t);
    if (lr == ly.lowrank.end()) {
      be->Linear(x, ly.w.at(t), bias(ly, t), y, acc);
      return;
    }
    const auto& [us, v] = lr->second;
    Tensor xv = be->Empty(x.rows(), v.cols());
    be->MatMul(x, v, &xv);
    be->Linear(xv, us, bias(ly, t), y, acc);
  };
  // The rest of a layer once its attention context is known, on the rows of
  // `res` (the residual stream, updated in place). `ln1` holds those rows'
  // input-norm output, which the MLP reads again when it has no norm of its
  // own; otherwise it is overwritten with the MLP's input norm.
  auto finish = [&](const LayerWeights& ly, const Tensor& ctx_rows, Tensor* ln1, Tensor* res) {
    // MLP input: sequential blocks normalise the updated residual; parallel
    // blocks normalise the same input (or reuse the attention's norm).
    const Tensor* mlp_in = ln1;
    if (c.parallel_residual) {
      if (!ly.ln2_w.empty()) Norm(*res, ly.ln2_w, ly.ln2_b, ln1);
      linear(ly, "attn.o", ctx_rows, res, /*acc=*/true);
    } else if (!ly.post_attn_w.empty()) {
      // Sandwich: the attention output is normalised before it is added.
      Tensor o = be->Empty(res->rows(), d);
      linear(ly, "attn.o", ctx_rows, &o, false);
      Norm(o, ly.post_attn_w, Tensor(), &o);
      be->Add(o, res);
      Norm(*res, ly.ln2_w, ly.ln2_b, ln1);
    } else {
      linear(ly, "attn.o", ctx_rows, res, /*acc=*/true);
      Norm(*res, ly.ln2_w, ly.ln2_b, ln1);
    }
    if (c.experts > 0) {
      MixtureOfExperts(ly, *mlp_in, res, linear);
      return;
    }
    Tensor gg = g.rows() == res->rows() ? g : be->Empty(res->rows(), c.intermediate);
    linear(ly, "mlp.in", *mlp_in, &gg, false);
    if (gated) {
      Tensor uu = u.rows() == res->rows() ? u : be->Empty(res->rows(), c.intermediate);
      linear(ly, "mlp.up", *mlp_in, &uu, false);
      be->GatedActivate(&gg, uu, c.act);
    } else {
      be->Activate(&gg, c.act);
    }
    if (!ly.post_mlp_w.empty()) {
      Tensor o = be->Empty(res->rows(), d);
      linear(ly, "mlp.out", gg, &o, false);
      Norm(o, ly.post_mlp_w, Tensor(), &o);
      be->Add(o, res);
    } else {
      linear(ly, "mlp.out", gg, res, /*acc=*/true);
    }
  };
  for (int64_t i = from; i < to; ++i) {
    const LayerWeights& ly = w_->layers[i];
    Norm(*h, ly.ln1_w, ly.ln1_b, &a);
    // Attention, over every row (the kept rows attend to all of them).
    linear(ly, "attn.q", a, &q, false);
    linear(ly, "attn.k", a, &k, false);
    linear(ly, "attn.v", a, &v, false);
    // q/k norms: per head (Qwen3, Gemma 3), q and k viewed as
    // [n * heads, head_dim]; or over each row's whole projection (OLMoE).
    const bool whole = c.arch->qk_norm_whole;
    if (!ly.q_norm_w.empty()) {
      Tensor qh = whole ? q : q.Reshaped(n * c.heads, c.head_dim);
      Norm(qh, ly.q_norm_w, Tensor(), &qh);
    }
    if (!ly.k_norm_w.empty()) {
      Tensor kh = whole ? k : k.Reshaped(n * c.kv_heads, c.head_dim);
      Norm(kh, ly.k_norm_w, Tensor(), &kh);
    }
    const bool sliding = i < static_cast<int64_t>(c.layer_sliding.size()) && c.layer_sliding[i];
    if (c.rotary_dim > 0 && !w_->inv_freq.empty()) ApplyRope(&q, &k, layout, sliding);
    kernels::AttentionParams ap;
    ap.scale = scale;
    ap.window = sliding ? c.sliding_window : 0;
    ap.softcap = static_cast<float>(c.attn_softcap);
    if (kv != nullptr) {
      Tensor kd = kv->k[i].RowRange(kv->write_at, n), vd = kv->v[i].RowRange(kv->write_at, n);
      be->Copy(k, &kd);
      be->Copy(v, &vd);
    }
    if (kv != nullptr && !kv->key_offsets.empty()) {
      be->AttentionRows(q, kv->k[i], kv->v[i], kv->key_offsets, kv->keys, c.heads, c.kv_heads,
                        c.head_dim, ap, &ctx);
    } else {
      be->Attention(q, k, v, layout, c.heads, c.kv_heads, c.head_dim, ap, &ctx);
    }
    if (keep != nullptr && i == to - 1) {
      // Last layer: nothing after it reads the other rows.
      const int64_t m = static_cast<int64_t>(keep->size());
      Tensor hk = be->Empty(m, d), ck = be->Empty(m, q_out), ak = be->Empty(m, d);
      be->GatherRows(*h, *keep, &hk);
      be->GatherRows(ctx, *keep, &ck);
      be->GatherRows(a, *keep, &ak);
      finish(ly, ck, &ak, &hk);
      *h = std::move(hk);
    } else {
      finish(ly, ctx, &a, h);
    }
  }
}

void Model::ApplyRope(Tensor* q, Tensor* k, const kernels::SeqLayout& layout, bool sliding) {
  const ModelConfig& c = config_;
  const kernels::RopeStyle style = c.arch->rope_style;
  auto rope = [&](const kernels::SeqLayout& l, const std::vector<float>& inv_freq, float factor) {
    backend_->Rope(q, l, c.heads, c.head_dim, c.rotary_dim, inv_freq, style, factor);
    backend_->Rope(k, l, c.kv_heads, c.head_dim, c.rotary_dim, inv_freq, style, factor);
  };
  // Sliding-window layers with their own base (Gemma 3): unscaled.
  if (sliding && !w_->inv_freq_local.empty()) {
    rope(layout, w_->inv_freq_local, 1.0f);
    return;
  }
  if (!RopeDependsOnLength(c.rope)) {
    rope(layout, w_->inv_freq, w_->rope_attention_factor);
    return;
  }
  // Each sequence with the frequencies of its own length: one Rope per class
  // of lengths, over a layout naming that class's sequences. A prefix tree
  // (not made for these models, see PrepareScore) is taken as one sequence as
  // long as its deepest row.
  if (layout.is_tree()) {
    int64_t len = 0;
    for (int64_t p : layout.position) len = std::max(len, p + 1);
    RopeFrequencies f = ComputeRopeFrequencies(c.rope, c.rope_theta, c.rotary_dim, len);
    rope(layout, f.inv_freq, f.attention_factor);
    return;
  }
  std::map<int64_t, kernels::SeqLayout> classes;
  for (size_t s = 0; s < layout.lengths.size(); ++s) {
    kernels::SeqLayout& l = classes[RopeLengthClass(c.rope, layout.lengths[s])];
    l.offsets.push_back(layout.offsets[s]);
    l.lengths.push_back(layout.lengths[s]);
  }
  for (const auto& [cls, l] : classes) {
    RopeFrequencies f = ComputeRopeFrequencies(c.rope, c.rope_theta, c.rotary_dim, l.lengths[0]);
    rope(l, f.inv_freq, f.attention_factor);
  }
}

void Model::MixtureOfExperts(const LayerWeights& ly, const Tensor& x, Tensor* res,
                             const LinearFn& linear) {
  const ModelConfig& c = config_;
  kernels::Backend* be = backend_;
  const int64_t n = x.rows(), d = c.hidden, E = c.experts, K = c.experts_per_token;
  // Routing on the host: softmax over the router logits, the K most probable
  // experts (ties to the lower index), renormalised when norm_topk_prob.
  Tensor logits_t = be->Empty(n, E);
  linear(ly, kRouterMatrixType, x, &logits_t, false);
  std::vector<float> logits(n * E);
  be->ToHost(logits_t, logits.data());
  std::vector<std::vector<int64_t>> rows(E);
  std::vector<std::vector<float>> weights(E);
  std::vector<float> p(E);
  std::vector<int64_t> order(E);
  for (int64_t r = 0; r < n; ++r) {
    const float* l = &logits[r * E];
    const float mx = *std::max_element(l, l + E);
    float sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    float top = 0;
    for (int64_t j = 0; j < K; ++j) top += p[order[j]];
    for (int64_t j = 0; j < K; ++j) {
      const int64_t e = order[j];
      rows[e].push_back(r);
      weights[e].push_back(c.norm_topk_prob ? p[e] / top : p[e]);
    }
  }
  // Each expert on its tokens; the weighted outputs summed in expert order.
  std::vector<float> out(n * d, 0.0f), ye;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t m = static_cast<int64_t>(rows[e].size());
    if (m == 0) continue;
    const int64_t im = c.moe_intermediate;
    Tensor xe = be->Empty(m, d), ge = be->Empty(m, im), ue = be->Empty(m, im), oe = be->Empty(m, d);
    be->GatherRows(x, rows[e], &xe);
    linear(ly, ExpertMatrixType("moe.in", e), xe, &ge, false);
    linear(ly, ExpertMatrixType("moe.up", e), xe, &ue, false);
    be->GatedActivate(&ge, ue, c.act);
    linear(ly, ExpertMatrixType("moe.out", e), ge, &oe, false);
    ye.resize(m * d);
    be->ToHost(oe, ye.data());
    for (int64_t j = 0; j < m; ++j) {
      float* o = &out[rows[e][j] * d];
      const float w = weights[e][j];
      for (int64_t i = 0; i < d; ++i) o[i] += ye[j * d + i] * w;
    }
  }
  // A shared expert (the dense MLP) scaled by sigmoid(shared gate · x), added
  // after the experts' sum as transformers adds it.
  if (ly.w.count("mlp.in")) {
    const int64_t im = c.intermediate;
    Tensor gs = be->Empty(n, im), us = be->Empty(n, im), os = be->Empty(n, d),
           gate = be->Empty(n, 1);
    linear(ly, "mlp.in", x, &gs, false);
    linear(ly, "mlp.up", x, &us, false);
    be->GatedActivate(&gs, us, c.act);
    linear(ly, "mlp.out", gs, &os, false);
    linear(ly, kSharedExpertGateType, x, &gate, false);
    std::vector<float> so(n * d), g(n);
    be->ToHost(os, so.data());
    be->ToHost(gate, g.data());
    for (int64_t r = 0; r < n; ++r) {
      const float sg = 1.0f / (1.0f + std::exp(-g[r]));
      for (int64_t i = 0; i < d; ++i) out[r * d + i] += sg * so[r * d + i];
    }
  }
  Tensor moe = be->FromHost(out.data(), n, d);
  be->Add(moe, res);
}

Tensor Model::Head(const Tensor& h, const std::vector<int64_t>& rows) {
  kernels::Backend* be = backend_;
  const int64_t d = config_.hidden;
  Tensor sel = be->Empty(rows.size(), d);
  be->GatherRows(h, rows, &sel);
  Tensor normed = be->Empty(rows.size(), d);
  Norm(sel, w_->norm_w, w_->norm_b, &normed);
  Tensor logits = be->Empty(rows.size(), config_.vocab_size);
  be->Linear(normed, w_->lm_head, w_->lm_head_b.empty() ? nullptr : &w_->lm_head_b, &logits);
  if (config_.final_softcap > 0.0) be->SoftCap(&logits, static_cast<float>(config_.final_softcap));
  return logits;
}

absl::StatusOr<Model::ScoreLayout> Model::PrepareScore(const std::vector<ScoreRequest>& batch,
                                                       bool share_prefixes) const {
  // A shared prefix row would need different rotary frequencies in sequences
  // of different lengths under length-dependent scaling: no prefix tree there.
  return LayOutScoreBatch(
      batch, config_.vocab_size, config_.max_positions,
      share_prefixes && backend_->SupportsPrefixTree() && !RopeDependsOnLength(config_.rope));
}

std::vector<std::vector<TokenScore>> Model::ScoreFrom(Tensor h, const ScoreLayout& p,
                                                      int64_t from) {
  // After this, h holds the final residual stream of the distinct scored rows.
  RunLayers(&h, p.layout, from, config_.layers, &p.distinct_rows);
  // Index into h of every scored entry.
  std::vector<int64_t> at(p.rows.size());
  for (size_t j = 0; j < p.rows.size(); ++j) {
    at[j] = std::lower_bound(p.distinct_rows.begin(), p.distinct_rows.end(), p.rows[j]) -
            p.distinct_rows.begin();
  }
  // The LM head runs once per distinct row, in chunks whose logits take at
  // most 256 MiB (larger GEMMs run closer to the machine's peak); every entry
  // whose row is in the chunk is scored from its logits.
  const int64_t kChunk = std::max<int64_t>(1, (int64_t{256} << 20) / (4 * config_.vocab_size));
  const int64_t m = static_cast<int64_t>(p.distinct_rows.size());
  std::vector<kernels::Backend::RowScore> scores(p.rows.size());
  std::vector<std::vector<size_t>> entries_of(m);
  for (size_t j = 0; j < at.size(); ++j) entries_of[at[j]].push_back(j);
  for (int64_t s = 0; s < m; s += kChunk) {
    const int64_t e = std::min(m, s + kChunk);
    std::vector<int64_t> r(e - s);
    for (int64_t i = s; i < e; ++i) r[i - s] = i;
    Tensor logits = Head(h, r);
    std::vector<int64_t> lrow;  // logits row of each entry, in entry order
    std::vector<int32_t> g;
    std::vector<size_t> which;
    for (int64_t i = s; i < e; ++i) {
      for (size_t j : entries_of[i]) {
        lrow.push_back(i - s);
        g.push_back(p.gold[j]);
        which.push_back(j);
      }
    }
    if (static_cast<int64_t>(lrow.size()) != e - s) {  // some row scored twice
      Tensor dup = backend_->Empty(lrow.size(), logits.cols());
      backend_->GatherRows(logits, lrow, &dup);
      logits = std::move(dup);
    }
    auto sc = backend_->ScoreRows(logits, g);
    for (size_t k = 0; k < which.size(); ++k) scores[which[k]] = sc[k];
  }
  return ScoresPerRequest(p, scores);
}

absl::StatusOr<std::vector<std::vector<TokenScore>>> Model::Score(
    const std::vector<ScoreRequest>& batch, bool share_prefixes) {
  LASERD_ASSIGN_OR_RETURN(const ScoreLayout p, PrepareScore(batch, share_prefixes));
  return ScoreFrom(EmbedScore(p), p, 0);
}

absl::StatusOr<std::vector<float>> Model::Logits(const std::vector<std::vector<int32_t>>& seqs) {
  kernels::SeqLayout layout;
  LASERD_ASSIGN_OR_RETURN(Tensor h, Embed(seqs, &layout));
  RunLayers(&h, layout, 0, config_.layers);
  std::vector<int64_t> rows(h.rows());
  for (int64_t i = 0; i < h.rows(); ++i) rows[i] = i;
  Tensor logits = Head(h, rows);
  std::vector<float> out(logits.size());
  backend_->ToHost(logits, out.data());
  return out;
}

}  // namespace laserd::model
