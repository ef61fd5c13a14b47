// The Marchenko–Pastur rank suggestion of one weight matrix (a kept rank
// suggested from its spectrum alone, without a sweep), as laserRMT computes it. One
// implementation, used by ModelService.GetSpectrum and by sweeps with
// SweepSpec.add_suggested_rank (Intervention.rank_source = SUGGESTED).
//
// Given all min(m, n) singular values s (descending) of an m×n matrix W:
//   sigma     = (Q3 − Q1) / 1.349, the quartiles of s by numpy's default
//               linear interpolation (position q·(N−1) in s sorted ascending)
//   beta      = min(m, n) / max(m, n)
//   threshold = sigma · (1 + sqrt(beta))
//   rank      = #{i : s_i > threshold}, at least 1
//   rho       = rank / min(m, n)
//   relative_error = sqrt(Σ_{i >= rank} s_i²) / ‖W‖_F (the squares summed in
//               double, largest dropped value first; 0 when ‖W‖_F = 0).
#ifndef LASERD_ENGINE_LASER_SPECTRUM_H_
#define LASERD_ENGINE_LASER_SPECTRUM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "kernels/svd.h"

namespace laserd::laser {

struct MarchenkoPasturFit {
  double sigma = 0;
  double beta = 0;
  double threshold = 0;
  int64_t rank = 0;  // the suggested kept rank k
  double rho = 0;    // rank / min(rows, cols)
  double relative_error = 0;
};

// The suggestion for an m×n matrix from its singular values (all min(m, n)
// of them, descending) and ‖W‖_F² (`frobenius_sq`). INVALID_ARGUMENT when
// the shape is empty, the count is not min(m, n), or frobenius_sq < 0.
absl::StatusOr<MarchenkoPasturFit> MarchenkoPasturRank(const std::vector<double>& singular_values,
                                                       int64_t rows, int64_t cols,
                                                       double frobenius_sq);

// The exact SVD that a spectrum is read from: W(type, layer) copied to the
// host (MatrixToHost) and decomposed by kernels::ComputeTruncatedSvd with
// method exact in fp32 (LAPACK sgesdd), keeping the first `keep` singular
// vectors (1 <= keep <= min(m, n); the singular values in `spectrum` are the
// same for every `keep`). `frobenius_sq` is ‖W‖_F² in double.
absl::StatusOr<kernels::TruncatedSvd> ExactSpectrumSvd(const std::vector<float>& host, int64_t rows,
                                                       int64_t cols, int64_t keep);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_SPECTRUM_H_
