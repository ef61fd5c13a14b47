// Greedy generation throughput (engine/model/generate.h), for
// bench/generation_bench.py, which runs transformers' generate() on the same
// prompts in the same run.
//
//   generate_bench --model M.gguf --prompts prompts.json [--batch 32]
//                  [--max-new-tokens 16] [--eos ID] [--reps 3]
//
// prompts.json: {"prompts": [[ids...], ...]}. Prints one JSON object: the best
// wall time over --reps of generating for every prompt in batches of --batch
// prompts, the generated tokens (EOS included), tokens/s, and the ids.
#include <chrono>
#include <cstdio>
#include <fstream>

#include "CLI/CLI.hpp"
#include "engine/formats/weights.h"
#include "engine/model/generate.h"
#include "engine/model/model.h"
#include "nlohmann/json.hpp"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"laserd greedy generation benchmark"};
  std::string model_path, prompts_path;
  int batch = 32, reps = 3, max_new = 16, eos = -1;
  bool share_prefixes = true;
  app.add_option("--model", model_path)->required();
  app.add_option("--prompts", prompts_path)->required();
  app.add_option("--batch", batch);
  app.add_option("--reps", reps);
  app.add_option("--max-new-tokens", max_new);
  app.add_option("--eos", eos, "stop id (-1: none)");
  app.add_option("--share-prefixes", share_prefixes);
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(prompts_path);
  const nlohmann::json pj = nlohmann::json::parse(in);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : pj["prompts"]) prompts.push_back(p.get<std::vector<int32_t>>());

  auto src = laserd::formats::OpenWeights(model_path);
  if (!src.ok()) {
    std::fprintf(stderr, "%s\n", src.status().ToString().c_str());
    return 1;
  }
  auto backend = laserd::kernels::MakeCpuBackend();
  auto model = laserd::model::Model::Load(**src, backend.get());
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  laserd::model::GenerateOptions opts;
  opts.max_new_tokens = max_new;
  opts.share_prefixes = share_prefixes;
  if (eos >= 0) opts.stop_ids = {eos};
  double best = 1e30;
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> ids(prompts.size());
  for (int r = 0; r < reps; ++r) {
    const double t0 = Now();
    tokens = 0;
    for (size_t s = 0; s < prompts.size(); s += batch) {
      const size_t e = std::min(prompts.size(), s + batch);
      std::vector<std::vector<int32_t>> b(prompts.begin() + s, prompts.begin() + e);
      auto g = laserd::model::Generate(**model, b, opts);
      if (!g.ok()) {
        std::fprintf(stderr, "%s\n", g.status().ToString().c_str());
        return 1;
      }
      for (size_t i = 0; i < g->size(); ++i) {
        tokens += static_cast<int64_t>((*g)[i].ids.size());
        ids[s + i] = (*g)[i].ids;
      }
    }
    best = std::min(best, Now() - t0);
  }
  nlohmann::json out;
  out["seconds"] = best;
  out["generated_tokens"] = tokens;
  out["tokens_per_second"] = tokens / best;
  out["prompts"] = prompts.size();
  out["batch"] = batch;
  out["ids"] = ids;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
