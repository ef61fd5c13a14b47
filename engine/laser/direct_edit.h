// The paper code's baseline interventions, which edit W without an SVD:
//   zero   W ← 0 (its `zero` intervention, 0.0 · W);
//   prune  its `dropout` intervention: with the entries' magnitudes |W|
//          sorted ascending into s (length N), α = s[int(f · N)] and every
//          entry with |w| ≤ α is set to 0, where f is the pruned fraction:
//          rate · 0.1 for a rate (evaluated as the paper's Python does,
//          (rate * 0.1) * N in double, truncated), 1 − ρ for a ρ. f = 0
//          (rate 0, ρ = 1) leaves W unchanged, as the paper's `if to_prune
//          != 0` does. Ties at α are all pruned, so at least int(f·N) + 1
//          entries become 0.
#ifndef LASERD_ENGINE_LASER_DIRECT_EDIT_H_
#define LASERD_ENGINE_LASER_DIRECT_EDIT_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace laserd::laser {

// What a direct edit did.
struct DirectEdit {
  int64_t zeroed = 0;           // entries set to 0 (also those already 0)
  double relative_error = 0.0;  // ‖W − W'‖_F / ‖W‖_F, in double (0 for W = 0)
};

// W ← 0.
DirectEdit ZeroInPlace(std::vector<float>* w);

// The index into |W| sorted ascending of the pruning threshold α for `count`
// entries, or -1 when nothing is pruned (f = 0). `rate` set: f = rate · 0.1
// as the paper's code computes it; otherwise f = 1 − rho.
int64_t PruneThresholdIndex(int64_t count, double rho, std::optional<double> rate);

// The paper's dropout: entries with |w| ≤ α set to 0 (see above).
DirectEdit PruneInPlace(std::vector<float>* w, double rho, std::optional<double> rate);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_DIRECT_EDIT_H_
