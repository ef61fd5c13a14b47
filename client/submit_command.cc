// laserctl submit: builds a SweepSpec from a spec file and flags, creates the
// sweep (or only validates it) and prints the job id; --watch then watches it.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/commands.h"
#include "client/failure.h"
#include "client/files.h"
#include "client/laserctl_core.h"
#include "client/watch.h"
#include "proto/spec_io.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

struct SubmitFlags {
  SpecFlags spec;
  std::string spec_file, request_id;
  bool validate_only = false, watch = false;
  std::vector<std::string> rho_text, rate_text, topk_text;
  WatchFlags watch_flags;
};

absl::Status ParseDoubles(const std::vector<std::string>& in, const std::string& flag,
                          std::vector<double>* out) {
  for (const auto& s : in) {
    double v;
    if (!absl::SimpleAtod(s, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", s, "\" is not a number"));
    }
    out->push_back(v);
  }
  return absl::OkStatus();
}

// The comma-separated number flags into `f->spec`; the message of the first bad value.
absl::Status ParseNumberFlags(SubmitFlags* f) {
  LASERD_RETURN_IF_ERROR(ParseDoubles(f->rho_text, "--rho", &f->spec.rho));
  LASERD_RETURN_IF_ERROR(ParseDoubles(f->rate_text, "--rate", &f->spec.rate));
  for (const auto& s : f->topk_text) {
    int32_t k;
    if (!absl::SimpleAtoi(s, &k)) {
      return absl::InvalidArgumentError("--top-k: \"" + s + "\" is not an integer");
    }
    f->spec.top_k.push_back(k);
  }
  return absl::OkStatus();
}

int Submit(Connection& conn, const SubmitFlags& f, const WatchOptions& wo) {
  pb::SweepSpec base;
  if (!f.spec_file.empty()) {
    auto text = ReadFile(f.spec_file);
    if (!text.ok()) return FailStatus(text.status());
    auto spec = proto::ParseSweepSpecText(*text, f.spec_file);
    if (!spec.ok()) return Fail(kExitUsage, std::string(spec.status().message()));
    base = *spec;
  }
  auto spec = ApplySpecFlags(f.spec, base);
  if (!spec.ok()) return Fail(kExitUsage, std::string(spec.status().message()));
  pb::CreateSweepRequest req;
  *req.mutable_spec() = *spec;
  req.set_request_id(f.request_id);
  req.set_validate_only(f.validate_only);
  pb::Job job;
  auto ctx = conn.Context();
  auto st = conn.sweeps().CreateSweep(ctx.get(), req, &job);
  if (!st.ok()) return FailRpc("submit", st);
  if (f.validate_only) {
    std::cout << "valid: " << job.progress().interventions_total() << " interventions\n";
    return kExitOk;
  }
  std::cout << job.id() << "\n";
  std::cout.flush();
  if (f.watch) return Watch(conn, job.id(), 0, wo);
  return kExitOk;
}

}  // namespace

void AddSubmitCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  auto f = std::make_shared<SubmitFlags>();
  SpecFlags& sf = f->spec;
  auto* submit = app.add_subcommand("submit", "Submit a sweep; prints the job id");
  submit->add_option("--spec", f->spec_file,
                     "laser.v1.SweepSpec in protobuf JSON (flags override it)");
  submit->add_option("--dataset-id", sf.dataset_id, "Uploaded dataset id (sha256)");
  submit->add_option("--dataset-path", sf.dataset_path, "JSONL path on the server");
  submit->add_flag("--allow-changed-file", sf.allow_changed_file,
                   "Run a resumed job on the dataset file even if it changed since the job was "
                   "created (default: the job fails)");
  submit->add_option("--task", sf.task,
                     "completion | choice | generation (default: completion or choice per record)");
  submit->add_option("--match", sf.match,
                     "greedy | top1_decoded (completion); exact | prefix | contains (generation)");
  submit->add_option("--max-new-tokens", sf.max_new_tokens,
                     "Generation: new tokens per example, 1 to 1024 (default 16)");
  submit->add_option("--stop", sf.stop_strings, "Generation: a stop string (repeatable)");
  submit->add_flag("--match-prompt", sf.match_prompt,
                   "Generation: compare prompt + continuation (the paper code's quirk)");
  submit->add_option(
      "--matrix-types,--types", sf.matrix_types,
      "Matrix types (comma-separated or repeated): attn.q ... mlp.out, aliases, mlp, attn, all;"
      " mixture of experts: moe.router, moe.in[e], moe.in (every expert), moe");
  submit
      ->add_option("--experts", sf.experts,
                   "Mixture of experts: only these experts' matrices (comma-separated)")
      ->delimiter(',');
  submit->add_option("--layers", sf.layers, "Layers: 22 | 0,4,8 | 20-29 | 20:30:2 | 20:");
  submit->add_option("--rho", f->rho_text, "Kept-rank fractions in (0, 1], comma-separated")
      ->delimiter(',');
  submit->add_option("--rate", f->rate_text, "The paper's rate values in [0, 10), comma-separated")
      ->delimiter(',');
  submit->add_flag("--add-suggested-rank", sf.add_suggested_rank, "Also the Marchenko-Pastur rank");
  submit->add_option("--svd", sf.svd_method, "auto | exact | randomized | paper");
  submit->add_option("--oversampling", sf.oversampling, "Randomized SVD oversampling");
  submit->add_option("--power-iterations", sf.power_iterations,
                     "Power iterations (randomized, paper)");
  submit->add_option("--seed", sf.seed, "SVD seed");
  submit
      ->add_option("--kinds", sf.intervention_kinds,
                   "Intervention kinds: rank_reduction, zero, prune (comma-separated)")
      ->delimiter(',');
  submit->add_flag("--round-to-source-dtype", sf.round_to_source_dtype,
                   "Round each edited matrix to the model's stored type (F16/BF16)");
  submit->add_option("--split", sf.split, "first | shuffle");
  submit->add_option("--validation-fraction", sf.validation_fraction, "Validation fraction");
  submit->add_option("--split-seed", sf.split_seed, "Seed of --split shuffle");
  submit->add_option("--top-k", f->topk_text, "k values of top-k accuracy, comma-separated")
      ->delimiter(',');
  submit->add_option("--batch-size", sf.batch_size, "Sequences per forward pass");
  submit->add_option("--max-batch-tokens", sf.max_batch_tokens, "Token budget of a forward pass");
  submit->add_option("--composition", sf.composition, "none | greedy");
  submit->add_option("--max-interventions", sf.max_interventions, "Composition stack bound");
  submit->add_flag("--keep-example-outputs", sf.keep_example_outputs,
                   "Keep every example's outcome for every result (laserctl outputs)");
  submit->add_option("--priority", sf.priority, "Higher runs first");
  submit->add_option("--label", sf.labels, "key=value (repeatable)");
  submit->add_option("--model", sf.model, "Refuse unless the served model has this name or sha256");
  submit->add_option("--request-id", f->request_id,
                     "Idempotency key: a retry returns the same job");
  submit->add_flag("--validate-only", f->validate_only,
                   "Check the spec and count interventions only");
  submit->add_flag("--watch", f->watch, "Watch the job after submitting it");
  AddWatchFlags(submit, &f->watch_flags);
  submit->callback([f, conn, run] {
    *run = [f, conn] {
      auto wo = f->watch_flags.Parse();
      if (!wo.ok()) return Fail(kExitUsage, std::string(wo.status().message()));
      return WithConnection(*conn, [&](Connection& c) {
        if (absl::Status st = ParseNumberFlags(f.get()); !st.ok()) {
          return Fail(kExitUsage, std::string(st.message()));
        }
        return Submit(c, *f, *wo);
      });
    };
  });
}

}  // namespace laserd::client
