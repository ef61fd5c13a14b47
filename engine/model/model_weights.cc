#include "engine/model/model_weights.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/matrix_layout.h"

namespace laserd::model {
namespace {

using formats::FileFormat;
using kernels::Tensor;

// llama.cpp's converter permutes the rows of Q and K for its rotary layout;
// undo it so the matrices are exactly the Hugging Face ones.
std::vector<float> UnpermuteGgufRotary(const std::vector<float>& w, int64_t heads, int64_t out,
                                       int64_t in) {
  const int64_t hd = out / heads, half = hd / 2;
  std::vector<float> r(w.size());
  // GGUF row (h, i, j) with i in [0, half), j in {0,1} came from HF row (h, j, i).
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t src = h * hd + i * 2 + j, dst = h * hd + j * half + i;
        std::copy(w.begin() + src * in, w.begin() + (src + 1) * in, r.begin() + dst * in);
      }
  return r;
}

// Loads tensors by the architecture's names, checking shapes.
class WeightLoader {
 public:
  WeightLoader(const formats::WeightSource& src, kernels::Backend* be, const ModelConfig& c)
      : src_(src),
        be_(be),
        c_(c),
        arch_(*c.arch),
        naming_(arch_.naming(src.format())),
        prefix_(BodyPrefix(arch_, src)) {
    const ModelType* t = arch_.FindModelType(src.format(), c.model_type);
    rotary_permuted_ = src.format() == FileFormat::kGguf && t && t->gguf_rotary_permuted;
  }

  std::string Name(TensorKind kind, int64_t layer = -1, bool bias = false) const {
    return TensorName(arch_, src_.format(), prefix_, {kind, layer, {}, bias});
  }

  // A tensor of shape `want`, [rows, cols]; a 1-D tensor [n] is taken as [1, n].
  absl::StatusOr<Tensor> Load(const std::string& name, std::vector<int64_t> want) {
    LASERD_ASSIGN_OR_RETURN(formats::TensorF32 t, src_.LoadF32(name));
    if (t.shape != want &&
        !(want.size() == 2 && want[0] == 1 && t.shape.size() == 1 && t.shape[0] == want[1])) {
      return BadShape(name, t.shape, want);
    }
    return be_->FromHost(t.data.data(), want[0], want[1]);
  }

  // GGUF's rotary factor tensors (llama3 as rope_freqs, longrope as
  // rope_factors_long / _short) into c->rope.
  absl::Status LoadRopeTensors(ModelConfig* c) {
    const int64_t half = c->rotary_dim / 2;
    auto factors = [&](TensorKind kind, std::vector<double>* out) -> absl::StatusOr<bool> {
      const std::string name = Name(kind);
      if (name.empty() || !src_.Has(name)) return false;
      LASERD_ASSIGN_OR_RETURN(Tensor t, Load(name, {1, half}));
      std::vector<float> host(half);
      be_->ToHost(t, host.data());
      out->assign(host.begin(), host.end());
      for (double v : *out) {
        if (!(v > 0)) {
          return absl::InvalidArgumentError(
              absl::StrCat(src_.path(), ": tensor ", name, " holds a non-positive factor"));
        }
      }
      return true;
    };
    LASERD_RETURN_IF_ERROR(factors(TensorKind::kRopeFreqs, &c->rope.freq_factors).status());
    std::vector<double> lf, sf;
    LASERD_ASSIGN_OR_RETURN(bool has_long, factors(TensorKind::kRopeFactorsLong, &lf));
    LASERD_ASSIGN_OR_RETURN(bool has_short, factors(TensorKind::kRopeFactorsShort, &sf));
    if (has_long != has_short) {
      return absl::InvalidArgumentError(absl::StrCat(
          src_.path(), ": longrope needs both rope_factors_long and rope_factors_short"));
    }
    if (has_long) {
      if (c->rope.type != RopeType::kDefault) {
        return absl::InvalidArgumentError(
            absl::StrCat(src_.path(), ": longrope factor tensors with rope scaling '",
                         RopeTypeName(c->rope.type), "'"));
      }
      c->rope.type = RopeType::kLongRope;
      c->rope.long_factor = std::move(lf);
      c->rope.short_factor = std::move(sf);
    } else if (c->rope.type == RopeType::kDefault) {
      c->rope.attention_factor = 1.0;
    }
    return absl::OkStatus();
  }

  // A norm's weight (and bias, where the architecture has one), [1, d].
  // `dim`: the norm's width (0: hidden). The architecture's
  // norm_weight_offset is added to the weight.
  absl::Status LoadNorm(TensorKind kind, const NormTensor& n, int64_t layer, Tensor* w, Tensor* b,
                        int64_t dim = 0) {
    if (n.name.empty()) return absl::OkStatus();
    if (dim == 0) dim = c_.hidden;
    if (naming_.norm_weight_offset != 0.0f) {
      const std::string name = Name(kind, layer);
      LASERD_ASSIGN_OR_RETURN(formats::TensorF32 t, src_.LoadF32(name));
      if (t.shape != std::vector<int64_t>{dim}) return BadShape(name, t.shape, {dim});
      for (float& x : t.data) x += naming_.norm_weight_offset;  // fp32, as (1.0 + w.float())
      *w = be_->FromHost(t.data.data(), 1, dim);
    } else {
      LASERD_ASSIGN_OR_RETURN(*w, Load(Name(kind, layer), {1, dim}));
    }
    if (n.bias) {
      LASERD_ASSIGN_OR_RETURN(*b, Load(Name(kind, layer, true), {1, c_.hidden}));
    }
    return absl::OkStatus();
  }

  // Every matrix (and bias) of the stored tensor `t` of layer `i`.
  absl::Status LoadMatrices(const MatrixTensor& t, int64_t i, LayerWeights* ly) {
    const std::string base = prefix_ + ExpandLayer(t.name, i);
    const FusedRows fr = FusedRowsOf(c_, t);
    for (size_t j = 0; j < t.types.size(); ++j) {
      if (fr.rows[j] * fr.blocks != MatrixShape(c_, t.types[j]).first) {
        return absl::InvalidArgumentError(absl::StrCat(
            src_.path(), ": ", t.types[j], " does not split evenly over the heads of ", base));
      }
    }
    const std::vector<int64_t> stored = StoredShape(c_, t);
    LASERD_ASSIGN_OR_RETURN(formats::TensorF32 w, src_.LoadF32(base + ".weight"));
    // A one-row matrix may be stored 1-D (llama.cpp's ffn_gate_inp_shexp, {n_embd}).
    const bool one_row = stored.size() == 2 && stored[0] == 1 && w.shape.size() == 1 &&
                         w.shape[0] == stored[1] && t.layout == MatrixLayout::kLinear;
    if (w.shape != stored && !one_row) return BadShape(base + ".weight", w.shape, stored);
    std::vector<std::vector<float>> ws = SplitStored(c_, t, std::move(w.data)), bs;
    if (t.bias_required || src_.Has(base + ".bias")) {
      LASERD_ASSIGN_OR_RETURN(formats::TensorF32 b, src_.LoadF32(base + ".bias"));
      if (b.shape != std::vector<int64_t>{fr.total} &&
          b.shape != std::vector<int64_t>{1, fr.total}) {
        return BadShape(base + ".bias", b.shape, {fr.total});
      }
      bs = SplitStoredBias(c_, t, b.data);
    }
    for (size_t j = 0; j < t.types.size(); ++j) {
      const std::string& type = t.types[j];
      const auto [out, in] = MatrixShape(c_, type);
      if (rotary_permuted_ && (type == "attn.q" || type == "attn.k")) {
        ws[j] = UnpermuteGgufRotary(ws[j], type == "attn.q" ? c_.heads : c_.kv_heads, out, in);
      }
      ly->w[type] = be_->FromHost(ws[j].data(), out, in);
      // Biases stay in file order: laserd export refuses rotary-permuted biases.
      if (!bs.empty()) ly->b[type] = be_->FromHost(bs[j].data(), 1, out);
    }
    return absl::OkStatus();
  }

  // Experts carry no biases in any supported family: refuse one by name.
  absl::Status RefuseExpertBias(const std::string& weight_name) const {
    const std::string bias = weight_name.substr(0, weight_name.size() - 7) + ".bias";
    if (!src_.Has(bias)) return absl::OkStatus();
    return absl::UnimplementedError(
        absl::StrCat(src_.path(), ": expert bias ", bias, " is not supported"));
  }

  // Every expert's matrices of layer `i` (mixture of experts), keyed
  // ExpertMatrixType(type, e).
  absl::Status LoadExperts(int64_t i, LayerWeights* ly) {
    // Stacked tensors [experts, out, in] (llama.cpp's ffn_*_exps).
    for (const MatrixTensor& t : naming_.expert_matrices) {
      if (!StacksExperts(t) || c_.experts == 0) continue;
      const std::string name =
          TensorName(arch_, src_.format(), prefix_, {TensorKind::kMatrix, i, t.types, false});
      const auto [out, in] = MatrixShape(c_, ExpertMatrixType(t.types[0], 0));
      LASERD_ASSIGN_OR_RETURN(formats::TensorF32 w, src_.LoadF32(name));
      const std::vector<int64_t> want = {c_.experts, out, in};
      if (w.shape != want) return BadShape(name, w.shape, want);
      for (int64_t e = 0; e < c_.experts; ++e) {
        ly->w[ExpertMatrixType(t.types[0], e)] =
            be_->FromHost(w.data.data() + e * out * in, out, in);
      }
      LASERD_RETURN_IF_ERROR(RefuseExpertBias(name));
    }
    for (int64_t e = 0; e < c_.experts; ++e) {
      for (const MatrixTensor& t : naming_.expert_matrices) {
        if (StacksExperts(t)) continue;
        const std::string type = ExpertMatrixType(t.types[0], e);
        const std::string name =
            TensorName(arch_, src_.format(), prefix_, {TensorKind::kMatrix, i, {type}, false});
        const auto [out, in] = MatrixShape(c_, type);
        LASERD_ASSIGN_OR_RETURN(ly->w[type], Load(name, {out, in}));
        LASERD_RETURN_IF_ERROR(RefuseExpertBias(name));
      }
    }
    return absl::OkStatus();
  }

  absl::Status LoadAll(ModelWeights* W, ModelConfig* c) {
    const int64_t d = c->hidden, V = c->vocab_size;
    LASERD_ASSIGN_OR_RETURN(W->embed, Load(Name(TensorKind::kEmbed), {V, d}));
    if (arch_.position == PositionKind::kLearned) {
      LASERD_ASSIGN_OR_RETURN(W->pos_embed,
                              Load(Name(TensorKind::kPosEmbed), {c->max_positions, d}));
    }
    LASERD_RETURN_IF_ERROR(
        LoadNorm(TensorKind::kFinalNorm, naming_.final_norm, -1, &W->norm_w, &W->norm_b));
    const std::string head = Name(TensorKind::kHead), head_bias = Name(TensorKind::kHead, -1, true);
    if (src_.Has(head) && !(arch_.config_ties_head && c->tied_embeddings)) {
      LASERD_ASSIGN_OR_RETURN(W->lm_head, Load(head, {V, d}));
      if (!head_bias.empty() && src_.Has(head_bias)) {
        LASERD_ASSIGN_OR_RETURN(W->lm_head_b, Load(head_bias, {1, V}));
      }
      c->tied_embeddings = false;
    } else {
      W->lm_head = W->embed;
      c->tied_embeddings = true;
    }
    W->layers.resize(c->layers);
    for (int64_t i = 0; i < c->layers; ++i) {
      LayerWeights& ly = W->layers[i];
      for (const MatrixTensor& t : naming_.matrices)
        LASERD_RETURN_IF_ERROR(LoadMatrices(t, i, &ly));
      LASERD_RETURN_IF_ERROR(LoadExperts(i, &ly));
      LASERD_RETURN_IF_ERROR(
          LoadNorm(TensorKind::kAttnNorm, naming_.attn_norm, i, &ly.ln1_w, &ly.ln1_b));
      LASERD_RETURN_IF_ERROR(
          LoadNorm(TensorKind::kMlpNorm, naming_.mlp_norm, i, &ly.ln2_w, &ly.ln2_b));
      LASERD_RETURN_IF_ERROR(LoadLayerNorms(i, &ly));
    }
    LASERD_RETURN_IF_ERROR(LoadRopeTensors(c));
    // Rotary inverse frequencies, in fp32 as torch computes them.
    if (arch_.position == PositionKind::kRotary && c->rotary_dim > 0) {
      RopeFrequencies f = ComputeRopeFrequencies(c->rope, c->rope_theta, c->rotary_dim, 1);
      W->inv_freq = std::move(f.inv_freq);
      W->rope_attention_factor = f.attention_factor;
      if (c->rope_local_theta > 0.0) {
        W->inv_freq_local =
            ComputeRopeFrequencies(RopeScaling(), c->rope_local_theta, c->rotary_dim, 1).inv_freq;
      }
    }
    return absl::OkStatus();
  }

  // Gemma's sandwich norms and the q/k norms (Qwen3, Gemma 3, OLMoE), where
  // the architecture names them and the config has them (ModelConfig::qk_norm).
  absl::Status LoadLayerNorms(int64_t i, LayerWeights* ly) {
    Tensor unused;
    LASERD_RETURN_IF_ERROR(
        LoadNorm(TensorKind::kPostAttnNorm, naming_.post_attn_norm, i, &ly->post_attn_w, &unused));
    LASERD_RETURN_IF_ERROR(
        LoadNorm(TensorKind::kPostMlpNorm, naming_.post_mlp_norm, i, &ly->post_mlp_w, &unused));
    if (!c_.qk_norm) return absl::OkStatus();
    const bool whole = arch_.qk_norm_whole;
    LASERD_RETURN_IF_ERROR(LoadNorm(TensorKind::kQNorm, naming_.q_norm, i, &ly->q_norm_w, &unused,
                                    whole ? c_.heads * c_.head_dim : c_.head_dim));
    return LoadNorm(TensorKind::kKNorm, naming_.k_norm, i, &ly->k_norm_w, &unused,
                    whole ? c_.kv_heads * c_.head_dim : c_.head_dim);
  }

 private:
  absl::Status BadShape(const std::string& name, const std::vector<int64_t>& got,
                        const std::vector<int64_t>& want) const {
    return absl::InvalidArgumentError(absl::StrCat(src_.path(), ": tensor ", name, " has shape ",
                                                   ShapeString(got), ", expected ",
                                                   ShapeString(want)));
  }

  const formats::WeightSource& src_;
  kernels::Backend* be_;
  const ModelConfig& c_;
  const Architecture& arch_;
  const TensorNaming& naming_;
  const std::string prefix_;
  bool rotary_permuted_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ModelWeights>> LoadModelWeights(const formats::WeightSource& src,
                                                               kernels::Backend* backend,
                                                               ModelConfig* c) {
  auto w = std::make_unique<ModelWeights>();
  LASERD_RETURN_IF_ERROR(WeightLoader(src, backend, *c).LoadAll(w.get(), c));
  return w;
}

}  // namespace laserd::model
