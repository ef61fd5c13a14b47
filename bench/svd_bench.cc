// Truncated SVD methods against each other: wall time and achieved relative
// error ‖W − W_k‖_F / ‖W‖_F (and its excess over the exact truncation error)
// for a real model matrix or a random Gaussian one.
//
//   svd_bench --model .data/models/SmolLM2-135M-Instruct.Q4_1.gguf --type mlp.in --layer 20
//   svd_bench --random 4096x4096 --rho 0.01,0.05,0.1
//   svd_bench --model ... --p 0,5,10,-1 --q 0,1,2,4   (calibrating the defaults)
//   svd_bench --model ... --batch 8   (also: the sketch draw, and 8 layers' matrices
//                                      decomposed in one DecomposeOnBackend call
//                                      against one call each)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/formats/weights.h"
#include "engine/laser/intervention.h"
#include "engine/laser/rank.h"
#include "engine/model/model.h"
#include "kernels/svd.h"

using namespace laserd;

namespace {
double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// The sketch draw (cold, then a shared hit) and `count` matrices of one shape
// decomposed by one DecomposeOnBackend call against one call each (auto, as
// a sweep does), checking that both give the same bits.
void RunBatch(kernels::Backend* backend, model::Model* model, const std::string& type,
              int64_t layer, const std::vector<float>& w, int64_t m, int64_t n, int64_t kmax,
              const std::vector<int64_t>& ks, uint64_t seed, int64_t count) {
  kernels::SvdOptions o;
  o.method = kernels::SvdMethod::kRandomized;
  o.seed = seed + 1000;  // a seed no earlier run drew
  const kernels::SvdPlan plan = *kernels::PlanSvd(m, n, kmax, o);
  std::vector<float> omega(n * plan.l);
  auto t0 = std::chrono::steady_clock::now();
  kernels::GaussianFill(o.seed, omega.data(), n * plan.l);
  const double t_fill = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  auto first = kernels::GaussianSketch(o.seed, n * plan.l);
  const double t_draw = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  auto again = kernels::GaussianSketch(o.seed, n * plan.l);
  const double t_hit = Seconds(t0);
  std::printf(
      "sketch %ldx%ld (%ld values): GaussianFill %.1f ms, shared draw %.1f ms, kept %.3f ms\n", n,
      plan.l, n * plan.l, 1e3 * t_fill, 1e3 * t_draw, 1e3 * t_hit);

  std::vector<kernels::Tensor> ts;
  for (int64_t i = 0; i < count; ++i) {
    auto t = model != nullptr ? model->Matrix(type, layer + i) : absl::StatusOr<kernels::Tensor*>();
    if (model != nullptr && t.ok() && (*t)->rows() == m && (*t)->cols() == n) {
      ts.push_back(**t);
    } else if (model == nullptr) {
      std::vector<float> r(m * n);
      kernels::GaussianFill(12345 + i, r.data(), m * n);
      ts.push_back(backend->FromHost(r.data(), m, n));
    } else {
      break;
    }
  }
  std::vector<const kernels::Tensor*> ws;
  for (const kernels::Tensor& t : ts) ws.push_back(&t);
  kernels::SvdOptions a;
  a.seed = seed;
  t0 = std::chrono::steady_clock::now();
  std::vector<kernels::BackendSvd> one;
  for (const kernels::Tensor* t : ws) {
    one.push_back(std::move((*kernels::DecomposeOnBackend(backend, {t}, kmax, a, ks))[0]));
  }
  const double t_one = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  auto batched = kernels::DecomposeOnBackend(backend, ws, kmax, a, ks);
  const double t_batched = Seconds(t0);
  bool same = batched.ok() && batched->size() == one.size();
  for (size_t i = 0; same && i < one.size(); ++i) {
    same = (*batched)[i].svd.u == one[i].svd.u && (*batched)[i].svd.v == one[i].svd.v &&
           (*batched)[i].errors == one[i].errors;
  }
  std::printf(
      "%zu matrices %ldx%ld k_max=%ld (%s): one call each %.3fs, one batched call %.3fs, "
      "same bits: %s\n",
      ws.size(), m, n, kmax, kernels::SvdMethodName(one.empty() ? a.method : one[0].svd.method),
      t_one, t_batched, same ? "yes" : "NO");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("truncated SVD benchmark");
  std::string model_path, type = "mlp.in", random_shape;
  int64_t layer = 0;
  std::vector<double> rhos = {0.01, 0.05, 0.1, 0.2, 0.5};
  std::vector<int64_t> ps = {-1};
  std::vector<int> qs = {-1};
  bool paper = true, exact64 = true;
  uint64_t seed = 1;
  int64_t batch = 0;
  app.add_option("--model", model_path, "GGUF or safetensors model");
  app.add_option("--type", type, "matrix type");
  app.add_option("--layer", layer, "layer");
  app.add_option("--random", random_shape, "MxN Gaussian matrix instead of a model matrix");
  app.add_option("--rho", rhos, "kept fractions")->delimiter(',');
  app.add_option("--p", ps, "oversampling values (-1 = default)")->delimiter(',');
  app.add_option("--q", qs, "power iteration counts (-1 = default)")->delimiter(',');
  app.add_option("--paper", paper, "also run the paper recipe");
  app.add_option("--seed", seed, "sketch seed");
  app.add_option("--exact64", exact64, "also time dgesdd");
  app.add_option("--batch", batch,
                 "also time the sketch draw and a batched decomposition of this many matrices "
                 "(layers layer.. of the model, or random ones) against one call each");
  CLI11_PARSE(app, argc, argv);

  std::vector<float> w;
  int64_t m = 0, n = 0;
  auto backend = kernels::MakeCpuBackend();
  std::unique_ptr<formats::WeightSource> source;
  std::unique_ptr<model::Model> loaded;
  if (!random_shape.empty()) {
    if (std::sscanf(random_shape.c_str(), "%ldx%ld", &m, &n) != 2) {
      std::fprintf(stderr, "--random wants MxN\n");
      return 2;
    }
    w.resize(m * n);
    kernels::GaussianFill(12345, w.data(), m * n);
  } else {
    auto src = formats::OpenWeights(model_path);
    if (!src.ok()) {
      std::fprintf(stderr, "%s\n", std::string(src.status().message()).c_str());
      return 1;
    }
    auto model = model::Model::Load(**src, backend.get());
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    auto t = (*model)->Matrix(type, layer);
    auto h = laser::MatrixToHost(model->get(), type, layer);
    if (!t.ok() || !h.ok()) {
      std::fprintf(stderr, "no matrix %s/%ld\n", type.c_str(), layer);
      return 1;
    }
    m = (*t)->rows();
    n = (*t)->cols();
    w = *std::move(h);
    source = *std::move(src);
    loaded = *std::move(model);
  }
  std::vector<int64_t> ks;
  for (double r : rhos) ks.push_back(*laser::KeptRankFromRho(m, n, r));
  const int64_t kmax = *std::max_element(ks.begin(), ks.end());
  std::printf("matrix %ldx%ld, k = ", m, n);
  for (int64_t k : ks) std::printf("%ld ", k);
  std::printf("\n");

  auto t0 = std::chrono::steady_clock::now();
  kernels::SvdOptions ex;
  ex.method = kernels::SvdMethod::kExact;
  auto exact = kernels::ComputeTruncatedSvd(w.data(), m, n, kmax, ex);
  const double t_exact = Seconds(t0);
  auto e_exact = *kernels::TruncationErrors(w.data(), *exact, ks);
  std::printf("%-28s %8.3fs  err", "exact (sgesdd, all k)", t_exact);
  for (double e : e_exact) std::printf(" %.6f", e);
  std::printf("\n");

  if (exact64) {
    auto t2 = std::chrono::steady_clock::now();
    kernels::SvdOptions ed = ex;
    ed.exact_in_double = true;
    auto exact64 = kernels::ComputeTruncatedSvd(w.data(), m, n, kmax, ed);
    const double t_exact64 = Seconds(t2);
    auto e64 = *kernels::TruncationErrors(w.data(), *exact64, ks);
    std::printf("%-28s %8.3fs  max |err32 - err64| over k:", "exact (dgesdd, all k)", t_exact64);
    double worst = 0.0;
    for (size_t i = 0; i < ks.size(); ++i) worst = std::max(worst, std::abs(e64[i] - e_exact[i]));
    std::printf(" %.2e\n", worst);
  }
  bool auto_randomized = kernels::AutoPicksRandomized(m, n, kmax);
  std::printf("auto for k_max=%ld: %s\n", kmax, auto_randomized ? "randomized" : "exact");

  auto run = [&](const char* label, kernels::SvdOptions o) {
    for (size_t i = 0; i < ks.size(); ++i) {
      auto t1 = std::chrono::steady_clock::now();
      auto r = kernels::ComputeTruncatedSvd(w.data(), m, n, ks[i], o);
      const double t = Seconds(t1);
      if (!r.ok()) {
        std::printf("%s: %s\n", label, std::string(r.status().message()).c_str());
        return;
      }
      const double e = (*kernels::TruncationErrors(w.data(), *r, {ks[i]}))[0];
      std::printf("%-28s k=%-5ld %8.3fs  err %.6f  excess %+.3f%%\n", label, ks[i], t, e,
                  100.0 * (e / e_exact[i] - 1.0));
    }
  };
  for (int64_t p : ps) {
    for (int q : qs) {
      kernels::SvdOptions o;
      o.method = kernels::SvdMethod::kRandomized;
      o.oversampling = p;
      o.power_iters = q;
      o.seed = seed;
      char label[64];
      std::snprintf(label, sizeof label, "randomized p=%ld q=%d", p, q);
      run(label, o);
    }
  }
  if (paper) {
    kernels::SvdOptions o;
    o.method = kernels::SvdMethod::kPaper;
    o.seed = seed;
    run("paper (p=0 q=2)", o);
  }
  if (batch > 0) RunBatch(backend.get(), loaded.get(), type, layer, w, m, n, kmax, ks, seed, batch);
  return 0;
}
