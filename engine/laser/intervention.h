// Applying and reverting one LASER edit W ← W_k (W's best rank-k
// approximation) of a resident model: the model stays loaded, an edit overwrites the
// matrix's storage in place, and the original is kept (on the model's
// backend) so that restoring it is a bit-exact copy.
#ifndef LASERD_ENGINE_LASER_INTERVENTION_H_
#define LASERD_ENGINE_LASER_INTERVENTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::laser {

// The weight W [out, in] of (type, layer), copied to a row-major host vector.
absl::StatusOr<std::vector<float>> MatrixToHost(model::Model* model, const std::string& type,
                                                int64_t layer);

// Truncated SVD of W(type, layer) to rank k_max (kernels::ComputeTruncatedSvd
// on a host copy).
absl::StatusOr<kernels::TruncatedSvd> DecomposeMatrix(model::Model* model, const std::string& type,
                                                      int64_t layer, int64_t k_max,
                                                      const kernels::SvdOptions& opts);

// W_k in factored form on a backend: W_k = us · vᵀ with us = U_kΣ_k [out, k]
// and v = V_k [in, k]. Factored apply computes y = (x · v) · usᵀ, i.e.
// Backend::MatMul(x, v) then Backend::Linear(·, us).
struct Factors {
  int64_t k = 0;
  kernels::Tensor us;
  kernels::Tensor v;
};

// The rank-k prefix of svd as Factors on `backend`; 1 <= k <= svd.k.
absl::StatusOr<Factors> MakeFactors(kernels::Backend* backend, const kernels::TruncatedSvd& svd,
                                    int64_t k);

// Edits matrices of one model in place and restores them. The first edit of
// a (type, layer) saves a copy of its original; Restore copies it back
// (bit-exact) and drops the copy. The destructor restores every matrix still
// edited, so an Editor leaves the model as it found it.
class Editor {
 public:
  explicit Editor(model::Model* model) : model_(model) {}
  ~Editor();
  Editor(const Editor&) = delete;
  Editor& operator=(const Editor&) = delete;

  // W(type, layer) ← us · vᵀ (dense, computed on the model's backend).
  // INVALID_ARGUMENT when the factors' shapes do not match W.
  absl::Status ApplyDense(const std::string& type, int64_t layer, const Factors& f);
  // Same from the rank-k prefix of a decomposition of that matrix.
  absl::Status ApplyDense(const std::string& type, int64_t layer, const kernels::TruncatedSvd& svd,
                          int64_t k);
  // W(type, layer) ← w, a row-major host matrix of W's shape (copied to the
  // backend). INVALID_ARGUMENT when the size does not match W.
  absl::Status ApplyHost(const std::string& type, int64_t layer, const std::vector<float>& w);
  // Restores the original of (type, layer); FAILED_PRECONDITION if not edited.
  absl::Status Restore(const std::string& type, int64_t layer);
  // Restores every edited matrix.
  void RestoreAll();

  bool IsEdited(const std::string& type, int64_t layer) const;
  size_t edited_count() const { return originals_.size(); }

 private:
  // Saves the original of (type, layer) on its first edit.
  void SaveOriginal(const std::string& type, int64_t layer, const kernels::Tensor& w);
  model::Model* model_;
  std::map<std::pair<std::string, int64_t>, kernels::Tensor> originals_;
};

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_INTERVENTION_H_
