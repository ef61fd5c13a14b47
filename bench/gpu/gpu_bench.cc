// laserd's GPU measurements, one section per run (bench/gpu/sections.h lists
// them); bench/gpu/check.sh runs every section in its own process with its
// own time budget and assembles the report. Each section writes its figures
// to --out as it goes (rewritten after every value, so a section stopped by
// its time limit keeps what it measured). Logs go to stderr. Exit status: 0
// done, 1 the section failed (the error is in its JSON), 2 it needs a CUDA
// device and none is present (also in the JSON).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "bench/gpu/bench_report.h"
#include "bench/gpu/sections.h"
#include "kernels/cuda/cuda_backend.h"

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("gpu_bench"));
  using laserd::bench::BenchOptions;
  using laserd::bench::BenchReport;
  CLI::App app{"laserd GPU benchmark sections"};
  BenchOptions o;
  std::string section, out;
  double budget = 0;
  app.add_option("--section", section, "smoke|prepare|gemm|svd|model|smollm2")->required();
  app.add_option("--out", out, "the section's JSON file")->required();
  app.add_option("--budget", budget, "seconds the section may take (0: no limit)");
  app.add_option("--backend", o.backend, "cuda, or cpu to rehearse without a GPU");
  app.add_option("--layers", o.shape.layers, "layers of the Llama-shaped random model");
  app.add_option("--hidden", o.shape.hidden);
  app.add_option("--intermediate", o.shape.intermediate);
  app.add_option("--heads", o.shape.heads);
  app.add_option("--vocab", o.shape.vocab);
  app.add_option("--sequences", o.sequences, "sequences.json (prepare writes it)");
  app.add_option("--tokenizer", o.tokenizer, "tokenizer.json of the sweep dataset");
  app.add_option("--data", o.data, "the sweep's data.jsonl (prepare writes it)");
  app.add_option("--examples", o.examples, "sweep examples (prepare)");
  app.add_option("--forward-seqs", o.forward_seqs);
  app.add_option("--forward-len", o.forward_len);
  app.add_option("--sweep-matrices", o.sweep_matrices, "mlp.out of N layers spread evenly");
  app.add_option("--rhos", o.rhos, "kept-rank fractions of the sweep");
  app.add_option("--svd-solver", o.svd_solver, "gesvd|gesvdp|gram (sweep)");
  app.add_option("--svd-rows", o.svd_rows);
  app.add_option("--svd-rank", o.svd_rank);
  app.add_option("--svd-batch", o.svd_batch, "matrices of one batched decomposition");
  app.add_option("--gemm-size", o.gemm_size);
  app.add_option("--gguf", o.gguf, "the SmolLM2 slice");
  app.add_option("--smollm2-data", o.smollm2_data, "capitals.jsonl");
  app.add_option("--smollm2-examples", o.smollm2_examples);
  CLI11_PARSE(app, argc, argv);

  const std::map<std::string, std::function<absl::Status(const BenchOptions&, BenchReport*)>>
      sections = {{"smoke", laserd::bench::RunSmoke}, {"prepare", laserd::bench::RunPrepare},
                  {"gemm", laserd::bench::RunGemm},   {"svd", laserd::bench::RunSvd},
                  {"model", laserd::bench::RunModel}, {"smollm2", laserd::bench::RunSmolLM2}};
  auto it = sections.find(section);
  if (it == sections.end()) {
    std::fprintf(stderr, "gpu_bench: unknown section %s\n", section.c_str());
    return 1;
  }
  BenchReport report(out, budget);
  report.Set("section", section);
  report.Set("backend", o.backend);
  if (o.backend == "cpu") report.Set("rehearsal", true);
  std::string why;
  if (o.backend != "cpu" && section != "prepare" && section != "smoke" &&
      laserd::kernels::CudaDeviceCount(&why) == 0) {
    report.Set("skipped", "no CUDA device: " + why);
    std::fprintf(stderr, "gpu_bench %s: no CUDA device (%s)\n", section.c_str(), why.c_str());
    return 2;
  }
  const absl::Status st = it->second(o, &report);
  report.Set("ok", st.ok());
  if (!st.ok()) {
    report.Set("error", st.ToString());
    std::fprintf(stderr, "gpu_bench %s: %s\n", section.c_str(), st.ToString().c_str());
    return st.code() == absl::StatusCode::kFailedPrecondition ? 2 : 1;
  }
  return 0;
}
