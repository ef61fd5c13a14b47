// The paper method's decompositions: the LASER paper's code calls
// torch.svd_lowrank(W, q=k, niter) afresh for every kept rank k, each with
// new random draws, so in a sweep with svd.method = paper every (matrix, rank)
// gets its own randomized SVD to exactly rank k, with its own sketch, instead
// of the prefix of one decomposition to the largest rank (what every other
// method does). The sketch's seed is derived from the sweep's seed, the
// matrix and the rank (PaperSeed), so a rank's W_k does not depend on which
// other ranks are swept, on sharding, on resuming or on composition.
#ifndef LASERD_ENGINE_LASER_PAPER_SVD_H_
#define LASERD_ENGINE_LASER_PAPER_SVD_H_

#include <cstdint>
#include <string>

#include "kernels/svd_plan.h"

namespace laserd::laser {

// The seed of the paper method's sketch for matrix `type` (canonical, e.g.
// "mlp.in" or "moe.in[3]") of `layer` kept to rank k: the 64-bit FNV-1a hash
// (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of the ASCII bytes
// "<seed>/<type>/<layer>/<k>" with the integers in decimal, e.g.
// "0/mlp.in/3/57".
uint64_t PaperSeed(uint64_t seed, const std::string& type, int64_t layer, int64_t k);

// The options that decompose (type, layer) to rank k: `opts` itself, except
// that for the paper method the seed is PaperSeed(opts.seed, type, layer, k).
kernels::SvdOptions OptionsForRank(const kernels::SvdOptions& opts, const std::string& type,
                                   int64_t layer, int64_t k);

// Whether `opts` decomposes every rank separately (the paper method).
inline bool PerRankDecomposition(const kernels::SvdOptions& opts) {
  return opts.method == kernels::SvdMethod::kPaper;
}

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_PAPER_SVD_H_
