// The Gaussian sketch Ω of the randomized SVDs: standard normal variates from
// std::mt19937_64(seed) through a Box–Muller transform written here
// (std::normal_distribution's algorithm is implementation-defined). The
// stream is prefix-stable (a longer draw extends a shorter one), so Ω
// [n, l], filled column by column, is the first n·l values whatever the
// shape, and one draw serves every matrix of a sweep (one seed).
#ifndef LASERD_KERNELS_GAUSSIAN_SKETCH_H_
#define LASERD_KERNELS_GAUSSIAN_SKETCH_H_

#include <cstdint>
#include <memory>
#include <vector>

namespace laserd::kernels {

// out[i] for i in [0, count): pair j (values 2j, 2j+1) from the engine's words
// 2j (u1 in (0, 1]) and 2j+1 (u2 in [0, 1)): r·cos(2πu2), r·sin(2πu2) with
// r = sqrt(−2 ln u1), in double, rounded to float. The words are drawn in
// order on the calling thread; the transform runs on `threads` threads (0:
// several for long draws on a machine with 4 or more cores, else one), each
// pair independently, so the values do not depend on the split.
void GaussianFill(uint64_t seed, float* out, int64_t count, int threads = 0);

// The first `count` values (at least; the vector may be longer) of the stream
// of `seed`, shared: the most recent seed's longest draw is kept (up to 2^26
// values, 256 MiB), so repeated decompositions with one seed draw it once.
// Thread-safe.
std::shared_ptr<const std::vector<float>> GaussianSketch(uint64_t seed, int64_t count);

}  // namespace laserd::kernels

#endif  // LASERD_KERNELS_GAUSSIAN_SKETCH_H_
