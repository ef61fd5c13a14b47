// laserd export: apply LASER edits to a model and write it out, merged (a
// Hugging Face model directory) or factored (edited matrices as two factors).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/formats/weights.h"
#include "engine/laser/export.h"
#include "engine/laser/intervention.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "kernels/svd.h"
#include "server/commands.h"
#include "spdlog/spdlog.h"

namespace laserd::server {
namespace {

struct ExportFlags {
  std::string model, edit, out, format = "merged", svd = "exact", device = "cpu";
  std::string dump_logits, dump_tokens;
  uint64_t seed = 0;
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "laserd export: %s\n", s.ToString().c_str());
  return ExitCodeFor(s);
}

int RunExportCommand(const ExportFlags& f) {
  auto format = laser::ParseExportFormat(f.format);
  auto method = kernels::ParseSvdMethod(f.svd);
  for (const absl::Status& st : {format.status(), method.status()}) {
    if (!st.ok()) {
      std::fprintf(stderr, "laserd export: %s\n", std::string(st.message()).c_str());
      return kExitUsage;
    }
  }
  std::vector<std::vector<int32_t>> dump_seqs;
  if (!f.dump_logits.empty()) {
    std::vector<int32_t> ids;
    for (absl::string_view p : absl::StrSplit(f.dump_tokens, ',', absl::SkipEmpty())) {
      int32_t id;
      if (!absl::SimpleAtoi(p, &id)) {
        std::fprintf(stderr, "laserd export: --dump-tokens: '%s' is not a token id\n",
                     std::string(p).c_str());
        return kExitUsage;
      }
      ids.push_back(id);
    }
    if (ids.empty()) {
      std::fprintf(stderr, "laserd export: --dump-logits needs --dump-tokens\n");
      return kExitUsage;
    }
    dump_seqs.push_back(ids);
  }
  auto backend = kernels::MakeBackend(f.device);
  if (!backend.ok()) return Fail(backend.status());
  auto src = formats::OpenWeights(f.model);
  if (!src.ok()) return Fail(src.status());
  auto model = model::Model::Load(**src, backend->get());
  if (!model.ok()) return Fail(model.status());
  auto edits = laser::ParseEdits(f.edit, (*model)->MatrixTypes(), (*model)->config().layers);
  if (!edits.ok()) {
    std::fprintf(stderr, "laserd export: %s\n", std::string(edits.status().message()).c_str());
    return kExitUsage;
  }
  kernels::SvdOptions svd;
  svd.method = *method;
  svd.seed = f.seed;
  laser::Editor editor(model->get());
  auto applied = laser::ApplyEdits(model->get(), *edits, svd, &editor);
  if (!applied.ok()) return Fail(applied.status());
  for (const laser::AppliedEdit& a : *applied) {
    spdlog::info("edit {} layer {}: rho {} keeps k = {} of {}, relative error {:.6f}", a.spec.type,
                 a.spec.layer, a.spec.rho, a.k, a.max_rank, a.rel_error);
  }
  if (!dump_seqs.empty()) {
    auto logits = (*model)->Logits(dump_seqs);
    if (!logits.ok()) return Fail(logits.status());
    const int64_t V = (*model)->config().vocab_size;
    nlohmann::json rows = nlohmann::json::array();
    for (size_t p = 0; p < dump_seqs[0].size(); ++p) {
      rows.push_back(std::vector<float>(logits->begin() + p * V, logits->begin() + (p + 1) * V));
    }
    nlohmann::json j = {{"tokens", dump_seqs[0]}, {"vocab_size", V}, {"logits", rows}};
    std::ofstream o(f.dump_logits);
    o << j.dump() << "\n";
    if (!o) return Fail(absl::PermissionDeniedError("cannot write " + f.dump_logits));
    spdlog::info("edited model's logits written to {}", f.dump_logits);
  }
  auto r = laser::WriteExport(**src, model->get(), *applied, *format, f.out);
  if (!r.ok()) return Fail(r.status());
  nlohmann::json out = {{"format", laser::ExportFormatName(*format)},
                        {"weights", r->weights_path},
                        {"weights_bytes", r->weights_bytes},
                        {"files", r->files},
                        {"factored_matrices", r->dense_tensors_factored},
                        {"edits_kept_dense", r->edits_kept_dense}};
  nlohmann::json ej = nlohmann::json::array();
  for (const laser::AppliedEdit& a : *applied) {
    ej.push_back({{"type", a.spec.type},
                  {"layer", a.spec.layer},
                  {"rho", a.spec.rho},
                  {"k", a.k},
                  {"max_rank", a.max_rank},
                  {"rel_error", a.rel_error}});
  }
  out["edits"] = ej;
  std::cout << out.dump(2) << std::endl;
  return kExitOk;
}

}  // namespace

void AddExportCommand(CLI::App& app, Runner* run) {
  auto f = std::make_shared<ExportFlags>();
  CLI::App* sub = app.add_subcommand(
      "export", "Apply LASER edits and write the model (merged safetensors or factored)");
  sub->add_option("--model", f->model, "Model: a GGUF file, or a safetensors file or directory")
      ->required();
  sub->add_option("--edit", f->edit, "Edits T:layer:rho[,T:layer:rho...], e.g. mlp.in:5:0.1")
      ->required();
  sub->add_option("--out", f->out, "Output directory")->required();
  sub->add_option("--format", f->format, "merged (Hugging Face model) or factored")
      ->check(CLI::IsMember({"merged", "factored"}))
      ->capture_default_str();
  sub->add_option("--svd", f->svd, "SVD method: exact, randomized, paper or auto")
      ->check(CLI::IsMember({"exact", "randomized", "paper", "auto"}))
      ->capture_default_str();
  sub->add_option("--seed", f->seed, "Seed of the randomized SVD methods")->capture_default_str();
  sub->add_option("--device", f->device, "Compute device: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  sub->add_option("--dump-logits", f->dump_logits,
                  "Write the edited model's logits on --dump-tokens to this JSON file");
  sub->add_option("--dump-tokens", f->dump_tokens, "Comma-separated token ids for --dump-logits");
  sub->callback([f, run] { *run = [f] { return RunExportCommand(*f); }; });
}

}  // namespace laserd::server
