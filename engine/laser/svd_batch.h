// The decompositions of a sweep's matrices, several at a time: the first time
// a matrix's truncated SVD is needed, it is computed together with later
// same-shaped matrices of the same runner (e.g. every layer's mlp.in) in one
// kernels::DecomposeOnBackend call — strided-batched GEMMs on a GPU, a loop
// on the CPU — as long as their results and working set fit a memory budget;
// the others' results wait until their matrices come up. Every result is the
// same bits as a decomposition of its matrix alone (each depends only on the
// unedited matrix, the options and the seed).
//
// The paper method (engine/laser/paper_svd.h) is decomposed per rank: one
// randomized SVD to exactly k for every distinct swept rank k of the matrix,
// each with its own seed, one matrix at a time (never batched: the seeds
// differ between matrices).
#ifndef LASERD_ENGINE_LASER_SVD_BATCH_H_
#define LASERD_ENGINE_LASER_SVD_BATCH_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/laser/sweep.h"
#include "engine/model/model.h"
#include "kernels/svd.h"

namespace laserd::laser {

// The truncation-error ranks of a matrix's ρ/rate rank reductions, in their
// order (also those a resume skips, so that a resumed run gives the same
// bits). They are the matrix's first interventions.
std::vector<int64_t> SweptRanks(const PlanMatrix& m);

// A matrix's decompositions for its swept ranks.
struct MatrixSvds {
  // One decomposition to k_max (every rank a prefix of it), or, for the
  // paper method, one to each distinct rank.
  std::vector<kernels::TruncatedSvd> svds;
  // Per SweptRanks entry: the index in svds of its decomposition, and its
  // relative truncation error.
  std::vector<size_t> svd_of;
  std::vector<double> errors;
};

class SvdBatcher {
 public:
  // Up to `max` more matrices to decompose with `m` (same shape), in the
  // order this runner will run them; they become this runner's to run.
  using MoreFn = std::function<std::vector<const PlanMatrix*>(const PlanMatrix& m, size_t max)>;

  // `model` must outlive the batcher and be unedited at every Take.
  // budget_bytes <= 0: one matrix at a time.
  SvdBatcher(model::Model* model, const kernels::SvdOptions& opts, int64_t budget_bytes)
      : model_(model), opts_(opts), budget_bytes_(budget_bytes) {}

  // m's decomposition to m.k_max with the errors of SweptRanks(m) (m must
  // have ρ/rate interventions): from an earlier batch, or computed now with
  // more(m, n) for the n the budget allows. `seconds` gets m's share of its
  // batch's time (the batch's time over its size). For the paper method, one
  // decomposition per distinct rank, computed now (`seconds`: all of them).
  absl::StatusOr<MatrixSvds> Take(const PlanMatrix& m, const MoreFn& more, double* seconds);
  // Drops the decompositions not taken yet.
  void Clear() { ready_.clear(); }
  size_t pending() const { return ready_.size(); }

 private:
  struct Ready {
    kernels::BackendSvd svd;
    double seconds = 0;
  };
  model::Model* model_;
  kernels::SvdOptions opts_;
  int64_t budget_bytes_;
  std::map<std::pair<std::string, int64_t>, Ready> ready_;
};

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_SVD_BATCH_H_
