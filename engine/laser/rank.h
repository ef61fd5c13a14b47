// Kept rank and matrix-type names of a LASER intervention: an edit
// (type, layer, ρ) keeps k = max(1, floor(min(out, in) · ρ)) singular values,
// and a type is a canonical name or one of the paper's aliases.
#ifndef LASERD_ENGINE_LASER_RANK_H_
#define LASERD_ENGINE_LASER_RANK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace laserd::laser {

// k = floor(min(m, n) · ρ), at least 1, for ρ ∈ (0, 1] (the product taken in
// double); INVALID_ARGUMENT naming `rho` otherwise, or for an empty matrix.
absl::StatusOr<int64_t> KeptRankFromRho(int64_t m, int64_t n, double rho);

// The paper code's form: k = int(min(m, n) * ((10 - rate) * 0.1)) evaluated
// exactly as Python does in IEEE double (rate 9.9 keeps 40 of 4096, 7 of 768),
// at least 1. rate ∈ [0, 10) (ρ = 1 − rate/10 ∈ (0, 1]); INVALID_ARGUMENT
// naming `rate` otherwise.
absl::StatusOr<int64_t> KeptRankFromRate(int64_t m, int64_t n, double rate);

// Canonical type of one name: a canonical name itself or one of the paper's
// aliases (fc_in → mlp.in, fc_up → mlp.up, fc_out → mlp.out, q_proj → attn.q,
// k_proj → attn.k, v_proj → attn.v, out_proj → attn.o), or a mixture-of-
// experts matrix: moe.router, or one expert's moe.in[e] / moe.up[e] /
// moe.out[e]. INVALID_ARGUMENT listing the valid names otherwise (groups,
// and moe.in etc. without an expert index, are not single types).
absl::StatusOr<std::string> CanonicalMatrixType(const std::string& name);

// The paper's alias of a canonical type (mlp.in → fc_in, …, attn.o →
// out_proj); empty for a name that has none.
std::string PaperAlias(const std::string& canonical);

// Expands names (canonical, aliases, and the groups `mlp`, `attn`, `moe`,
// `all`, and an expert matrix type without an index, e.g. `moe.in`: that
// matrix of every expert) against the types a model has (`available`,
// Model::MatrixTypes() order). The result is deduplicated and in the order of
// `available`. A group takes the members
// the model has; a single type the model lacks (mlp.up in GPT-2) is
// INVALID_ARGUMENT naming the model's types; an unknown name is
// INVALID_ARGUMENT listing every valid name.
absl::StatusOr<std::vector<std::string>> ExpandMatrixTypes(
    const std::vector<std::string>& names, const std::vector<std::string>& available);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_RANK_H_
