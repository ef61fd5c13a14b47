// laserd sweep: run a LASER sweep headless from a spec file into a JSONL
// results file (docs/sweep.md); laserd merge: join shard result files.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/laser/replicas.h"
#include "engine/laser/sweep.h"
#include "engine/model/loaded_model.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/commands.h"
#include "server/example_outputs.h"
#include "server/sweep_io.h"
#include "server/sweep_job.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using Clock = std::chrono::steady_clock;

struct SweepFlags {
  std::string model, spec, out, shard, device = "auto", devices, tokenizer;
  int64_t shards = 0;
  bool resume = false;
  bool no_progress = false;
  int64_t cache_budget_mb = 1024;
  bool no_prefix_reuse = false;
  bool no_factored = false;
};

std::string Duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}

// A sweep's progress on stderr: a bar with rate and ETA on a terminal; plain
// lines (every 5% or 30 s) otherwise.
class ProgressBar {
 public:
  ProgressBar() : tty_(isatty(fileno(stderr))), t0_(Clock::now()) {}
  void Update(const pb::Progress& p) {
    const int64_t done = p.interventions_done(), total = p.interventions_total();
    if (total <= 0) return;
    const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double rate = p.interventions_per_second();
    const double eta =
        p.has_eta() ? p.eta().seconds() + p.eta().nanos() * 1e-9 : -1;  // seconds; -1: unknown
    const double frac = std::min(1.0, static_cast<double>(done) / total);
    if (tty_) {
      constexpr int kWidth = 30;
      const int fill = static_cast<int>(frac * kWidth);
      std::fprintf(stderr, "\r[%s%s] %lld/%lld %5.1f%%  %.1f/min  ETA %s   ",
                   std::string(fill, '#').c_str(), std::string(kWidth - fill, '.').c_str(),
                   (long long)done, (long long)total, 100 * frac, rate * 60, Duration(eta).c_str());
      if (done == total) std::fputc('\n', stderr);
      std::fflush(stderr);
    } else if (done == total || done * 20 / total != last_step_ || el - last_print_ >= 30) {
      last_step_ = done * 20 / total;
      last_print_ = el;
      std::fprintf(stderr, "sweep: %lld/%lld interventions (%.1f%%), %.1f/min, ETA %s\n",
                   (long long)done, (long long)total, 100 * frac, rate * 60, Duration(eta).c_str());
    }
  }

 private:
  bool tty_;
  Clock::time_point t0_;
  int64_t last_step_ = -1;
  double last_print_ = 0;
};

// "i/N" → (i, N).
absl::StatusOr<std::pair<uint32_t, uint32_t>> ParseShard(const std::string& s) {
  std::vector<std::string> parts = absl::StrSplit(s, '/');
  uint32_t i = 0, n = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &i) || !absl::SimpleAtoi(parts[1], &n) ||
      n < 1 || i >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard: '", s, "' is not i/N with 0 <= i < N"));
  }
  return std::make_pair(i, n);
}

// The shard: --shard, else JOB_COMPLETION_INDEX / SLURM_ARRAY_TASK_ID with the
// count from --shards, the spec or SLURM_ARRAY_TASK_COUNT, else the spec's.
absl::Status ResolveShard(const SweepFlags& f, pb::SweepSpec* spec) {
  if (!f.shard.empty()) {
    LASERD_ASSIGN_OR_RETURN(const auto s, ParseShard(f.shard));
    spec->mutable_shard()->set_index(s.first);
    spec->mutable_shard()->set_count(s.second);
    return absl::OkStatus();
  }
  const char* env_name = nullptr;
  const char* env = nullptr;
  for (const char* name : {"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"}) {
    if ((env = std::getenv(name)) != nullptr && *env) {
      env_name = name;
      break;
    }
  }
  if (!env_name) {
    if (f.shards > 0) {
      return absl::InvalidArgumentError(
          "--shards is given but neither --shard, JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID "
          "says which shard this is");
    }
    return absl::OkStatus();
  }
  uint32_t index = 0;
  if (!absl::SimpleAtoi(env, &index)) {
    return absl::InvalidArgumentError(
        absl::StrCat(env_name, "='", env, "' is not a non-negative integer"));
  }
  uint32_t count = 0;
  if (f.shards > 0) {
    count = static_cast<uint32_t>(f.shards);
  } else if (spec->shard().count() > 1) {
    count = spec->shard().count();
  } else if (const char* c = std::getenv("SLURM_ARRAY_TASK_COUNT");
             env_name[0] == 'S' && c && absl::SimpleAtoi(c, &count)) {
  }
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        env_name, " is set but the shard count is unknown: give --shards N or spec.shard.count"));
  }
  if (index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat(env_name, "=", index, " is not < the shard count ", count));
  }
  spec->mutable_shard()->set_index(index);
  spec->mutable_shard()->set_count(count);
  return absl::OkStatus();
}

// The model's identity for the sweep id: its file name and size in bytes (for
// a safetensors directory: config.json and the weight files).
std::string ModelIdentity(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  uintmax_t size = 0;
  if (fs::is_directory(p, ec)) {
    std::vector<std::pair<std::string, uintmax_t>> files;
    for (const auto& e : fs::directory_iterator(p, ec)) {
      const std::string name = e.path().filename().string();
      const bool weights = name == "config.json" || name == "model.safetensors.index.json" ||
                           e.path().extension() == ".safetensors";
      if (e.is_regular_file() && weights) files.push_back({name, e.file_size()});
    }
    std::sort(files.begin(), files.end());
    std::string id = p.filename().string();
    for (const auto& [n, s] : files) absl::StrAppend(&id, ";", n, ":", s);
    return id;
  }
  size = fs::file_size(p, ec);
  return absl::StrCat(p.filename().string(), ":", size);
}

int Fail(const absl::Status& s) {
  spdlog::error("{}", s.ToString());
  return ExitCodeFor(s);
}

std::string MetricsLine(const pb::Metrics& m) {
  return absl::StrFormat("acc %6.2f%%  log-loss %.4f  (%d ex)", m.accuracy(), m.log_loss(),
                         m.examples());
}

std::string InterventionName(const pb::Intervention& iv) {
  return absl::StrFormat("%s:%d:%g (k=%d of %d, err %.3f)", MatrixName(iv), iv.layer(), iv.rho(),
                         iv.rank(), iv.max_rank(), iv.relative_error());
}

// The results file as a SweepSink: the header line (with the baseline) once,
// then one line per result, each flushed; progress on stderr. With
// spec.keep_example_outputs, `examples` (the example outputs file) gets the
// baseline's ExampleOutputs line and then each result's, each written before
// the result's line, so a result in the results file always has its outputs.
class ResultsFileSink : public SweepSink {
 public:
  ResultsFileSink(std::ofstream& o, std::string path, std::ofstream* examples,
                  std::string examples_path, pb::Job& header, bool progress)
      : o_(o),
        path_(std::move(path)),
        examples_(examples),
        examples_path_(std::move(examples_path)),
        header_(header),
        show_progress_(progress) {}

  absl::Status StoreBaseline(const pb::Evaluation& baseline,
                             const pb::ExampleOutputs& outputs) override {
    LASERD_RETURN_IF_ERROR(StoreBaselineOutputs(outputs));
    *header_.mutable_baseline() = baseline;
    return WriteLine(JsonLine(header_));
  }
  absl::Status StoreBaselineOutputs(const pb::ExampleOutputs& outputs) override {
    return examples_ ? WriteExamples(outputs) : absl::OkStatus();
  }
  absl::Status EnterPhase(pb::JobPhase phase) override {
    if (phase == pb::JOB_PHASE_SWEEPING) {
      spdlog::info("baseline: validation {} | test {}",
                   MetricsLine(header_.baseline().validation()),
                   MetricsLine(header_.baseline().test()));
    } else if (phase == pb::JOB_PHASE_COMPOSING) {
      spdlog::info("composition: greedy stacking of the best single interventions");
    }
    return absl::OkStatus();
  }
  absl::Status StoreResult(const pb::Result& r, const SweepProgress& s,
                           const pb::ExampleOutputs* outputs) override {
    if (examples_ && outputs) LASERD_RETURN_IF_ERROR(WriteExamples(*outputs));
    LASERD_RETURN_IF_ERROR(WriteLine(JsonLine(r)));
    if (r.kind() == pb::RESULT_KIND_SINGLE) {
      if (show_progress_) bar_.Update(s.progress);
    } else {
      spdlog::info("composition step {}: + {} on {} stacked -> validation {} {}",
                   r.plan_index() - header_.progress().interventions_total() + 1,
                   InterventionName(r.intervention()), r.stacked_on_size(),
                   MetricsLine(r.metrics().validation()), r.kept() ? "kept" : "not kept (stop)");
    }
    return absl::OkStatus();
  }

 private:
  absl::Status WriteLine(const std::string& line) {
    o_ << line << '\n';
    o_.flush();
    if (!o_) return absl::DataLossError(absl::StrCat("error writing ", path_));
    return absl::OkStatus();
  }
  absl::Status WriteExamples(const pb::ExampleOutputs& outputs) {
    *examples_ << JsonLine(outputs) << '\n';
    examples_->flush();
    if (!*examples_) return absl::DataLossError(absl::StrCat("error writing ", examples_path_));
    return absl::OkStatus();
  }
  std::ofstream& o_;
  std::string path_;
  std::ofstream* examples_;
  std::string examples_path_;
  pb::Job& header_;
  bool show_progress_;
  ProgressBar bar_;
};

// Resume: keeps what `out` already holds of this sweep (the header's baseline
// and the results; an incomplete last line is cut off) in `job`.
absl::Status ResumeFrom(const std::string& out, const pb::Job& header, SweepJob* job) {
  LASERD_ASSIGN_OR_RETURN(ResultsFile rf, ReadResultsFile(out));
  if (rf.has_header) {
    google::protobuf::util::MessageDifferencer diff;
    std::string report;
    diff.ReportDifferencesToString(&report);
    if (!diff.Compare(rf.header.spec(), header.spec())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--resume: ", out, " was written by a different sweep; spec differences: ", report));
    }
    if (rf.header.id() != header.id()) {
      return absl::FailedPreconditionError(absl::StrCat("--resume: ", out, " was written by sweep ",
                                                        rf.header.id(), " of another model (",
                                                        "this one is ", header.id(), ")"));
    }
    job->baseline = rf.header.baseline();
    job->stored = std::move(rf.results);
  } else {
    rf.valid_bytes = 0;
  }
  if (::truncate(out.c_str(), rf.valid_bytes) != 0) {
    return absl::DataLossError(absl::StrCat("--resume: cannot truncate ", out));
  }
  spdlog::info("resuming {}: {} results kept{}", out, job->stored.size(),
               rf.truncated_tail ? ", an incomplete last line dropped" : "");
  return absl::OkStatus();
}

// Resume of the example outputs file: keeps the baseline's line and those of
// the results kept (lines are in index order; a line past them, or one cut
// short, is dropped) and cuts the file after them.
absl::Status ResumeExamplesFrom(const std::string& path, SweepJob* job) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::OkStatus();
  std::ifstream in(path, std::ios::binary);
  std::string line;
  int64_t keep_bytes = 0, kept = 0;
  const int64_t results = static_cast<int64_t>(job->stored.size());
  while (job->baseline && std::getline(in, line)) {
    if (in.eof()) break;  // no newline: cut short
    pb::ExampleOutputs o;
    if (!google::protobuf::util::JsonStringToMessage(line, &o).ok()) break;
    if (o.result_index() != kept - 1 || o.result_index() >= results) break;
    if (o.result_index() == -1) job->baseline_outputs = std::move(o);
    keep_bytes += static_cast<int64_t>(line.size()) + 1;
    ++kept;
  }
  if (::truncate(path.c_str(), keep_bytes) != 0) {
    return absl::DataLossError(absl::StrCat("--resume: cannot truncate ", path));
  }
  if (kept - 1 < results && !(kept == 0 && results == 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--resume: ", path, " holds the example outputs of ", kept - 1, " results but ", results,
        " results are kept; run the sweep again without --resume"));
  }
  return absl::OkStatus();
}

// stdout: the best single and the best stack against the baseline.
void PrintSummary(const pb::Job& header, const std::string& out, const laser::SweepConfig& cfg,
                  const SweepOutcome& o) {
  const pb::Evaluation& baseline = o.baseline;
  std::printf("sweep %s: %lld results in %s%s\n", header.id().c_str(), (long long)o.results,
              out.c_str(),
              cfg.shard_count > 1 ? absl::StrFormat(" (shard %d of %d; best of this shard)",
                                                    cfg.shard_index, cfg.shard_count)
                                        .c_str()
                                  : "");
  std::printf("baseline       validation %s | test %s\n",
              MetricsLine(baseline.validation()).c_str(), MetricsLine(baseline.test()).c_str());
  if (o.standing.progress.has_best()) {
    const pb::Result& best = o.standing.progress.best();
    std::printf(
        "best single    %s\n               validation %s | test %s (test delta %+.2f pp, "
        "log-loss %+.4f)\n",
        InterventionName(best.intervention()).c_str(),
        MetricsLine(best.metrics().validation()).c_str(),
        MetricsLine(best.metrics().test()).c_str(), best.test_delta().accuracy(),
        best.test_delta().log_loss());
    if (best.has_significance()) {
      std::printf("               %s\n", api::SignificanceLine(best.significance()).c_str());
    }
  }
  if (o.standing.best_composition) {
    const pb::Result& bc = *o.standing.best_composition;
    std::string stack;
    for (const auto& iv : bc.stacked_on()) {
      absl::StrAppend(&stack, MatrixName(iv), ":", iv.layer(), ":", iv.rho(), " + ");
    }
    const auto& a = bc.intervention();
    absl::StrAppend(&stack, MatrixName(a), ":", a.layer(), ":", a.rho());
    std::printf("best stack     %s\n               validation %s | test %s\n", stack.c_str(),
                MetricsLine(bc.metrics().validation()).c_str(),
                MetricsLine(bc.metrics().test()).c_str());
    if (bc.has_significance()) {
      std::printf("               %s\n", api::SignificanceLine(bc.significance()).c_str());
    }
  }
  std::fflush(stdout);
}

// stderr: where the time went.
void PrintTimings(const laser::SweepRunner& R, double total_s, double load_s,
                  const SweepOutcome& o) {
  const laser::SweepTimings t = R.timings();
  const double sweep_s = o.sweep_seconds, baseline_s = o.baseline_seconds;
  if (R.replica_count() > 1) {
    // The phases overlap across replicas: report their device-seconds.
    std::fprintf(stderr,
                 "sweep time %.1f s: %lld interventions (%.1f per minute of sweep), %lld SVDs, "
                 "%zu replicas\n"
                 "  load %.2f s, baseline %.2f s (replica 0), sweep %.2f s\n"
                 "  summed over the replicas: SVD %.2f s, forward %.2f s, prefix %.2f s, "
                 "apply/restore %.2f s\n",
                 total_s, (long long)t.interventions,
                 sweep_s > 0 ? 60.0 * t.interventions / sweep_s : 0.0, (long long)t.decompositions,
                 R.replica_count(), load_s, baseline_s, sweep_s, t.svd_seconds, t.forward_seconds,
                 t.cache_seconds, t.apply_seconds);
    return;
  }
  const double rest = total_s - t.svd_seconds - t.forward_seconds - t.cache_seconds;
  auto pct = [&](double x) { return total_s > 0 ? 100.0 * x / total_s : 0.0; };
  std::fprintf(stderr,
               "sweep time %.1f s: %lld interventions (%.1f per minute of sweep), %lld SVDs\n"
               "  SVD      %8.2f s  %5.1f%%\n"
               "  forward  %8.2f s  %5.1f%%  (baseline %.2f s included)\n"
               "  prefix   %8.2f s  %5.1f%%  (advancing the residual-stream cache)\n"
               "  rest     %8.2f s  %5.1f%%  (load %.2f s, apply/restore %.2f s, I/O)\n",
               total_s, (long long)t.interventions,
               sweep_s > 0 ? 60.0 * t.interventions / sweep_s : 0.0, (long long)t.decompositions,
               t.svd_seconds, pct(t.svd_seconds), t.forward_seconds, pct(t.forward_seconds),
               baseline_s, t.cache_seconds, pct(t.cache_seconds), rest, pct(rest), load_s,
               t.apply_seconds);
}

absl::Status RunSweep(const SweepFlags& f) {
  const auto t_start = Clock::now();
  LASERD_ASSIGN_OR_RETURN(pb::SweepSpec spec, ReadSweepSpec(f.spec));
  LASERD_RETURN_IF_ERROR(ResolveShard(f, &spec));
  LASERD_ASSIGN_OR_RETURN(const HeadlessSweep hs, SweepConfigFromSpec(spec));
  laser::SweepConfig cfg = hs.config;
  cfg.cache_budget_bytes = f.cache_budget_mb * (int64_t{1} << 20);
  cfg.prefix_reuse = !f.no_prefix_reuse;
  cfg.factored_apply = !f.no_factored;
  std::string out = f.out;
  if (auto p = out.find("{shard}"); p != std::string::npos) {
    out.replace(p, 7, std::to_string(cfg.shard_index));
  }

  // Model (one replica per device), dataset, runner.
  auto t0 = Clock::now();
  std::vector<std::string> devices = {f.device};
  if (!f.devices.empty()) {
    LASERD_ASSIGN_OR_RETURN(devices, laser::ParseDeviceList(f.devices));
  }
  LASERD_ASSIGN_OR_RETURN(std::vector<model::LoadedModel> replicas,
                          laser::LoadReplicas(f.model, devices, f.tokenizer));
  const model::LoadedModel* lm = &replicas[0];
  const std::string identity = ModelIdentity(f.model);
  if (!spec.model().empty()) {
    const std::string base = std::filesystem::path(f.model).filename().string();
    const std::string stem = std::filesystem::path(f.model).stem().string();
    if (spec.model() != base && spec.model() != stem) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.model: '", spec.model(), "' does not name the model ", f.model));
    }
  }
  auto ds = eval::LoadDataset(hs.data_path);
  if (!ds.ok()) return SpecError(ds.status());
  auto runner =
      laser::SweepRunner::Create(laser::ReplicaModels(replicas), *lm->tokenizer, *ds, cfg);
  if (!runner.ok()) return SpecError(runner.status());
  laser::SweepRunner& R = **runner;
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info(
      "loaded {} ({} layers) and {} examples ({} validation, {} test) in {:.1f} s; plan: "
      "{} matrices, {} interventions, this shard ({}/{}) {}",
      f.model, lm->model->config().layers, ds->examples.size(), R.split().validation.size(),
      R.split().test.size(), load_s, R.plan().size(), R.total_interventions(), cfg.shard_index,
      cfg.shard_count, R.shard_interventions());
  if (replicas.size() > 1) {
    std::string names;
    for (size_t i = 0; i < replicas.size(); ++i) {
      absl::StrAppend(&names, i ? ", " : "", laser::ReplicaDeviceName(devices[i], replicas[i]));
    }
    spdlog::info("{} replicas ({}); the matrices of the sweep are spread across them",
                 replicas.size(), names);
  }

  pb::Job header;
  header.set_id(SweepId(RecordedSpec(spec), identity));
  *header.mutable_spec() = RecordedSpec(spec);
  header.set_validation_examples(static_cast<int64_t>(R.split().validation.size()));
  header.set_test_examples(static_cast<int64_t>(R.split().test.size()));
  header.mutable_progress()->set_interventions_total(R.total_interventions());

  SweepJob job;
  job.id = header.id();
  if (f.resume && std::filesystem::exists(out)) {
    LASERD_RETURN_IF_ERROR(ResumeFrom(out, header, &job));
  }
  job.keep_example_outputs = spec.keep_example_outputs();
  const std::string examples_path = ExampleOutputsPath(out);
  if (job.keep_example_outputs && f.resume) {
    LASERD_RETURN_IF_ERROR(ResumeExamplesFrom(examples_path, &job));
  }
  std::ofstream o(
      out, job.baseline ? std::ios::binary | std::ios::app : std::ios::binary | std::ios::trunc);
  if (!o) return absl::NotFoundError(absl::StrCat("cannot write ", out));
  std::ofstream examples;
  if (job.keep_example_outputs) {
    examples.open(examples_path, job.baseline ? std::ios::binary | std::ios::app
                                              : std::ios::binary | std::ios::trunc);
    if (!examples) return absl::NotFoundError(absl::StrCat("cannot write ", examples_path));
  }
  if (job.baseline) *header.mutable_baseline() = *job.baseline;
  ResultsFileSink sink(o, out, job.keep_example_outputs ? &examples : nullptr, examples_path,
                       header, !f.no_progress);
  LASERD_ASSIGN_OR_RETURN(const SweepOutcome outcome, RunSweepJob(R, job, sink));
  o.close();
  PrintSummary(header, out, cfg, outcome);
  PrintTimings(R, std::chrono::duration<double>(Clock::now() - t_start).count(), load_s, outcome);
  return absl::OkStatus();
}

}  // namespace

void AddSweepCommand(CLI::App& app, Runner* run) {
  auto f = std::make_shared<SweepFlags>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Run a LASER sweep headless: a SweepSpec (JSON) in, a JSONL results file out");
  cmd->add_option("--model", f->model, "GGUF file or safetensors model directory")->required();
  cmd->add_option("--spec", f->spec, "Sweep spec: a laser.v1.SweepSpec in protobuf JSON")
      ->required();
  cmd->add_option("--out", f->out, "Results file (JSONL); '{shard}' is replaced by the shard index")
      ->required();
  cmd->add_option("--shard", f->shard,
                  "Run shard i of N ('i/N'); default: JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID "
                  "with --shards, else spec.shard");
  cmd->add_option("--shards", f->shards,
                  "Shard count when the index comes from JOB_COMPLETION_INDEX/SLURM_ARRAY_TASK_ID");
  cmd->add_flag("--resume", f->resume,
                "Keep the results already in --out (by plan_index) and compute only the rest");
  auto* device = cmd->add_option("--device", f->device, "auto | cpu | cuda[:N][/fp32|/bf16|/fp16]")
                     ->default_val("auto");
  cmd->add_option("--devices", f->devices,
                  "Several devices, one resident replica each, the sweep's matrices spread "
                  "across them: a comma-separated list of --device values, or GPU indices "
                  "('0,1' = cuda:0,cuda:1)")
      ->excludes(device);
  cmd->add_option("--tokenizer", f->tokenizer,
                  "tokenizer.json (safetensors models; default: beside the weights)");
  cmd->add_option("--cache-budget-mb", f->cache_budget_mb,
                  "Memory for the cached residual streams (prefix reuse), MiB")
      ->default_val(1024);
  cmd->add_flag("--no-prefix-reuse", f->no_prefix_reuse,
                "Run every layer for every intervention (benchmarks)");
  cmd->add_flag("--no-factored", f->no_factored,
                "Always write W_k densely instead of applying factors (benchmarks)");
  cmd->add_flag("--no-progress", f->no_progress, "No progress output on stderr");
  cmd->callback([f, run]() {
    *run = [f]() {
      absl::Status st = RunSweep(*f);
      if (!st.ok()) return Fail(st);
      return static_cast<int>(kExitOk);
    };
  });
}

void AddMergeCommand(CLI::App& app, Runner* run) {
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto allow = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "merge", "Join shard result files of one sweep into what one unsharded run writes");
  cmd->add_option("inputs", *inputs, "Shard result files (JSONL)")->required();
  cmd->add_option("--out", *out, "Merged results file")->required();
  cmd->add_flag("--allow-incomplete", *allow, "Merge even when planned results are missing");
  cmd->callback([inputs, out, allow, run]() {
    *run = [inputs, out, allow]() {
      absl::Status st = MergeResultFiles(*inputs, *out, *allow);
      if (!st.ok()) return Fail(st);
      std::printf("merged %zu files into %s\n", inputs->size(), out->c_str());
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace laserd::server
