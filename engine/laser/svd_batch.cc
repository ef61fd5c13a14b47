#include "engine/laser/svd_batch.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/laser/paper_svd.h"

namespace laserd::laser {

std::vector<int64_t> SweptRanks(const PlanMatrix& m) {
  std::vector<int64_t> ks;
  for (const Intervention& iv : m.interventions) {
    if (iv.kind == InterventionKind::kRankReduction && !iv.suggested) ks.push_back(iv.rank);
  }
  return ks;
}

namespace {

MatrixSvds OneDecomposition(kernels::BackendSvd d) {
  MatrixSvds out;
  out.svd_of.assign(d.errors.size(), 0);
  out.errors = std::move(d.errors);
  out.svds.push_back(std::move(d.svd));
  return out;
}

}  // namespace

absl::StatusOr<MatrixSvds> SvdBatcher::Take(const PlanMatrix& m, const MoreFn& more,
                                            double* seconds) {
  const auto key = std::make_pair(m.type, m.layer);
  if (auto it = ready_.find(key); it != ready_.end()) {
    kernels::BackendSvd svd = std::move(it->second.svd);
    *seconds = it->second.seconds;
    ready_.erase(it);
    return OneDecomposition(std::move(svd));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int64_t> ks = SweptRanks(m);
  if (PerRankDecomposition(opts_)) {
    // One randomized SVD to exactly k per distinct rank, each with its own
    // seed (engine/laser/paper_svd.h), in the order the ranks first occur.
    LASERD_ASSIGN_OR_RETURN(const kernels::Tensor* w, model_->Matrix(m.type, m.layer));
    MatrixSvds out;
    std::map<int64_t, size_t> index;  // rank -> svds position
    std::vector<double> svd_error;    // per svds entry
    for (int64_t k : ks) {
      auto [it, added] = index.emplace(k, out.svds.size());
      if (added) {
        auto d = kernels::DecomposeOnBackend(model_->backend(), {w}, k,
                                             OptionsForRank(opts_, m.type, m.layer, k), {k});
        if (!d.ok()) {
          return absl::Status(
              d.status().code(),
              absl::StrCat(m.type, " of layer ", m.layer, " rank ", k, ": ", d.status().message()));
        }
        out.svds.push_back(std::move((*d)[0].svd));
        svd_error.push_back((*d)[0].errors[0]);
      }
      out.svd_of.push_back(it->second);
      out.errors.push_back(svd_error[it->second]);
    }
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  }
  std::vector<const PlanMatrix*> batch = {&m};
  // How many fit: each holds its result until used and, while decomposed, its
  // working set (an invalid plan is reported by the decomposition below).
  if (auto plan = kernels::PlanSvd(m.rows, m.cols, m.k_max, opts_); plan.ok() && more) {
    const int64_t per = std::max<int64_t>(1, plan->ResultBytes() + plan->WorkingBytes());
    const int64_t fit = budget_bytes_ > 0 ? budget_bytes_ / per : 0;
    if (fit > 1) {
      const size_t max = static_cast<size_t>(fit - 1);
      for (const PlanMatrix* o : more(m, max)) {
        if (batch.size() <= max && o->rows == m.rows && o->cols == m.cols && o->k_max == m.k_max &&
            SweptRanks(*o) == ks && !ready_.count({o->type, o->layer})) {
          batch.push_back(o);
        }
      }
    }
  }
  std::vector<const kernels::Tensor*> ws;
  for (const PlanMatrix* b : batch) {
    LASERD_ASSIGN_OR_RETURN(const kernels::Tensor* w, model_->Matrix(b->type, b->layer));
    ws.push_back(w);
  }
  auto done = kernels::DecomposeOnBackend(model_->backend(), ws, m.k_max, opts_, ks);
  if (!done.ok()) {
    return absl::Status(done.status().code(),
                        absl::StrCat(m.type, " of layer ", m.layer, ": ", done.status().message()));
  }
  const double share =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(batch.size());
  for (size_t i = 1; i < batch.size(); ++i) {
    ready_[{batch[i]->type, batch[i]->layer}] = Ready{std::move((*done)[i]), share};
  }
  *seconds = share;
  return OneDecomposition(std::move((*done)[0]));
}

}  // namespace laserd::laser
