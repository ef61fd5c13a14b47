// gpu_bench sections that talk to CUDA directly: smoke, gemm, svd.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "bench/gpu/sections.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "kernels/svd.h"

namespace laserd::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Every shared library this process has mapped (/proc/self/maps).
std::vector<std::string> LoadedLibraries() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> libs;
  for (std::string line; std::getline(maps, line);) {
    const size_t slash = line.find('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) {
      libs.insert(line.substr(slash));
    }
  }
  return {libs.begin(), libs.end()};
}

absl::Status NeedCuda() {
  std::string why;
  if (kernels::CudaDeviceCount(&why) > 0) return absl::OkStatus();
  return absl::FailedPreconditionError("no CUDA device: " + why);
}

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// A device buffer of n random bf16 values (uniform in [-1, 1)).
void* RandomBf16(uint64_t seed, int64_t n) {
  std::vector<float> f(n);
  FillUniformParallel(seed, 1.0f, f.data(), n);
  std::vector<uint16_t> h(n);
  for (int64_t i = 0; i < n; ++i) h[i] = ToBf16(f[i]);
  void* d = nullptr;
  if (cudaMalloc(&d, n * 2) != cudaSuccess) return nullptr;
  cudaMemcpy(d, h.data(), n * 2, cudaMemcpyHostToDevice);
  return d;
}

double CublasBf16Rate(int64_t m, int64_t n, int64_t k, int iters, std::string* error) {
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    *error = "cublasCreate failed";
    return 0;
  }
  void *a = RandomBf16(1, m * k), *b = RandomBf16(2, k * n), *c = nullptr;
  cudaMalloc(&c, m * n * 4);
  const float alpha = 1, beta = 0;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  auto run = [&] {
    st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(k), &alpha, a, CUDA_R_16BF,
                      int(k), b, CUDA_R_16BF, int(k), &beta, c, CUDA_R_32F, int(m),
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
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
  cublasDestroy(h);
  if (st != CUBLAS_STATUS_SUCCESS || a == nullptr || b == nullptr) {
    *error = absl::StrCat("cublasGemmEx status ", static_cast<int>(st));
    return 0;
  }
  return 2.0 * m * n * k * iters / (ms * 1e-3);
}

// laserd's own path: y = x·Wᵀ through Backend::Linear with W resident in bf16
// and x an fp32 activation (converted to bf16 inside, as in a forward).
double BackendBf16Rate(int64_t m, int64_t n, int64_t k, int iters) {
  auto be = kernels::MakeBackend("cuda/bf16");
  if (!be.ok()) return 0;
  std::vector<float> wh(n * k), xh(m * k);
  FillUniformParallel(3, 1.0f, wh.data(), n * k);
  FillUniformParallel(4, 1.0f, xh.data(), m * k);
  kernels::Tensor w = (*be)->FromHost(wh.data(), n, k);
  kernels::Tensor xr = (*be)->FromHost(xh.data(), m, k);
  kernels::Tensor x = (*be)->Empty(m, k), y = (*be)->Empty(m, n);
  (*be)->Copy(xr, &x);
  for (int i = 0; i < 3; ++i) (*be)->Linear(x, w, nullptr, &y);
  cudaDeviceSynchronize();
  const auto t = Clock::now();
  for (int i = 0; i < iters; ++i) (*be)->Linear(x, w, nullptr, &y);
  cudaDeviceSynchronize();
  return 2.0 * m * n * k * iters / SecondsSince(t);
}

}  // namespace

absl::Status RunSmoke(const BenchOptions&, BenchReport* r) {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  r->Set("cuda_runtime_version", runtime);
  r->Set("cuda_driver_version", driver);
  const absl::Status cuda = NeedCuda();
  if (!cuda.ok()) {
    r->Set("libraries", LoadedLibraries());
    return cuda;
  }
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, 0);
  r->Set("device", {{"name", p.name},
                    {"compute_capability", absl::StrCat(p.major, ".", p.minor)},
                    {"multiprocessors", p.multiProcessorCount},
                    {"memory_gib", p.totalGlobalMem / 1073741824.0}});
  std::string error;
  const double rate = CublasBf16Rate(256, 256, 256, 1, &error);
  r->Set("cublas_gemm", error.empty() ? json("ok") : json(error));
  // One backend op against the CPU backend.
  auto gpu = kernels::MakeBackend("cuda");
  if (!gpu.ok()) return gpu.status();
  auto cpu = kernels::MakeCpuBackend();
  std::vector<float> xh(64 * 96), wh(80 * 96), yg(64 * 80), yc(64 * 80);
  FillUniformParallel(5, 1.0f, xh.data(), xh.size());
  FillUniformParallel(6, 1.0f, wh.data(), wh.size());
  for (kernels::Backend* b : {gpu->get(), cpu.get()}) {
    kernels::Tensor x = b->FromHost(xh.data(), 64, 96), w = b->FromHost(wh.data(), 80, 96);
    kernels::Tensor y = b->Empty(64, 80);
    b->Linear(x, w, nullptr, &y);
    b->ToHost(y, b == cpu.get() ? yc.data() : yg.data());
  }
  double worst = 0;
  for (size_t i = 0; i < yc.size(); ++i) worst = std::max(worst, double(std::abs(yc[i] - yg[i])));
  r->Set("backend_linear_max_abs_diff", worst);
  r->Set("libraries", LoadedLibraries());
  if (!error.empty() || rate <= 0) return absl::InternalError("cuBLAS: " + error);
  if (!(worst < 1e-3))
    return absl::InternalError(absl::StrCat("backend Linear differs by ", worst));
  return absl::OkStatus();
}

absl::Status RunGemm(const BenchOptions& o, BenchReport* r) {
  LASERD_RETURN_IF_ERROR(NeedCuda());
  const int64_t s = o.gemm_size;
  const int64_t tokens = int64_t{o.forward_seqs} * o.forward_len;
  const int64_t d = o.shape.hidden, f = o.shape.intermediate;
  std::string error;
  r->Set("/cublas_bf16_tflops/square", CublasBf16Rate(s, s, s, 20, &error) / 1e12);
  r->Set("/cublas_bf16_tflops/mlp", CublasBf16Rate(f, tokens, d, 50, &error) / 1e12);
  if (!error.empty()) return absl::InternalError(error);
  r->Set("/laserd_linear_bf16_tflops/square", BackendBf16Rate(s, s, s, 20) / 1e12);
  r->Set("/laserd_linear_bf16_tflops/mlp", BackendBf16Rate(tokens, f, d, 50) / 1e12);
  r->Set("shapes", {{"square", {s, s, s}}, {"mlp", {f, tokens, d}}});
  return absl::OkStatus();
}

namespace {

// One shape's routes; a route that would start past the budget is skipped.
absl::Status SvdShape(const BenchOptions& o, int64_t m, int64_t n, BenchReport* r) {
  const std::string key = absl::StrCat("/", m, "x", n);
  const int64_t k = o.svd_rank;
  auto be = kernels::MakeBackend("cuda");
  if (!be.ok()) return be.status();
  // W = G1 diag(d) G2ᵀ with a decaying spectrum d_t = 1 / (1 + t/32).
  const int64_t rk = std::min(m, n);
  std::vector<float> g1(m * rk), g2(n * rk);
  FillUniformParallel(1, 1.0f, g1.data(), m * rk);
  FillUniformParallel(2, 1.0f, g2.data(), n * rk);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < rk; ++t) g1[i * rk + t] /= 1.0f + t / 32.0f;
  kernels::Tensor us = (*be)->FromHost(g1.data(), m, rk), v = (*be)->FromHost(g2.data(), n, rk);
  kernels::Tensor w = (*be)->Empty(m, n);
  (*be)->Linear(us, v, nullptr, &w);
  struct Route {
    const char* name;
    kernels::SvdMethod method;
    kernels::GpuSolver solver;
    bool tf32;
    bool batched;
  };
  using M = kernels::SvdMethod;
  using S = kernels::GpuSolver;
  const Route routes[] = {
      {"exact/gesvd", M::kExact, S::kGesvd, false, false},
      {"randomized/gesvd", M::kRandomized, S::kGesvd, false, false},
      {"randomized/gesvdp", M::kRandomized, S::kGesvdp, false, false},
      {"randomized/gram", M::kRandomized, S::kGram, false, false},
      {"randomized/gram/tf32", M::kRandomized, S::kGram, true, false},
      {"randomized/gram/batched", M::kRandomized, S::kGram, false, true},
      {"randomized/gesvd/batched", M::kRandomized, S::kGesvd, false, true},
      {"paper/gesvd", M::kPaper, S::kGesvd, false, false},
      {"paper/gram", M::kPaper, S::kGram, false, false},
      {"paper/gram/batched", M::kPaper, S::kGram, false, true},
      {"exact/gesvdp", M::kExact, S::kGesvdp, false, false},
      {"exact/gram", M::kExact, S::kGram, false, false},
  };
  double exact_err = -1;
  for (const Route& rt : routes) {
    std::string name = rt.name;  // a JSON pointer spells '/' as ~1
    for (size_t at; (at = name.find('/')) != std::string::npos;) name.replace(at, 1, "~1");
    const std::string rkey = key + "/" + name;
    if (r->Left() < 5) {
      r->Set(rkey, {{"skipped", "time budget spent"}});
      continue;
    }
    kernels::SvdOptions so;
    so.method = rt.method;
    so.gpu_solver = rt.solver;
    so.gpu_tf32_sketch = rt.tf32;
    const int batch = rt.batched ? o.svd_batch : 1;
    std::vector<const kernels::Tensor*> ws(batch, &w);
    // Exact routes run once (their first run includes workspace allocation);
    // the others once to warm up, then three timed runs (median).
    const int reps = rt.method == M::kExact ? 1 : 4;
    std::vector<double> times;
    absl::StatusOr<std::vector<kernels::BackendSvd>> res;
    for (int i = 0; i < reps && r->Left() > 0; ++i) {
      const auto t0 = Clock::now();
      res = kernels::DecomposeOnBackend(be->get(), ws, k, so, {k});
      if (!res.ok()) break;
      if (i > 0 || reps == 1) times.push_back(SecondsSince(t0) / batch);
    }
    json j;
    if (!res.ok()) {
      j["error"] = res.status().ToString();
    } else if (times.empty()) {
      j["skipped"] = "time budget spent during warm-up";
    } else {
      std::sort(times.begin(), times.end());
      j["ms_per_matrix"] = 1e3 * times[times.size() / 2];
      j["batch"] = batch;
      j["relative_error"] = (*res)[0].errors[0];
      if (rt.method == M::kExact && rt.solver == S::kGesvd) exact_err = (*res)[0].errors[0];
      if (exact_err > 0) j["excess_error"] = (*res)[0].errors[0] / exact_err - 1;
    }
    r->Set(rkey, j);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunSvd(const BenchOptions& o, BenchReport* r) {
  LASERD_RETURN_IF_ERROR(NeedCuda());
  r->Set("rank", o.svd_rank);
  LASERD_RETURN_IF_ERROR(SvdShape(o, o.svd_rows, o.shape.hidden, r));
  return SvdShape(o, o.svd_rows, o.shape.intermediate, r);
}

}  // namespace laserd::bench
