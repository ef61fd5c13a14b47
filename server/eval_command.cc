// laserd eval: score a model on a held-out set and print the aggregates per split.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/eval/run.h"
#include "server/commands.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

struct EvalFlags {
  std::string model, tokenizer, data, split = "first", topk = "1,5,10", per_example,
                                      device = "auto";
  double val_fraction = 0.2;
  uint64_t seed = 0;
  int64_t batch_tokens = 4096;
  std::string match = "greedy";
  int64_t max_new_tokens = eval::kDefaultNewTokens;
  std::vector<std::string> stop;
  bool match_prompt = false;
  bool json = false;
  bool no_progress = false;
};

// "\rscoring 40/250 sequences" on a terminal; otherwise a line per ~10%.
class Progress {
 public:
  Progress() : tty_(isatty(fileno(stderr))) {}
  void operator()(int64_t done, int64_t total) {
    if (tty_) {
      std::fprintf(stderr, "\rscoring %lld/%lld sequences (%3.0f%%)", (long long)done,
                   (long long)total, 100.0 * done / total);
      if (done == total) std::fputc('\n', stderr);
    } else if (done == total || done * 10 / total != last_decile_) {
      last_decile_ = done * 10 / total;
      std::fprintf(stderr, "scoring %lld/%lld sequences (%.0f%%)\n", (long long)done,
                   (long long)total, 100.0 * done / total);
    }
    std::fflush(stderr);
  }

 private:
  bool tty_;
  int64_t last_decile_ = 0;
};

int RunEvalCommand(const EvalFlags& f) {
  eval::EvalConfig cfg;
  cfg.model_path = f.model;
  cfg.tokenizer_path = f.tokenizer;
  cfg.data_path = f.data;
  cfg.device = f.device;
  cfg.per_example_out = f.per_example;
  auto mode = eval::ParseSplitMode(f.split);
  auto topk = eval::ParseTopK(f.topk);
  auto rule = eval::ParseMatchRule(f.match);
  for (const absl::Status& st : {mode.status(), topk.status(), rule.status()}) {
    if (!st.ok()) {
      std::fprintf(stderr, "laserd eval: %s\n", std::string(st.message()).c_str());
      return kExitUsage;
    }
  }
  cfg.split.mode = *mode;
  cfg.split.val_fraction = f.val_fraction;
  cfg.split.seed = f.seed;
  cfg.score.topk = *topk;
  cfg.score.batch_tokens = f.batch_tokens;
  cfg.match.rule = *rule;
  cfg.match.max_new_tokens = f.max_new_tokens;
  cfg.match.stop_strings = f.stop;
  cfg.match.match_prompt = f.match_prompt;
  cfg.match.batch_tokens = f.batch_tokens;
  if (absl::Status st = eval::ValidateMatchOptions(cfg.match); !st.ok()) {
    std::fprintf(stderr, "laserd eval: %s\n", std::string(st.message()).c_str());
    return kExitUsage;
  }
  auto progress = std::make_shared<Progress>();
  if (!f.no_progress) cfg.score.progress = [progress](int64_t d, int64_t t) { (*progress)(d, t); };

  spdlog::info("eval: model {}, data {}, device {}", f.model, f.data, f.device);
  auto report = eval::RunEval(cfg);
  if (!report.ok()) {
    std::fprintf(stderr, "laserd eval: %s\n", report.status().ToString().c_str());
    return ExitCodeFor(report.status());
  }
  if (!f.per_example.empty()) spdlog::info("per-example results written to {}", f.per_example);
  if (f.json) {
    std::cout << eval::ReportJson(*report).dump(2) << std::endl;
  } else {
    std::cout << eval::FormatReport(*report) << std::flush;
  }
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& app, Runner* run) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* sub = app.add_subcommand(
      "eval", "Score a model on a held-out set (JSONL) and print the metrics per split");
  sub->add_option("--model", f->model, "Model: a GGUF file, or a safetensors file or directory")
      ->required();
  sub->add_option("--data", f->data, "Dataset: JSONL of completion/choice/CounterFact records")
      ->required();
  sub->add_option("--tokenizer", f->tokenizer,
                  "tokenizer.json to use (default: GGUF metadata, or tokenizer.json beside a "
                  "safetensors model)");
  sub->add_option("--split", f->split, "Validation/test split: first (the paper's) or shuffle")
      ->check(CLI::IsMember({"first", "shuffle"}))
      ->capture_default_str();
  sub->add_option("--validation-fraction", f->val_fraction,
                  "Fraction of examples used for validation")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--seed", f->seed, "Seed of --split shuffle")->capture_default_str();
  sub->add_option("--top-k", f->topk, "Comma-separated k of the first-token top-k accuracy")
      ->capture_default_str();
  sub->add_option("--max-batch-tokens", f->batch_tokens, "Token budget of one scoring batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--match", f->match,
                  "How an example counts as correct: greedy (teacher-forced), top1_decoded, or "
                  "exact, prefix, contains on a greedy generation")
      ->capture_default_str();
  sub->add_option("--max-new-tokens", f->max_new_tokens,
                  "Generation rules: new tokens per example, 1 to 1024")
      ->capture_default_str();
  sub->add_option("--stop", f->stop,
                  "Generation rules: stop a continuation at this string (repeatable)");
  sub->add_flag("--match-prompt", f->match_prompt,
                "Generation rules: compare prompt + continuation (the paper code's quirk)");
  sub->add_option("--per-example", f->per_example, "Write per-example results to this JSONL file");
  sub->add_option("--device", f->device, "Compute device: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print the report as JSON instead of a table");
  sub->add_flag("--no-progress", f->no_progress, "Do not print progress on stderr");
  sub->callback([f, run] { *run = [f] { return RunEvalCommand(*f); }; });
}

}  // namespace laserd::server
