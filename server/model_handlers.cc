#include "server/model_handlers.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/laser/intervention.h"
#include "engine/laser/rank.h"
#include "engine/laser/spectrum.h"
#include "server/prometheus.h"

namespace laserd::server {

namespace pb = ::laser::v1;

absl::StatusOr<pb::ModelInfo> ModelHandlers::DescribeModel() {
  LASERD_RETURN_IF_ERROR(model_.Ready());
  pb::ModelInfo mi = model_.info();
  const auto [total, avail] = HostMemoryBytes();
  mi.mutable_memory()->set_device_total_bytes(total);
  mi.mutable_memory()->set_device_free_bytes(avail);
  mi.mutable_memory()->set_process_rss_bytes(ProcessRssBytes());
  return mi;
}

absl::StatusOr<pb::Spectrum> ModelHandlers::GetSpectrum(const pb::GetSpectrumRequest& req) {
  LASERD_RETURN_IF_ERROR(model_.Ready());
  if (req.matrix_type().empty()) return absl::InvalidArgumentError("matrix_type: required");
  if (req.matrix_type() == "mlp" || req.matrix_type() == "attn" || req.matrix_type() == "all") {
    return absl::InvalidArgumentError(
        absl::StrCat("matrix_type: '", req.matrix_type(), "' is a group; name one matrix type"));
  }
  auto type = laser::CanonicalMatrixType(req.matrix_type());
  if (!type.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("matrix_type: ", type.status().message()));
  }
  const model::Model& m = *model_.first().model;
  const std::vector<std::string> have = m.MatrixTypes();
  if (std::find(have.begin(), have.end(), *type) == have.end()) {
    return absl::InvalidArgumentError(absl::StrCat("matrix_type: the model has no ", *type,
                                                   " (it has ", absl::StrJoin(have, ", "), ")"));
  }
  const int64_t layers = m.config().layers;
  if (req.layer() < 0 || req.layer() >= layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: ", req.layer(), " is not in [0, ", layers, ")"));
  }
  const auto key = std::make_pair(*type, int64_t{req.layer()});
  {
    std::lock_guard<std::mutex> lock(spectra_mu_);
    if (auto it = spectra_.find(key); it != spectra_.end()) return it->second;
  }
  int64_t rows = 0, cols = 0;
  LASERD_ASSIGN_OR_RETURN(
      const std::vector<float> host,
      model_.ReadUnedited([&](const model::LoadedModel& lm) -> absl::StatusOr<std::vector<float>> {
        LASERD_ASSIGN_OR_RETURN(const auto* w, lm.model->Matrix(*type, req.layer()));
        rows = w->rows();
        cols = w->cols();
        lm.backend->BindThread();  // an RPC thread (CUDA: the current device is per thread)
        return laser::MatrixToHost(lm.model.get(), *type, req.layer());
      }));
  LASERD_ASSIGN_OR_RETURN(const auto svd, laser::ExactSpectrumSvd(host, rows, cols, 1));
  pb::Spectrum sp;
  sp.set_matrix_type(*type);
  sp.set_layer(req.layer());
  sp.set_rows(rows);
  sp.set_cols(cols);
  sp.set_max_rank(std::min(rows, cols));
  std::vector<double> s(svd.spectrum.begin(), svd.spectrum.end());
  for (double v : s) sp.add_singular_values(v);
  sp.set_frobenius_norm(std::sqrt(svd.frobenius_sq));
  // The Marchenko-Pastur suggestion (engine/laser/spectrum.h; also used by
  // sweeps with add_suggested_rank).
  LASERD_ASSIGN_OR_RETURN(const auto fit,
                          laser::MarchenkoPasturRank(s, rows, cols, svd.frobenius_sq));
  pb::MarchenkoPastur* mp = sp.mutable_marchenko_pastur();
  mp->set_sigma(fit.sigma);
  mp->set_beta(fit.beta);
  mp->set_threshold(fit.threshold);
  mp->set_suggested_rank(fit.rank);
  mp->set_suggested_rho(fit.rho);
  mp->set_relative_error(fit.relative_error);
  std::lock_guard<std::mutex> lock(spectra_mu_);
  spectra_[key] = sp;
  return sp;
}

}  // namespace laserd::server
