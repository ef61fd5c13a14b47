// The sections of gpu_bench, each run in its own process by bench/gpu/check.sh
// (`gpu_bench --section NAME --out FILE`), each writing its figures to a
// BenchReport as it goes:
//   smoke    does CUDA initialise: device, driver and runtime versions, one
//            cuBLAS product, one backend op, the shared libraries loaded
//   prepare  no GPU: the sweep dataset (data.jsonl) and the token sequences
//            both laserd and the PyTorch peer score (sequences.json)
//   gemm     bf16 GEMM rate on random data: raw cublasGemmEx, and laserd's own
//            path (Backend::Linear, bf16 resident weight, fp32 activation)
//   svd      every GPU SVD route on 4096×4096 and 4096×11008 at rank 410:
//            time per matrix and error over the exact truncation's, single
//            and batched (one strided batch of `svd_batch` matrices)
//   model    the Llama-2-7B-shaped random model in bf16: forward tokens/s and
//            GEMM rate, then a SweepRunner sweep (interventions per minute)
//   smollm2  a real-weights SmolLM2 slice on the CPU, CUDA fp32 and CUDA bf16:
//            per-example log-probs of a small sweep and its best intervention
#ifndef LASERD_BENCH_GPU_SECTIONS_H_
#define LASERD_BENCH_GPU_SECTIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/gpu/bench_report.h"
#include "bench/gpu/random_llama.h"

namespace laserd::bench {

struct BenchOptions {
  // "cuda", or "cpu" to rehearse a section's code path without a GPU (its
  // figures are then marked rehearsal and mean nothing about a GPU).
  std::string backend = "cuda";
  LlamaShape shape;
  std::string sequences;  // sequences.json (prepare writes it)
  std::string tokenizer;  // tokenizer.json of the sweep dataset
  std::string data;       // data.jsonl of the sweep (prepare writes it)
  int examples = 64;      // sweep examples
  int forward_seqs = 32, forward_len = 256;
  int sweep_matrices = 4;  // mlp.out of N layers spread evenly, the last included
  std::vector<double> rhos = {0.01, 0.05, 0.1};
  std::string svd_solver = "gram";
  int64_t svd_rows = 4096, svd_rank = 410;
  int svd_batch = 32;
  std::string gguf;          // the SmolLM2 slice
  std::string smollm2_data;  // capitals.jsonl
  int smollm2_examples = 48;
  int gemm_size = 8192;
};

absl::Status RunSmoke(const BenchOptions& o, BenchReport* r);
absl::Status RunPrepare(const BenchOptions& o, BenchReport* r);
absl::Status RunGemm(const BenchOptions& o, BenchReport* r);
absl::Status RunSvd(const BenchOptions& o, BenchReport* r);
absl::Status RunModel(const BenchOptions& o, BenchReport* r);
absl::Status RunSmolLM2(const BenchOptions& o, BenchReport* r);

// "cuda/bf16" for the GPU, "cpu" for a rehearsal.
std::string ReducedDevice(const BenchOptions& o);

}  // namespace laserd::bench

#endif  // LASERD_BENCH_GPU_SECTIONS_H_
