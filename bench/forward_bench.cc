// Scoring forward pass throughput against the machine's SGEMM rate, in one run.
//
//   forward_bench --model M.gguf --seqs seqs.json [--batch 32] [--reps 3]
//                 [--share-prefixes true|false]
//
// seqs.json: {"sequences": [{"tokens": [...], "answer_start": k}, ...]}. Prints
// one JSON object: tokens/s of Model::Score over the whole set in batches of
// --batch sequences, the GEMM FLOPs of the rows it computes (2 · matrix params ·
// rows; with shared prefixes a common prompt prefix is one set of rows; the last
// layer past q/k/v and the LM head only at distinct scored rows), the SGEMM
// GFLOP/s measured on the model's
// own largest layer shapes, and the fraction of that rate reached.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "CLI/CLI.hpp"
#include "engine/formats/weights.h"
#include "engine/model/model.h"
#include "nlohmann/json.hpp"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// GFLOP/s of C[m,n] = A[m,k]·B[n,k]ᵀ, the layout Linear uses, best of `reps`.
double SgemmRate(int64_t m, int64_t n, int64_t k, int reps) {
  std::vector<float> a(m * k), b(n * k), c(m * n);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = Now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k,
                0.0f, c.data(), n);
    best = std::min(best, Now() - t0);
  }
  return 2.0 * m * n * k / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"laserd scoring forward benchmark"};
  std::string model_path, seqs_path;
  int batch = 32, reps = 3;
  app.add_option("--model", model_path)->required();
  app.add_option("--seqs", seqs_path)->required();
  app.add_option("--batch", batch);
  app.add_option("--reps", reps);
  bool share_prefixes = true;
  app.add_option("--share-prefixes", share_prefixes,
                 "compute a common prompt prefix once (Model::PrepareScore); false: packed");
  CLI11_PARSE(app, argc, argv);

  const double t_load0 = Now();
  auto src = laserd::formats::OpenWeights(model_path);
  if (!src.ok()) {
    std::fprintf(stderr, "%s\n", std::string(src.status().message()).c_str());
    return 1;
  }
  auto backend = laserd::kernels::MakeCpuBackend();
  auto model = laserd::model::Model::Load(**src, backend.get());
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const double load_s = Now() - t_load0;
  const auto& cfg = (*model)->config();

  std::ifstream f(seqs_path);
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<laserd::model::ScoreRequest> reqs;
  int64_t input_tokens = 0, scored = 0;
  for (const auto& s : j["sequences"]) {
    laserd::model::ScoreRequest r;
    r.tokens = s["tokens"].get<std::vector<int32_t>>();
    r.answer_start = s["answer_start"].get<int64_t>();
    input_tokens += r.tokens.size() - 1;  // the last token is never an input
    scored += r.tokens.size() - r.answer_start;
    reqs.push_back(std::move(r));
  }

  // Matrix parameters of one layer: all of it, and the part every row of the
  // last layer still needs (q, k, v: the scored rows attend to all rows).
  int64_t layer_params = 0, qkv_params = 0;
  for (const auto& t : (*model)->MatrixTypes()) {
    const int64_t n = (*(*model)->Matrix(t, 0))->size();
    layer_params += n;
    if (t == "attn.q" || t == "attn.k" || t == "attn.v") qkv_params += n;
  }
  // GEMM FLOPs of what Model::Score computes: every layout row through the
  // first L−1 layers and the last layer's q/k/v, the rest of the last layer
  // and the LM head on the distinct scored rows only.
  std::vector<std::vector<laserd::model::ScoreRequest>> batches;
  for (size_t i = 0; i < reqs.size(); i += batch) {
    batches.emplace_back(reqs.begin() + i, reqs.begin() + std::min(reqs.size(), i + batch));
  }
  double flops = 0;
  int64_t computed_rows = 0;
  for (const auto& b : batches) {
    auto p = (*model)->PrepareScore(b, share_prefixes);
    if (!p.ok()) {
      std::fprintf(stderr, "%s\n", std::string(p.status().message()).c_str());
      return 1;
    }
    const double rows = static_cast<double>(p->layout.total_rows());
    const double distinct = static_cast<double>(p->distinct_rows.size());
    computed_rows += p->layout.total_rows();
    flops += 2.0 * rows * (layer_params * (cfg.layers - 1) + qkv_params) +
             2.0 * distinct * ((layer_params - qkv_params) + cfg.vocab_size * cfg.hidden);
  }

  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const double t0 = Now();
    for (const auto& b : batches) {
      auto res = (*model)->Score(b, share_prefixes);
      if (!res.ok()) {
        std::fprintf(stderr, "%s\n", std::string(res.status().message()).c_str());
        return 1;
      }
    }
    best = std::min(best, Now() - t0);
  }
  const int64_t rows = input_tokens / std::max<int64_t>(1, (reqs.size() + batch - 1) / batch);
  const double sgemm_mlp = SgemmRate(rows, cfg.intermediate, cfg.hidden, 5);
  const double sgemm_sq = SgemmRate(rows, cfg.hidden, cfg.hidden, 5);
  const double sgemm_big = SgemmRate(2048, 2048, 2048, 3);
  const double achieved = flops / best / 1e9;
  nlohmann::json out = {{"model", model_path},
                        {"load_s", load_s},
                        {"sequences", reqs.size()},
                        {"batch", batch},
                        {"input_tokens", input_tokens},
                        {"scored_tokens", scored},
                        {"share_prefixes", share_prefixes},
                        {"computed_rows", computed_rows},
                        {"best_s", best},
                        {"tokens_per_s", input_tokens / best},
                        {"gemm_gflop", flops / 1e9},
                        {"achieved_gflops", achieved},
                        {"sgemm_gflops_mlp_shape", sgemm_mlp},
                        {"sgemm_gflops_attn_shape", sgemm_sq},
                        {"sgemm_gflops_2048", sgemm_big},
                        {"fraction_of_sgemm_mlp_shape", achieved / sgemm_mlp},
                        {"fraction_of_sgemm_2048", achieved / sgemm_big}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
