// Exporting an edited model (`laserd export`): `merged` writes the
// edited weights as a Hugging Face model directory (fp32 safetensors in the
// architecture's own tensor names and layouts as engine/model/architecture.h
// describes them, config.json, tokenizer files)
// that transformers loads as it is; `factored` stores each edited matrix as
// its two low-rank factors so the file shrinks, and laserd loads it back
// (engine/model/laser_factors.h). docs/export.md describes the files.
#ifndef LASERD_ENGINE_LASER_EXPORT_H_
#define LASERD_ENGINE_LASER_EXPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/formats/weights.h"
#include "engine/laser/intervention.h"
#include "engine/model/model.h"
#include "kernels/svd.h"

namespace laserd::laser {

// One edit W(type, layer) ← W_k with k = KeptRankFromRho(out, in, rho).
struct EditSpec {
  std::string type;  // canonical
  int64_t layer = 0;
  double rho = 1.0;
};

// Parses "T:ℓ:ρ[,T:ℓ:ρ…]". T is a canonical type or a paper alias
// (CanonicalMatrixType); ℓ an integer in [0, layers); ρ a number in (0, 1].
// INVALID_ARGUMENT naming the offending item for anything else, for a type
// the model lacks (`available`: the model's MatrixTypes()) and for the same
// (T, ℓ) given twice.
absl::StatusOr<std::vector<EditSpec>> ParseEdits(const std::string& spec,
                                                 const std::vector<std::string>& available,
                                                 int64_t layers);

// An edit as applied: its rank and truncation error, and the host factors
// W_k = us · vᵀ, us = U_kΣ_k [out, k], v = V_k [in, k] (row-major).
struct AppliedEdit {
  EditSpec spec;
  int64_t out = 0, in = 0;
  int64_t k = 0, max_rank = 0;
  double rel_error = 0.0;  // ‖W − W_k‖_F / ‖W‖_F
  std::vector<float> us, v;
};

// Decomposes each matrix of `edits` (to its k, with `svd`; the paper method
// with the seed a sweep uses for that matrix and rank, PaperSeed) and applies it
// densely with `editor` (which must edit `model`). On error the edits applied
// so far stay with the editor (its destructor restores them).
absl::StatusOr<std::vector<AppliedEdit>> ApplyEdits(model::Model* model,
                                                    const std::vector<EditSpec>& edits,
                                                    const kernels::SvdOptions& svd, Editor* editor);

enum class ExportFormat { kMerged, kFactored };
// "merged" | "factored"; INVALID_ARGUMENT otherwise.
absl::StatusOr<ExportFormat> ParseExportFormat(const std::string& name);
const char* ExportFormatName(ExportFormat f);

struct ExportResult {
  std::string weights_path;            // <dir>/model.safetensors
  int64_t weights_bytes = 0;           // its size
  std::vector<std::string> files;      // every file written, in order
  int64_t dense_tensors_factored = 0;  // edited matrices stored as factors
  int64_t edits_kept_dense = 0;        // edited q/k/v of fused tensors (GPT-2, GPT-NeoX)
};

// Writes `model` (loaded from `src`, carrying the edits `applied` — see
// ApplyEdits) to the directory `out_dir` (created if needed; files in it are
// overwritten). Every matrix comes from the model, so it is the edited one
// and, for GGUF Llama sources, already in Hugging Face row order; every other
// tensor is read from `src` (renamed from GGUF to Hugging Face names). GGUF
// sources: architectures llama, mistral, qwen2 and qwen3, their linear and
// yarn rope scaling written as config.json's rope_scaling (UNIMPLEMENTED
// otherwise, and for llama3 scaling stored as the rope_freqs tensor).
absl::StatusOr<ExportResult> WriteExport(const formats::WeightSource& src, model::Model* model,
                                         const std::vector<AppliedEdit>& applied,
                                         ExportFormat format, const std::string& out_dir);

// A tensor to write: fp32, row-major, PyTorch-order shape.
struct StTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Writes a safetensors file: 8-byte little-endian header length, JSON header
// {name: {dtype "F32", shape, data_offsets}, "__metadata__": {string: string}}
// padded with spaces to a multiple of 8, then the tensors' bytes in header
// order. INVALID_ARGUMENT for duplicate names or data not matching a shape.
absl::Status WriteSafetensorsF32(const std::string& path, const std::vector<StTensor>& tensors,
                                 const std::map<std::string, std::string>& metadata);

// A LlamaConfig-style config.json for a GGUF Llama-family source, from its
// metadata (model_type = the GGUF architecture, torch_dtype float32).
absl::StatusOr<nlohmann::json> HfConfigFromGguf(const formats::WeightSource& src,
                                                const model::ModelConfig& config);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_EXPORT_H_
