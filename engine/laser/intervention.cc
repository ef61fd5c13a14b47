#include "engine/laser/intervention.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::laser {

absl::StatusOr<std::vector<float>> MatrixToHost(model::Model* model, const std::string& type,
                                                int64_t layer) {
  LASERD_ASSIGN_OR_RETURN(auto w, model->Matrix(type, layer));
  std::vector<float> host(w->size());
  model->backend()->ToHost(*w, host.data());
  return host;
}

absl::StatusOr<kernels::TruncatedSvd> DecomposeMatrix(model::Model* model, const std::string& type,
                                                      int64_t layer, int64_t k_max,
                                                      const kernels::SvdOptions& opts) {
  LASERD_ASSIGN_OR_RETURN(auto w, model->Matrix(type, layer));
  const int64_t m = w->rows(), n = w->cols();
  LASERD_ASSIGN_OR_RETURN(auto host, MatrixToHost(model, type, layer));
  auto svd = kernels::ComputeTruncatedSvd(host.data(), m, n, k_max, opts);
  if (!svd.ok()) {
    return absl::Status(svd.status().code(),
                        absl::StrCat(type, " of layer ", layer, ": ", svd.status().message()));
  }
  return svd;
}

absl::StatusOr<Factors> MakeFactors(kernels::Backend* backend, const kernels::TruncatedSvd& svd,
                                    int64_t k) {
  if (k < 1 || k > svd.k) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", k, " is outside the decomposition's [1, ", svd.k, "]"));
  }
  const int64_t m = svd.m, n = svd.n, K = svd.k;
  std::vector<float> us(m * k), v(n * k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) us[i * k + j] = svd.u[i * K + j] * svd.s[j];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) v[i * k + j] = svd.v[i * K + j];
  Factors f;
  f.k = k;
  f.us = backend->FromHost(us.data(), m, k);
  f.v = backend->FromHost(v.data(), n, k);
  return f;
}

Editor::~Editor() { RestoreAll(); }

absl::Status Editor::ApplyDense(const std::string& type, int64_t layer, const Factors& f) {
  LASERD_ASSIGN_OR_RETURN(auto w, model_->Matrix(type, layer));
  kernels::Tensor* W = w;
  if (f.us.rows() != W->rows() || f.v.rows() != W->cols() || f.us.cols() != f.k ||
      f.v.cols() != f.k || f.k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("factors [", f.us.rows(), ", ", f.us.cols(), "] and [", f.v.rows(), ", ",
                     f.v.cols(), "] of rank ", f.k, " do not fit ", type, " of layer ", layer, " [",
                     W->rows(), ", ", W->cols(), "]"));
  }
  SaveOriginal(type, layer, *W);
  // W [out, in] = us [out, k] · v [in, k]ᵀ.
  model_->backend()->Linear(f.us, f.v, nullptr, W);
  return absl::OkStatus();
}

void Editor::SaveOriginal(const std::string& type, int64_t layer, const kernels::Tensor& w) {
  auto key = std::make_pair(type, layer);
  if (originals_.count(key)) return;
  kernels::Backend* be = model_->backend();
  kernels::Tensor saved = be->Empty(w.rows(), w.cols());
  be->Copy(w, &saved);
  originals_.emplace(key, std::move(saved));
}

absl::Status Editor::ApplyHost(const std::string& type, int64_t layer,
                               const std::vector<float>& w) {
  LASERD_ASSIGN_OR_RETURN(auto t, model_->Matrix(type, layer));
  kernels::Tensor* W = t;
  if (static_cast<int64_t>(w.size()) != W->rows() * W->cols()) {
    return absl::InvalidArgumentError(absl::StrCat(w.size(), " values do not fit ", type,
                                                   " of layer ", layer, " [", W->rows(), ", ",
                                                   W->cols(), "]"));
  }
  SaveOriginal(type, layer, *W);
  kernels::Backend* be = model_->backend();
  const kernels::Tensor src = be->FromHost(w.data(), W->rows(), W->cols());
  be->Copy(src, W);
  return absl::OkStatus();
}

absl::Status Editor::ApplyDense(const std::string& type, int64_t layer,
                                const kernels::TruncatedSvd& svd, int64_t k) {
  LASERD_ASSIGN_OR_RETURN(auto f, MakeFactors(model_->backend(), svd, k));
  return ApplyDense(type, layer, f);
}

absl::Status Editor::Restore(const std::string& type, int64_t layer) {
  auto it = originals_.find(std::make_pair(type, layer));
  if (it == originals_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat(type, " of layer ", layer, " is not edited; nothing to restore"));
  }
  LASERD_ASSIGN_OR_RETURN(auto w, model_->Matrix(type, layer));
  model_->backend()->Copy(it->second, w);
  originals_.erase(it);
  return absl::OkStatus();
}

void Editor::RestoreAll() {
  for (auto& [key, saved] : originals_) {
    auto w = model_->Matrix(key.first, key.second);
    if (w.ok()) model_->backend()->Copy(saved, *w);
  }
  originals_.clear();
}

bool Editor::IsEdited(const std::string& type, int64_t layer) const {
  return originals_.count(std::make_pair(type, layer)) > 0;
}

}  // namespace laserd::laser
