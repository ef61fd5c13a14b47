// gpu_bench sections on whole models: prepare (no GPU), model (the
// Llama-2-7B-shaped random model: forward and sweep), smollm2 (GPU against CPU).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "bench/gpu/sections.h"
#include "engine/eval/dataset.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/ops.h"

namespace laserd::bench {

std::string ReducedDevice(const BenchOptions& o) {
  return o.backend == "cpu" ? "cpu" : o.backend + "/bf16";
}

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot open " + path);
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not JSON: " + path);
  return j;
}

absl::StatusOr<kernels::GpuSolver> ParseSolver(const std::string& s) {
  if (s == "gesvd") return kernels::GpuSolver::kGesvd;
  if (s == "gesvdp") return kernels::GpuSolver::kGesvdp;
  if (s == "gram") return kernels::GpuSolver::kGram;
  return absl::InvalidArgumentError("unknown --svd-solver " + s);
}

json MetricsJson(const laser::SplitMetrics& m) {
  return {{"validation_accuracy", m.validation.accuracy},
          {"validation_log_loss", m.validation.log_loss},
          {"test_accuracy", m.test.accuracy}};
}

}  // namespace

absl::Status RunPrepare(const BenchOptions& o, BenchReport* r) {
  {
    std::ofstream data(o.data);
    for (int i = 0; i < o.examples; ++i) {
      data << json{{"prompt", absl::StrCat("The capital of country number ", i, " is")},
                   {"answer", absl::StrCat(" City", i % 97)}}
                  .dump()
           << "\n";
    }
    if (!data) return absl::InternalError("cannot write " + o.data);
  }
  LASERD_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizerJson(o.tokenizer));
  LASERD_ASSIGN_OR_RETURN(eval::Dataset ds, eval::LoadDataset(o.data));
  json sweep = json::array();
  for (const eval::Example& e : ds.examples) {
    LASERD_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, tok->Encode(e.prompt, true));
    LASERD_ASSIGN_OR_RETURN(std::vector<int32_t> full, tok->Encode(e.prompt + e.answer, true));
    sweep.push_back({{"tokens", full}, {"answer_start", prompt.size()}});
  }
  json forward = json::array();
  for (int s = 0; s < o.forward_seqs; ++s) {
    std::vector<int32_t> t;
    for (int i = 0; i < o.forward_len; ++i) {
      t.push_back(static_cast<int32_t>(3 + (s * 131 + i * 7919) % (o.shape.vocab - 3)));
    }
    forward.push_back(t);
  }
  // The forward scores the last 4 positions of every sequence.
  std::ofstream(o.sequences) << json{{"vocab", o.shape.vocab},
                                     {"forward", forward},
                                     {"forward_scored", 4},
                                     {"sweep", sweep},
                                     {"shape", o.shape.HfConfig()}}
                                    .dump()
                             << "\n";
  r->Set("sequences", o.sequences);
  r->Set("data", o.data);
  r->Set("sweep_examples", sweep.size());
  return absl::OkStatus();
}

absl::Status RunModel(const BenchOptions& o, BenchReport* r) {
  LASERD_ASSIGN_OR_RETURN(json seqs, ReadJson(o.sequences));
  r->Set("device", ReducedDevice(o));
  r->Set("shape", o.shape.HfConfig());
  auto t0 = Clock::now();
  LASERD_ASSIGN_OR_RETURN(auto be, kernels::MakeBackend(ReducedDevice(o)));
  RandomLlama src(o.shape);
  LASERD_ASSIGN_OR_RETURN(auto model, model::Model::Load(src, be.get()));
  r->Set("load_seconds", SecondsSince(t0));

  // Forward: the prepared sequences, the last `forward_scored` positions scored.
  const int64_t scored = seqs["forward_scored"].get<int64_t>();
  std::vector<model::ScoreRequest> batch;
  int64_t tokens = 0;
  for (const auto& t : seqs["forward"]) {
    model::ScoreRequest q;
    q.tokens = t.get<std::vector<int32_t>>();
    q.answer_start = static_cast<int64_t>(q.tokens.size()) - scored;
    tokens += static_cast<int64_t>(q.tokens.size());
    batch.push_back(std::move(q));
  }
  std::vector<double> times;
  for (int i = 0; i < 6 && (i < 2 || r->Left() > 60); ++i) {
    const auto t = Clock::now();
    LASERD_RETURN_IF_ERROR(model->Score(batch).status());
    if (i > 0) times.push_back(SecondsSince(t));
  }
  std::sort(times.begin(), times.end());
  const double fwd = times[times.size() / 2];
  const double flops = tokens * o.shape.LayerFlopsPerToken() +
                       2.0 * batch.size() * scored * o.shape.vocab * o.shape.hidden;
  r->Set("forward", {{"sequences", batch.size()},
                     {"tokens", tokens},
                     {"seconds", fwd},
                     {"repetitions", times.size()},
                     {"tokens_per_second", tokens / fwd},
                     {"gemm_flops", flops},
                     {"gemm_tflops", flops / fwd / 1e12}});

  // The sweep: mlp.out of `sweep_matrices` layers spread evenly, the last
  // included (7, 15, 23, 31 of 32), at every ρ; torch_peer.py plans the same.
  LASERD_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizerJson(o.tokenizer));
  LASERD_ASSIGN_OR_RETURN(eval::Dataset data, eval::LoadDataset(o.data));
  laser::SweepConfig cfg;
  cfg.matrix_types = {"mlp.out"};
  const int64_t stride = std::max<int64_t>(1, o.shape.layers / std::max(1, o.sweep_matrices));
  for (int64_t i = 0; i < o.sweep_matrices && o.shape.layers - 1 - i * stride >= 0; ++i) {
    cfg.layer_indices.insert(cfg.layer_indices.begin(), o.shape.layers - 1 - i * stride);
  }
  cfg.ranks = o.rhos;
  cfg.svd.method = kernels::SvdMethod::kRandomized;
  LASERD_ASSIGN_OR_RETURN(cfg.svd.gpu_solver, ParseSolver(o.svd_solver));
  cfg.split.val_fraction = 0.5;
  LASERD_ASSIGN_OR_RETURN(auto runner, laser::SweepRunner::Create(model.get(), *tok, data, cfg));
  t0 = Clock::now();
  LASERD_RETURN_IF_ERROR(runner->Baseline().status());
  const double baseline_s = SecondsSince(t0);
  t0 = Clock::now();
  int64_t done = 0;
  const absl::Status st = runner->Run({}, [&](const laser::SweepResult&) {
    ++done;
    if (r->Left() < 10) return absl::DeadlineExceededError("time budget spent");
    return absl::OkStatus();
  });
  const double sweep_s = SecondsSince(t0);
  const laser::SweepTimings tm = runner->timings();
  r->Set("sweep", {{"matrix_type", "mlp.out"},
                   {"layers", cfg.layer_indices},
                   {"rhos", cfg.ranks},
                   {"examples", data.examples.size()},
                   {"svd", absl::StrCat("randomized/", o.svd_solver)},
                   {"planned", runner->total_interventions()},
                   {"interventions", done},
                   {"stopped", st.ok() ? "" : st.ToString()},
                   {"baseline_seconds", baseline_s},
                   {"seconds", sweep_s},
                   {"interventions_per_minute", 60.0 * done / sweep_s},
                   {"svd_seconds", tm.svd_seconds},
                   {"forward_seconds", tm.forward_seconds},
                   {"cache_seconds", tm.cache_seconds},
                   {"apply_seconds", tm.apply_seconds}});
  return st.code() == absl::StatusCode::kDeadlineExceeded ? absl::OkStatus() : st;
}

namespace {

struct DeviceSweep {
  json summary;
  std::vector<std::vector<double>> logprobs;  // [intervention][example]
  int64_t best = -1;
};

absl::StatusOr<DeviceSweep> SmolSweep(const BenchOptions& o, const std::string& device) {
  LASERD_ASSIGN_OR_RETURN(model::LoadedModel m, model::LoadModel(o.gguf, device));
  LASERD_ASSIGN_OR_RETURN(eval::Dataset data, eval::LoadDataset(o.smollm2_data));
  if (static_cast<int>(data.examples.size()) > o.smollm2_examples) {
    data.examples.resize(o.smollm2_examples);
  }
  laser::SweepConfig cfg;
  cfg.matrix_types = {"mlp.out", "attn.o"};
  cfg.ranks = {0.05, 0.25};
  cfg.svd.method = kernels::SvdMethod::kExact;
  cfg.split.val_fraction = 0.5;
  cfg.keep_examples = true;
  LASERD_ASSIGN_OR_RETURN(auto runner,
                          laser::SweepRunner::Create(m.model.get(), *m.tokenizer, data, cfg));
  LASERD_ASSIGN_OR_RETURN(laser::SplitMetrics base, runner->Baseline());
  DeviceSweep out;
  double best_acc = 0, best_loss = 0;
  json results = json::array();
  LASERD_RETURN_IF_ERROR(runner->Run({}, [&](const laser::SweepResult& res) {
    const auto& v = res.metrics.validation;
    if (out.best < 0 || laser::BetterOnValidation(v.accuracy, v.log_loss, best_acc, best_loss)) {
      out.best = res.intervention.plan_index;
      best_acc = v.accuracy;
      best_loss = v.log_loss;
    }
    std::vector<double> lp;
    for (const eval::ExampleResult& e : res.examples) lp.push_back(e.logprob);
    out.logprobs.push_back(std::move(lp));
    results.push_back({{"plan_index", res.intervention.plan_index},
                       {"type", res.intervention.type},
                       {"layer", res.intervention.layer},
                       {"rho", res.intervention.rho},
                       {"metrics", MetricsJson(res.metrics)}});
    return absl::OkStatus();
  }));
  out.summary = {{"device", device},
                 {"baseline", MetricsJson(base)},
                 {"best_plan_index", out.best},
                 {"results", results}};
  return out;
}

}  // namespace

absl::Status RunSmolLM2(const BenchOptions& o, BenchReport* r) {
  if (!std::filesystem::exists(o.gguf)) {
    return absl::NotFoundError("no SmolLM2 slice at '" + o.gguf + "' (stage.sh makes it)");
  }
  r->Set("model", o.gguf);
  LASERD_ASSIGN_OR_RETURN(DeviceSweep cpu, SmolSweep(o, "cpu"));
  r->Set("cpu", cpu.summary);
  r->Set("examples", cpu.logprobs.empty() ? 0 : cpu.logprobs[0].size());
  // fp32 must agree to 1e-3 relative and pick the same best intervention;
  // bf16 (8 significant bits, accumulated over the layers) within 5e-2·(1 + |lp|).
  struct Gpu {
    std::string device;
    double tol;
  };
  const std::vector<Gpu> gpus = o.backend == "cpu"
                                    ? std::vector<Gpu>{{"cpu", 1e-3}}
                                    : std::vector<Gpu>{{o.backend, 1e-3}, {ReducedDevice(o), 5e-2}};
  absl::Status worst = absl::OkStatus();
  for (const Gpu& g : gpus) {
    LASERD_ASSIGN_OR_RETURN(DeviceSweep d, SmolSweep(o, g.device));
    double max_abs = 0, max_scaled = 0;
    for (size_t i = 0; i < d.logprobs.size() && i < cpu.logprobs.size(); ++i) {
      for (size_t j = 0; j < d.logprobs[i].size() && j < cpu.logprobs[i].size(); ++j) {
        const double diff = std::abs(d.logprobs[i][j] - cpu.logprobs[i][j]);
        max_abs = std::max(max_abs, diff);
        max_scaled = std::max(max_scaled, diff / (1.0 + std::abs(cpu.logprobs[i][j])));
      }
    }
    const bool same_best = d.best == cpu.best;
    const bool within = max_scaled <= g.tol && d.logprobs.size() == cpu.logprobs.size();
    d.summary["against_cpu"] = {{"max_abs_logprob_diff", max_abs},
                                {"max_logprob_diff_over_1_plus_abs", max_scaled},
                                {"tolerance", g.tol},
                                {"within_tolerance", within},
                                {"same_best_intervention", same_best}};
    r->Set(o.backend == "cpu" ? "cpu_again" : g.device, d.summary);
    if (!within && worst.ok()) {
      worst = absl::InternalError(absl::StrCat(g.device, ": log-probs differ from the CPU by ",
                                               max_scaled, " (tolerance ", g.tol, ")"));
    }
    if (g.tol <= 1e-3 && !same_best && worst.ok()) {
      worst = absl::InternalError(g.device + ": a different best intervention than the CPU");
    }
  }
  return worst;
}

}  // namespace laserd::bench
