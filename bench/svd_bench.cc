// Truncated SVD methods against each other: wall time and achieved relative
// error ‖W − W_k‖_F / ‖W‖_F (and its excess over the exact truncation error)
// for a real model matrix or a random Gaussian one.
//
//   svd_bench --model .data/models/SmolLM2-135M-Instruct.Q4_1.gguf --type mlp.in --layer 20
//   svd_bench --random 4096x4096 --rho 0.01,0.05,0.1
//   svd_bench --model ... --p 0,5,10,-1 --q 0,1,2,4   (calibrating the defaults)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

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
  CLI11_PARSE(app, argc, argv);

  std::vector<float> w;
  int64_t m = 0, n = 0;
  if (!random_shape.empty()) {
    if (std::sscanf(random_shape.c_str(), "%ldx%ld", &m, &n) != 2) {
      std::fprintf(stderr, "--random wants MxN\n");
      return 2;
    }
    w.resize(m * n);
    kernels::GaussianFill(12345, w.data(), m * n);
  } else {
    auto backend = kernels::MakeCpuBackend();
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
  return 0;
}
