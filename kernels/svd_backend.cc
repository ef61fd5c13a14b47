// kernels::DecomposeOnBackend: the sweep's decomposition entry point. Groups
// the matrices by shape, plans each group once (kernels/svd_plan.h) and hands
// it to the backend's Decompose; the truncation errors of exact results
// follow from their spectrum here, the same way on every backend.
#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::kernels {

absl::StatusOr<std::vector<BackendSvd>> DecomposeOnBackend(
    Backend* backend, const std::vector<const Tensor*>& ws, int64_t k_max, const SvdOptions& opts,
    const std::vector<int64_t>& error_ranks) {
  std::vector<BackendSvd> out(ws.size());
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> groups;
  for (size_t i = 0; i < ws.size(); ++i) {
    if (ws[i] == nullptr || ws[i]->empty() || ws[i]->device() != backend->kind()) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix ", i, " is not a tensor of the ", backend->name(), " backend"));
    }
    groups[{ws[i]->rows(), ws[i]->cols()}].push_back(i);
  }
  for (const auto& [shape, idx] : groups) {
    LASERD_ASSIGN_OR_RETURN(SvdPlan plan, PlanSvd(shape.first, shape.second, k_max, opts));
    for (int64_t k : error_ranks) {
      if (k < 0 || k > k_max) {
        return absl::InvalidArgumentError(
            absl::StrCat("rank ", k, " is outside the decomposition's [0, ", k_max, "]"));
      }
    }
    if (plan.randomized()) plan.sketch = GaussianSketch(plan.seed, plan.SketchValues());
    std::vector<const Tensor*> group;
    for (size_t i : idx) group.push_back(ws[i]);
    std::vector<BackendSvd> done;
    if (plan.sketch_rows && !backend->DecomposesOnHost()) {
      // The paper method on torch's side, on a device: the backend's
      // randomized algorithm on resident copies of Wᵀ (through the host),
      // then U and V swapped back. (A host backend does this in RunSvdPlan.)
      SvdPlan tp = plan;
      tp.m = plan.n;
      tp.n = plan.m;
      tp.sketch_rows = false;
      std::vector<Tensor> transposed;
      transposed.reserve(group.size());
      std::vector<float> w(plan.m * plan.n), wt(plan.m * plan.n);
      for (const Tensor* t : group) {
        backend->ToHost(*t, w.data());
        for (int64_t r = 0; r < plan.m; ++r)
          for (int64_t c = 0; c < plan.n; ++c) wt[c * plan.m + r] = w[r * plan.n + c];
        transposed.push_back(backend->FromHost(wt.data(), plan.n, plan.m));
      }
      std::vector<const Tensor*> tgroup;
      for (const Tensor& t : transposed) tgroup.push_back(&t);
      LASERD_RETURN_IF_ERROR(backend->Decompose(tgroup, tp, error_ranks, &done));
      for (BackendSvd& b : done) {
        std::swap(b.svd.m, b.svd.n);
        std::swap(b.svd.u, b.svd.v);
      }
    } else {
      LASERD_RETURN_IF_ERROR(backend->Decompose(group, plan, error_ranks, &done));
    }
    if (done.size() != group.size()) {
      return absl::InternalError(absl::StrCat(backend->name(), " backend returned ", done.size(),
                                              " decompositions for ", group.size(), " matrices"));
    }
    for (size_t j = 0; j < idx.size(); ++j) {
      BackendSvd& b = done[j];
      if (!plan.randomized()) {
        // Exact: every prefix's error from the full spectrum.
        LASERD_ASSIGN_OR_RETURN(b.errors, TruncationErrors(nullptr, b.svd, error_ranks));
      }
      out[idx[j]] = std::move(b);
    }
  }
  return out;
}

}  // namespace laserd::kernels
