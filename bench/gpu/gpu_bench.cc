// GPU figures of issue 5 in one run, printed as one JSON object:
//   gemm    cuBLAS bf16 GEMM rate (fp32 accumulation) on the sweep's shapes
//   svd     each GPU SVD route on 4096×4096 and 4096×11008 (rank 410): time
//           and ‖W − W_k‖/‖W‖ against the exact truncation's (gesvd spectrum)
//   model   a Llama-2-7B-shaped model with random weights made here (no
//           download): forward time and its GEMM rate as a fraction of the
//           bf16 rate above; a real laser::SweepRunner sweep (byte-level
//           tokenizer, a synthetic dataset) on the bf16 model, and the paper's
//           method emulated on the same GPU (fp32 weights, exact-width
//           torch-style svd_lowrank, dense edit, every layer re-run, no
//           prefix reuse), interventions per second of each.
// Needs a CUDA device; exits 2 with a message otherwise.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/formats/weights.h"
#include "engine/laser/sweep.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "kernels/svd.h"
#include "nlohmann/json.hpp"
#include "tests/support/fixtures.h"

namespace laserd {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// splitmix64 → uniform floats in [-a, a): fast enough for billions of values.
void FillUniform(uint64_t seed, float a, float* out, int64_t n) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    out[i] = a * (static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
  }
}

// A Llama-2-7B-shaped safetensors model whose tensors are made on demand.
class RandomLlama : public formats::WeightSource {
 public:
  explicit RandomLlama(int64_t layers) : path_("random-llama-7b") {
    meta_ = {{"model_type", "llama"},
             {"hidden_size", kD},
             {"intermediate_size", kFf},
             {"num_hidden_layers", layers},
             {"num_attention_heads", 32},
             {"num_key_value_heads", 32},
             {"vocab_size", kV},
             {"max_position_embeddings", 4096},
             {"rms_norm_eps", 1e-5},
             {"rope_theta", 10000.0},
             {"tie_word_embeddings", false},
             {"hidden_act", "silu"}};
    Add("model.embed_tokens.weight", {kV, kD});
    Add("model.norm.weight", {kD});
    Add("lm_head.weight", {kV, kD});
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      for (const char* t :
           {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
        Add(p + t + ".weight", {kD, kD});
      }
      Add(p + "mlp.gate_proj.weight", {kFf, kD});
      Add(p + "mlp.up_proj.weight", {kFf, kD});
      Add(p + "mlp.down_proj.weight", {kD, kFf});
      Add(p + "input_layernorm.weight", {kD});
      Add(p + "post_attention_layernorm.weight", {kD});
    }
  }
  formats::FileFormat format() const override { return formats::FileFormat::kSafetensors; }
  const std::string& path() const override { return path_; }
  const nlohmann::json& metadata() const override { return meta_; }
  const std::vector<formats::TensorInfo>& tensors() const override { return infos_; }
  bool Has(const std::string& name) const override { return index_.count(name) > 0; }
  absl::StatusOr<formats::TensorF32> LoadF32(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return absl::NotFoundError(name);
    formats::TensorF32 t;
    t.shape = infos_[it->second].shape;
    t.data.resize(infos_[it->second].NumElements());
    if (t.shape.size() == 1) {
      std::fill(t.data.begin(), t.data.end(), 1.0f);  // norm weights
    } else {
      // Uniform with std 0.02 (a = 0.02·√3), as initialised LMs are.
      FillUniform(it->second + 17, 0.0346f, t.data.data(), static_cast<int64_t>(t.data.size()));
    }
    return t;
  }
  static constexpr int64_t kD = 4096, kFf = 11008, kV = 32000;

 private:
  void Add(const std::string& n, std::vector<int64_t> shape) {
    index_[n] = infos_.size();
    infos_.push_back({n, std::move(shape), formats::DType::kBF16});
  }
  std::string path_;
  json meta_;
  std::vector<formats::TensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

double GemmRate(cublasHandle_t h, int64_t m, int64_t n, int64_t k, int iters) {
  void *a, *b, *c;
  cudaMalloc(&a, m * k * 2);
  cudaMalloc(&b, k * n * 2);
  cudaMalloc(&c, m * n * 4);
  cudaMemset(a, 0, m * k * 2);
  cudaMemset(b, 0, k * n * 2);
  const float alpha = 1, beta = 0;
  auto run = [&] {
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(k), &alpha, a, CUDA_R_16BF,
                 int(k), b, CUDA_R_16BF, int(k), &beta, c, CUDA_R_32F, int(m), CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
  };
  for (int i = 0; i < 3; ++i) run();
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaEventRecord(e0);
  for (int i = 0; i < iters; ++i) run();
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 2.0 * m * n * k * iters / (ms * 1e-3);
}

json BenchSvd(int64_t m, int64_t n, int64_t k) {
  json out;
  out["shape"] = {m, n};
  out["rank"] = k;
  auto be = kernels::MakeBackend("cuda");
  if (!be.ok()) return {{"error", be.status().ToString()}};
  // W = G1 diag(d) G2ᵀ with a decaying spectrum d_t = 1 / (1 + t/32).
  const int64_t r = std::min(m, n);
  std::vector<float> g1(m * r), g2(n * r);
  FillUniform(1, 1.0f, g1.data(), m * r);
  FillUniform(2, 1.0f, g2.data(), n * r);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < r; ++t) g1[i * r + t] /= 1.0f + t / 32.0f;
  kernels::Tensor us = (*be)->FromHost(g1.data(), m, r), v = (*be)->FromHost(g2.data(), n, r);
  kernels::Tensor w = (*be)->Empty(m, n);
  (*be)->Linear(us, v, nullptr, &w);
  const std::vector<int64_t> ranks = {k};
  double exact_err = -1;
  struct Route {
    const char* name;
    kernels::SvdMethod method;
    kernels::GpuSolver solver;
    bool tf32;
    int batch;
  };
  using M = kernels::SvdMethod;
  using S = kernels::GpuSolver;
  const Route routes[] = {
      {"exact/gesvd", M::kExact, S::kGesvd, false, 1},
      {"exact/gesvdp", M::kExact, S::kGesvdp, false, 1},
      {"exact/gram", M::kExact, S::kGram, false, 1},
      {"randomized/gesvd", M::kRandomized, S::kGesvd, false, 1},
      {"randomized/gesvdp", M::kRandomized, S::kGesvdp, false, 1},
      {"randomized/gram", M::kRandomized, S::kGram, false, 1},
      {"randomized/gram/tf32", M::kRandomized, S::kGram, true, 1},
      {"randomized/gram/batch4", M::kRandomized, S::kGram, false, 4},
      {"paper/gesvd", M::kPaper, S::kGesvd, false, 1},
      {"paper/gram", M::kPaper, S::kGram, false, 1},
      {"paper/gram/tf32", M::kPaper, S::kGram, true, 1},
  };
  for (const Route& rt : routes) {
    kernels::SvdOptions o;
    o.method = rt.method;
    o.gpu_solver = rt.solver;
    o.gpu_tf32_sketch = rt.tf32;
    std::vector<const kernels::Tensor*> ws(rt.batch, &w);
    json j;
    const int reps = rt.method == M::kExact ? 1 : 3;
    std::vector<double> times;
    absl::StatusOr<std::vector<kernels::BackendSvd>> res;
    for (int i = 0; i <= reps; ++i) {  // the first run warms up (workspaces, kernels)
      auto t0 = Clock::now();
      res = kernels::DecomposeOnBackend(be->get(), ws, k, o, ranks);
      if (i > 0) times.push_back(Since(t0) / rt.batch);
      if (!res.ok()) break;
    }
    if (!res.ok()) {
      j["error"] = res.status().ToString();
    } else {
      std::sort(times.begin(), times.end());
      j["ms_per_matrix"] = 1e3 * times[times.size() / 2];
      j["error"] = (*res)[0].errors[0];
      if (std::string(rt.name) == "exact/gesvd") exact_err = (*res)[0].errors[0];
      if (exact_err > 0) j["error_over_exact"] = (*res)[0].errors[0] / exact_err;
    }
    out["routes"][rt.name] = j;
    std::fprintf(stderr, "svd %ldx%ld %s: %s\n", long(m), long(n), rt.name, j.dump().c_str());
  }
  return out;
}

// A byte-level tokenizer.json (256 tokens) and a capitals-like dataset.
std::string MakeSweepInputs(const std::string& dir, int examples) {
  std::filesystem::create_directories(dir);
  laserd::test_support::WriteByteLevelTokenizer(dir);
  std::ofstream data(dir + "/data.jsonl");
  for (int i = 0; i < examples; ++i) {
    data << json{{"prompt", "The capital of country number " + std::to_string(i) + " is"},
                 {"answer", " City" + std::to_string(i % 97)}}
                .dump()
         << "\n";
  }
  return dir;
}

json BenchModel(int64_t layers, int64_t seqs, int64_t seq_len, int interventions,
                int paper_interventions, double bf16_rate) {
  json out;
  out["layers"] = layers;
  RandomLlama src(layers);
  auto t0 = Clock::now();
  auto be = kernels::MakeBackend("cuda/bf16");
  if (!be.ok()) return {{"error", be.status().ToString()}};
  auto model = model::Model::Load(src, be->get());
  if (!model.ok()) return {{"error", model.status().ToString()}};
  out["load_seconds"] = Since(t0);
  // Forward: `seqs` sequences of `seq_len` tokens, the last 4 positions scored.
  std::vector<model::ScoreRequest> batch;
  for (int64_t s = 0; s < seqs; ++s) {
    model::ScoreRequest r;
    for (int64_t i = 0; i < seq_len; ++i) r.tokens.push_back(int32_t((s * 131 + i * 7) % 32000));
    r.answer_start = seq_len - 4;
    batch.push_back(r);
  }
  std::vector<double> times;
  for (int i = 0; i < 6; ++i) {
    auto t = Clock::now();
    auto r = (*model)->Score(batch);
    if (!r.ok()) return {{"error", r.status().ToString()}};
    if (i > 0) times.push_back(Since(t));
  }
  std::sort(times.begin(), times.end());
  const double fwd = times[times.size() / 2];
  const double D = RandomLlama::kD, F = RandomLlama::kFf, V = RandomLlama::kV;
  const double tokens = double(seqs) * (seq_len - 1);
  const double gemm_flops =
      2.0 * tokens * layers * (4 * D * D + 3 * D * F) + 2.0 * seqs * 4 * V * D;
  out["forward"] = {{"tokens", tokens},
                    {"seconds", fwd},
                    {"gemm_tflops", gemm_flops / fwd / 1e12},
                    {"fraction_of_bf16_gemm_rate", gemm_flops / fwd / bf16_rate}};
  std::fprintf(stderr, "forward: %s\n", out["forward"].dump().c_str());

  // The real sweep: mlp.out and attn.q of a few layers, ρ = 0.1 (k = 410).
  const std::string dir = MakeSweepInputs("/tmp/laserd_gpu_bench", int(seqs));
  auto tok = tokenizer::LoadTokenizerJson(dir + "/tokenizer.json");
  auto data = eval::LoadDataset(dir + "/data.jsonl");
  if (!tok.ok() || !data.ok()) return {{"error", "sweep inputs"}};
  laser::SweepConfig cfg;
  cfg.matrix_types = {"mlp.out"};
  for (int64_t l = layers - 1; l >= 0 && int(cfg.layer_indices.size()) < interventions;
       l -= std::max<int64_t>(1, layers / interventions)) {
    cfg.layer_indices.push_back(l);
  }
  std::sort(cfg.layer_indices.begin(), cfg.layer_indices.end());
  cfg.ranks = {0.1};
  cfg.svd.method = kernels::SvdMethod::kRandomized;
  cfg.svd.gpu_solver = kernels::GpuSolver::kGram;
  cfg.split.val_fraction = 0.5;
  auto runner = laser::SweepRunner::Create(model->get(), **tok, *data, cfg);
  if (!runner.ok()) return {{"error", runner.status().ToString()}};
  auto base = (*runner)->Baseline();
  if (!base.ok()) return {{"error", base.status().ToString()}};
  t0 = Clock::now();
  int64_t done = 0;
  auto st = (*runner)->Run({}, [&](const laser::SweepResult&) {
    ++done;
    return absl::OkStatus();
  });
  if (!st.ok()) return {{"error", st.ToString()}};
  const double sweep_s = Since(t0);
  const auto& tm = (*runner)->timings();
  out["sweep"] = {{"interventions", done},
                  {"layers", cfg.layer_indices},
                  {"examples", seqs},
                  {"seconds", sweep_s},
                  {"per_second", done / sweep_s},
                  {"svd_seconds", tm.svd_seconds},
                  {"forward_seconds", tm.forward_seconds},
                  {"cache_seconds", tm.cache_seconds},
                  {"apply_seconds", tm.apply_seconds}};
  std::fprintf(stderr, "sweep: %s\n", out["sweep"].dump().c_str());
  runner->reset();
  model->reset();

  // The paper's method on the same GPU: fp32 weights, svd_lowrank(q=k,
  // niter=2), W ← W_k densely, every layer from the embeddings, logits of
  // every position (Logits), per intervention.
  if (paper_interventions > 0) {
    auto be32 = kernels::MakeBackend("cuda");
    auto m32 = model::Model::Load(src, be32->get());
    if (!m32.ok()) return {{"error", m32.status().ToString()}};
    std::vector<std::vector<int32_t>> seq_tokens;
    for (const auto& r : batch) seq_tokens.push_back(r.tokens);
    double total = 0;
    int n = 0;
    for (int i = 0; i <= paper_interventions; ++i) {
      const int64_t layer = layers - 1 - (i % layers);
      auto w = (*m32)->Matrix("mlp.out", layer);
      kernels::Tensor saved = (*be32)->Empty((*w)->rows(), (*w)->cols());
      (*be32)->Copy(**w, &saved);
      auto t = Clock::now();
      kernels::SvdOptions o;
      o.method = kernels::SvdMethod::kPaper;
      auto dec = kernels::DecomposeOnBackend(be32->get(), {*w}, 410, o, {410});
      if (!dec.ok()) return {{"error", dec.status().ToString()}};
      auto f = laser::MakeFactors(be32->get(), (*dec)[0].svd, 410);
      (*be32)->Linear(f->us, f->v, nullptr, *w);
      auto logits = (*m32)->Logits(seq_tokens);
      if (!logits.ok()) return {{"error", logits.status().ToString()}};
      if (i > 0) {  // the first one warms up
        total += Since(t);
        ++n;
      }
      (*be32)->Copy(saved, *w);
    }
    out["paper_emulation"] = {{"interventions", n}, {"per_second", n / total}};
    out["sweep_speedup_over_paper"] = (done / sweep_s) / (n / total);
    std::fprintf(stderr, "paper: %s\n", out["paper_emulation"].dump().c_str());
  }
  return out;
}

}  // namespace
}  // namespace laserd

int main(int argc, char** argv) {
  CLI::App app{"laserd GPU benchmark (issue 5)"};
  int64_t layers = 32, seqs = 64, seq_len = 24;
  int interventions = 8, paper = 2;
  bool skip_svd = false, skip_model = false;
  std::string out_path;
  app.add_option("--layers", layers, "layers of the Llama-2-7B-shaped model");
  app.add_option("--seqs", seqs, "sequences (examples) per forward / sweep");
  app.add_option("--seq-len", seq_len, "tokens per forward sequence");
  app.add_option("--interventions", interventions, "sweep interventions (one per layer)");
  app.add_option("--paper-interventions", paper, "interventions of the paper emulation");
  app.add_flag("--skip-svd", skip_svd);
  app.add_flag("--skip-model", skip_model);
  app.add_option("--out", out_path, "also write the JSON here");
  CLI11_PARSE(app, argc, argv);
  std::string why;
  if (laserd::kernels::CudaDeviceCount(&why) == 0) {
    std::fprintf(stderr, "gpu_bench: no CUDA device (%s)\n", why.c_str());
    std::printf("%s\n", nlohmann::json{{"error", "no CUDA device: " + why}}.dump().c_str());
    return 2;
  }
  nlohmann::json report;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  report["device"] = prop.name;
  cublasHandle_t h;
  cublasCreate(&h);
  const double rate = laserd::GemmRate(h, 8192, 8192, 8192, 20);
  const double rate_fwd = laserd::GemmRate(h, 11008, seqs * (seq_len - 1), 4096, 50);
  cublasDestroy(h);
  report["bf16_gemm_tflops"] = {
      {"8192^3", rate / 1e12},
      {"11008x" + std::to_string(seqs * (seq_len - 1)) + "x4096", rate_fwd / 1e12}};
  std::fprintf(stderr, "gemm: %s\n", report["bf16_gemm_tflops"].dump().c_str());
  if (!skip_svd) {
    report["svd"] = {laserd::BenchSvd(4096, 4096, 410), laserd::BenchSvd(4096, 11008, 410)};
  }
  if (!skip_model) {
    report["model"] = laserd::BenchModel(layers, seqs, seq_len, interventions, paper, rate_fwd);
  }
  std::printf("%s\n", report.dump().c_str());
  if (!out_path.empty()) std::ofstream(out_path) << report.dump(2) << "\n";
  return 0;
}
