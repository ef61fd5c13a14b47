// Device kernels of the CUDA backend. Straightforward, correct kernels first:
// one block per row for row-wise ops (norms, scoring), one block per
// (query row, head) for attention with an online softmax over key tiles, and
// grid-stride loops for elementwise ops. Formulas mirror cpu_backend.cc.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_kernels.h"

namespace laserd::kernels::cuda {
namespace {

constexpr int kRowThreads = 256;   // threads per block of row-wise kernels
constexpr int kAttnThreads = 128;  // threads per block (and keys per tile) of attention
constexpr int kEltThreads = 256;   // threads per block of elementwise kernels
constexpr int64_t kMaxEltBlocks = 1 << 20;

int EltBlocks(int64_t n) {
  int64_t b = (n + kEltThreads - 1) / kEltThreads;
  if (b < 1) b = 1;
  if (b > kMaxEltBlocks) b = kMaxEltBlocks;
  return static_cast<int>(b);
}

template <typename T>
__device__ T WarpSum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32); every thread gets the
// result. `scratch` holds at least 32 elements and may be reused right after.
template <typename T>
__device__ T BlockSum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // earlier readers of scratch are done
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return WarpSum(v);
}

__device__ float BlockMax(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return WarpMax(v);
}

__device__ __forceinline__ float Act(float x, ActKind act) {
  switch (act) {
    case ActKind::kSilu:
      return x / (1.0f + expf(-x));
    case ActKind::kGeluTanh: {
      const float c = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    case ActKind::kGeluErf:
      return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case ActKind::kRelu:
      return x > 0.0f ? x : 0.0f;
  }
  return x;
}

__global__ void BroadcastRowsKernel(const float* __restrict__ bias, int64_t rows, int64_t cols,
                                    float* __restrict__ y) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] = bias[i % cols];
  }
}

__global__ void AddBiasKernel(const float* __restrict__ bias, int64_t rows, int64_t cols,
                              float* __restrict__ y) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] += bias[i % cols];
  }
}

// One block per row. x and y may alias: every element is read into the
// reduction before any is written, and each thread rewrites only its own.
__global__ void RmsNormKernel(const float* x, const float* __restrict__ w, float eps, int64_t cols,
                              float* y) {
  __shared__ float scratch[32];
  const float* xr = x + blockIdx.x * cols;
  float* yr = y + blockIdx.x * cols;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) ss += xr[j] * xr[j];
  ss = BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(cols) + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = w[j] * (xr[j] * inv);
}

__global__ void LayerNormKernel(const float* x, const float* __restrict__ w,
                                const float* __restrict__ b, float eps, int64_t cols, float* y) {
  __shared__ float scratch[32];
  const float* xr = x + blockIdx.x * cols;
  float* yr = y + blockIdx.x * cols;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
  const float mean = BlockSum(s, scratch) / static_cast<float>(cols);
  float v = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) v += (xr[j] - mean) * (xr[j] - mean);
  const float var = BlockSum(v, scratch) / static_cast<float>(cols);
  const float inv = 1.0f / sqrtf(var + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    yr[j] = (xr[j] - mean) * inv * w[j] + (b ? b[j] : 0.0f);
  }
}

// One thread per (entry, head, frequency).
__global__ void RopeKernel(float* x, int64_t row_stride, const int32_t* __restrict__ row_ids,
                           const int32_t* __restrict__ pos, int64_t count, int heads, int head_dim,
                           int half, const float* __restrict__ inv_freq, bool neox,
                           float attention_factor) {
  const int64_t n = count * heads * half;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int f = static_cast<int>(i % half);
    const int h = static_cast<int>((i / half) % heads);
    const int64_t e = i / (int64_t{half} * heads);
    const float ang = static_cast<float>(pos[e]) * inv_freq[f];
    const float c = cosf(ang) * attention_factor, s = sinf(ang) * attention_factor;
    float* v = x + int64_t{row_ids[e]} * row_stride + int64_t{h} * head_dim;
    const int ia = neox ? f : 2 * f;
    const int ib = neox ? f + half : 2 * f + 1;
    const float a = v[ia], bb = v[ib];
    v[ia] = a * c - bb * s;
    v[ib] = bb * c + a * s;
  }
}

// One block per (query entry, head); keys are processed in tiles of
// blockDim.x with an online (running-max) softmax, so shared memory does not
// grow with the sequence length. Shared: q[head_dim], acc[head_dim],
// p[blockDim.x], scratch[32].
__global__ void AttentionKernel(const float* __restrict__ q, int64_t q_stride,
                                const float* __restrict__ k, int64_t k_stride,
                                const float* __restrict__ v, int64_t v_stride,
                                const int32_t* __restrict__ row_ids,
                                const int32_t* __restrict__ pos, int group, int head_dim,
                                float scale, int64_t window, float softcap, float* __restrict__ out,
                                int64_t out_stride) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* acc = qs + head_dim;
  float* p = acc + head_dim;
  float* scratch = p + blockDim.x;

  const int64_t e = blockIdx.x;
  const int h = blockIdx.y;
  const int kvh = h / group;
  const int64_t row = row_ids[e];
  // Keys [start, start + n_keys): the causal range, cut to the window.
  int64_t n_keys = int64_t{pos[e]} + 1;
  if (window > 0 && n_keys > window) n_keys = window;
  const int64_t start = row - n_keys + 1;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;

  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    qs[d] = q[row * q_stride + int64_t{h} * head_dim + d];
    acc[d] = 0.0f;
  }
  __syncthreads();

  float m = -INFINITY;  // running max of the scores seen so far
  float l = 0.0f;       // running sum of exp(score - m)
  for (int64_t t0 = 0; t0 < n_keys; t0 += blockDim.x) {
    const int tile =
        n_keys - t0 < blockDim.x ? static_cast<int>(n_keys - t0) : static_cast<int>(blockDim.x);
    // Scores of this tile: one warp per key, lanes split the head dimension.
    for (int j = warp; j < tile; j += warps) {
      const float* kr = k + (start + t0 + j) * k_stride + int64_t{kvh} * head_dim;
      float dot = 0.0f;
      for (int d = lane; d < head_dim; d += 32) dot += qs[d] * kr[d];
      dot = WarpSum(dot);
      if (lane == 0) {
        const float sc = scale * dot;
        p[j] = softcap > 0.0f ? softcap * tanhf(sc / softcap) : sc;
      }
    }
    __syncthreads();
    const float s = threadIdx.x < tile ? p[threadIdx.x] : -INFINITY;
    const float m_new = fmaxf(m, BlockMax(s, scratch));
    const float corr = (m == -INFINITY) ? 0.0f : expf(m - m_new);
    const float pe = threadIdx.x < tile ? expf(s - m_new) : 0.0f;
    if (threadIdx.x < tile) p[threadIdx.x] = pe;
    l = l * corr + BlockSum(pe, scratch);  // BlockSum's barriers also publish p
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
      const float* vc = v + (start + t0) * v_stride + int64_t{kvh} * head_dim + d;
      float a = acc[d] * corr;
      for (int j = 0; j < tile; ++j) a += p[j] * vc[j * v_stride];
      acc[d] = a;
    }
    m = m_new;
    __syncthreads();  // p is rewritten by the next tile
  }
  const float inv = 1.0f / l;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    out[row * out_stride + int64_t{h} * head_dim + d] = acc[d] * inv;
  }
}

// AttentionKernel over explicit key lists: one block per (query, head); query
// e attends to the rows keys[key_off[e] .. key_off[e + 1]) (position order,
// the last `window` of them when window > 0). Same tiling and online softmax.
__global__ void AttentionRowsKernel(const float* __restrict__ q, int64_t q_stride,
                                    const float* __restrict__ k, int64_t k_stride,
                                    const float* __restrict__ v, int64_t v_stride,
                                    const int64_t* __restrict__ key_off,
                                    const int64_t* __restrict__ keys, int group, int head_dim,
                                    float scale, int64_t window, float softcap,
                                    float* __restrict__ out, int64_t out_stride) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* acc = qs + head_dim;
  float* p = acc + head_dim;
  float* scratch = p + blockDim.x;

  const int64_t e = blockIdx.x;
  const int h = blockIdx.y;
  const int kvh = h / group;
  int64_t n_keys = key_off[e + 1] - key_off[e];
  int64_t first = key_off[e];
  if (window > 0 && n_keys > window) {
    first += n_keys - window;
    n_keys = window;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;

  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    qs[d] = q[e * q_stride + int64_t{h} * head_dim + d];
    acc[d] = 0.0f;
  }
  __syncthreads();

  float m = -INFINITY;
  float l = 0.0f;
  for (int64_t t0 = 0; t0 < n_keys; t0 += blockDim.x) {
    const int tile =
        n_keys - t0 < blockDim.x ? static_cast<int>(n_keys - t0) : static_cast<int>(blockDim.x);
    for (int j = warp; j < tile; j += warps) {
      const float* kr = k + keys[first + t0 + j] * k_stride + int64_t{kvh} * head_dim;
      float dot = 0.0f;
      for (int d = lane; d < head_dim; d += 32) dot += qs[d] * kr[d];
      dot = WarpSum(dot);
      if (lane == 0) {
        const float sc = scale * dot;
        p[j] = softcap > 0.0f ? softcap * tanhf(sc / softcap) : sc;
      }
    }
    __syncthreads();
    const float s = threadIdx.x < tile ? p[threadIdx.x] : -INFINITY;
    const float m_new = fmaxf(m, BlockMax(s, scratch));
    const float corr = (m == -INFINITY) ? 0.0f : expf(m - m_new);
    const float pe = threadIdx.x < tile ? expf(s - m_new) : 0.0f;
    if (threadIdx.x < tile) p[threadIdx.x] = pe;
    l = l * corr + BlockSum(pe, scratch);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float a = acc[d] * corr;
      for (int j = 0; j < tile; ++j) {
        a += p[j] * v[keys[first + t0 + j] * v_stride + int64_t{kvh} * head_dim + d];
      }
      acc[d] = a;
    }
    m = m_new;
    __syncthreads();
  }
  const float inv = 1.0f / l;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    out[e * out_stride + int64_t{h} * head_dim + d] = acc[d] * inv;
  }
}

__global__ void ActivateKernel(float* x, int64_t n, ActKind act) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] = Act(x[i], act);
  }
}

__global__ void GatedActivateKernel(float* gate, const float* up, int64_t n, ActKind act) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    gate[i] = Act(gate[i], act) * up[i];
  }
}

__global__ void ScaleKernel(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] *= s;
  }
}

__global__ void SoftCapKernel(float* x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] = cap * tanhf(x[i] / cap);
  }
}

__global__ void AddKernel(const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    y[i] += x[i];
  }
}

// One block per output row.
__global__ void GatherRowsKernel(const float* __restrict__ table, int64_t cols,
                                 const int64_t* __restrict__ ids, float* __restrict__ out) {
  const float* src = table + ids[blockIdx.x] * cols;
  float* dst = out + blockIdx.x * cols;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dst[j] = src[j];
}

// (value, index) reduction for the first argmax: larger value wins, ties go to
// the smaller index, so the result is the first maximal entry.
__device__ __forceinline__ void ArgmaxCombine(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// One block per row.
__global__ void ScoreRowsKernel(const float* __restrict__ logits, int64_t vocab,
                                const int32_t* __restrict__ gold,
                                DeviceRowScore* __restrict__ out) {
  __shared__ float sv[32];
  __shared__ int si[32];
  __shared__ double sd[32];
  __shared__ long long sl[32];
  const float* r = logits + blockIdx.x * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;

  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    if (bi == INT_MAX || r[j] > bv) {
      bv = r[j];
      bi = static_cast<int>(j);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxCombine(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
  }
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  bv = lane < warps ? sv[lane] : -INFINITY;
  bi = lane < warps ? si[lane] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxCombine(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
  }
  const float mx = bv;
  const float g = r[gold[blockIdx.x]];

  double sum = 0.0;
  long long greater = 0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    sum += exp(static_cast<double>(r[j] - mx));
    greater += r[j] > g;
  }
  sum = BlockSum(sum, sd);
  greater = BlockSum(greater, sl);
  if (threadIdx.x == 0) {
    out[blockIdx.x].logprob = static_cast<float>(static_cast<double>(g - mx) - log(sum));
    out[blockIdx.x].argmax = bi;
    out[blockIdx.x].greater = greater;
  }
}

__device__ __forceinline__ float LoadAs(const void* p, ElemType t, int64_t i) {
  switch (t) {
    case ElemType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case ElemType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void StoreAs(void* p, ElemType t, int64_t i, float v) {
  switch (t) {
    case ElemType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case ElemType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

__global__ void ConvertKernel(const void* __restrict__ src, ElemType st, void* __restrict__ dst,
                              ElemType dt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    StoreAs(dst, dt, i, LoadAs(src, st, i));
  }
}

__global__ void GatherRowsTypedKernel(const void* __restrict__ table, ElemType tt, int64_t cols,
                                      const int64_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t base = ids[blockIdx.x] * cols;
  float* dst = out + blockIdx.x * cols;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dst[j] = LoadAs(table, tt, base + j);
}

// Grid-stride partial sums in double, one atomicAdd per block into *out
// (zeroed by the launcher first).
__global__ void SumSquaresKernel(const float* __restrict__ x, int64_t n, double* out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const double v = x[i];
    s += v * v;
  }
  s = BlockSum(s, scratch);
  if (threadIdx.x == 0) atomicAdd(out, s);
}

__global__ void ScaleColumnsKernel(float* x, int64_t rows, int64_t cols, int64_t ld,
                                   const float* __restrict__ s) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i % rows, c = i / rows;
    x[c * ld + r] *= s[c];
  }
}

__global__ void GramSpectrumKernel(const float* __restrict__ w, const float* __restrict__ e,
                                   int64_t c, float* __restrict__ s, float* __restrict__ r) {
  const int64_t n = c * c;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i % c, col = i / c;
    const int64_t src = c - 1 - col;
    r[col * c + row] = e[src * c + row];
    if (row == 0) s[col] = sqrtf(fmaxf(w[src], 0.0f));
  }
}

__global__ void DivideColumnsKernel(float* p, int64_t rows, int64_t cols,
                                    const float* __restrict__ s) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float d = s[i / rows];
    p[i] = d > 0.0f ? p[i] / d : 0.0f;
  }
}

}  // namespace

cudaError_t LaunchConvert(const void* src, ElemType src_type, void* dst, ElemType dst_type,
                          int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (src_type == dst_type) {
    return cudaMemcpyAsync(dst, src, n * (src_type == ElemType::kF32 ? 4 : 2),
                           cudaMemcpyDeviceToDevice, stream);
  }
  ConvertKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(src, src_type, dst, dst_type, n);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRowsTyped(const void* table, ElemType table_type, int64_t cols,
                                  const int64_t* ids, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0 || cols == 0) return cudaSuccess;
  GatherRowsTypedKernel<<<static_cast<unsigned>(n), kRowThreads, 0, stream>>>(table, table_type,
                                                                              cols, ids, out);
  return cudaGetLastError();
}

cudaError_t LaunchSumSquares(const float* x, int64_t n, double* out, cudaStream_t stream) {
  const cudaError_t err = cudaMemsetAsync(out, 0, sizeof(double), stream);
  if (err != cudaSuccess || n == 0) return err;
  const int blocks = EltBlocks(n) < 1024 ? EltBlocks(n) : 1024;
  SumSquaresKernel<<<blocks, kEltThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

cudaError_t LaunchScaleColumns(float* x, int64_t rows, int64_t cols, int64_t ld, const float* s,
                               cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  ScaleColumnsKernel<<<EltBlocks(rows * cols), kEltThreads, 0, stream>>>(x, rows, cols, ld, s);
  return cudaGetLastError();
}

cudaError_t LaunchGramSpectrum(const float* w, const float* e, int64_t c, float* s, float* r,
                               cudaStream_t stream) {
  if (c == 0) return cudaSuccess;
  GramSpectrumKernel<<<EltBlocks(c * c), kEltThreads, 0, stream>>>(w, e, c, s, r);
  return cudaGetLastError();
}

cudaError_t LaunchDivideColumns(float* p, int64_t rows, int64_t cols, const float* s,
                                cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  DivideColumnsKernel<<<EltBlocks(rows * cols), kEltThreads, 0, stream>>>(p, rows, cols, s);
  return cudaGetLastError();
}

cudaError_t LaunchBroadcastRows(const float* bias, int64_t rows, int64_t cols, float* y,
                                cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  BroadcastRowsKernel<<<EltBlocks(rows * cols), kEltThreads, 0, stream>>>(bias, rows, cols, y);
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(const float* bias, int64_t rows, int64_t cols, float* y,
                          cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  AddBiasKernel<<<EltBlocks(rows * cols), kEltThreads, 0, stream>>>(bias, rows, cols, y);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(const float* x, const float* w, float eps, int64_t rows, int64_t cols,
                          float* y, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  RmsNormKernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(x, w, eps, cols, y);
  return cudaGetLastError();
}

cudaError_t LaunchLayerNorm(const float* x, const float* w, const float* b, float eps, int64_t rows,
                            int64_t cols, float* y, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  LayerNormKernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(x, w, b, eps, cols, y);
  return cudaGetLastError();
}

cudaError_t LaunchRope(float* x, int64_t row_stride, const int32_t* row_ids, const int32_t* pos,
                       int64_t count, int heads, int head_dim, int rotary_dim,
                       const float* inv_freq, bool neox, float attention_factor,
                       cudaStream_t stream) {
  const int half = rotary_dim / 2;
  const int64_t n = count * heads * half;
  if (n == 0) return cudaSuccess;
  RopeKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(
      x, row_stride, row_ids, pos, count, heads, head_dim, half, inv_freq, neox, attention_factor);
  return cudaGetLastError();
}

cudaError_t LaunchAttention(const float* q, int64_t q_stride, const float* k, int64_t k_stride,
                            const float* v, int64_t v_stride, const int32_t* row_ids,
                            const int32_t* pos, int64_t count, int heads, int kv_heads,
                            int head_dim, float scale, int64_t window, float softcap, float* out,
                            int64_t out_stride, cudaStream_t stream) {
  if (count == 0 || heads == 0) return cudaSuccess;
  const size_t smem = (2 * static_cast<size_t>(head_dim) + kAttnThreads + 32) * sizeof(float);
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(heads));
  AttentionKernel<<<grid, kAttnThreads, smem, stream>>>(q, q_stride, k, k_stride, v, v_stride,
                                                        row_ids, pos, heads / kv_heads, head_dim,
                                                        scale, window, softcap, out, out_stride);
  return cudaGetLastError();
}

cudaError_t LaunchAttentionRows(const float* q, int64_t q_stride, const float* k, int64_t k_stride,
                                const float* v, int64_t v_stride, const int64_t* key_off,
                                const int64_t* keys, int64_t count, int heads, int kv_heads,
                                int head_dim, float scale, int64_t window, float softcap,
                                float* out, int64_t out_stride, cudaStream_t stream) {
  if (count == 0 || heads == 0) return cudaSuccess;
  const size_t smem = (2 * static_cast<size_t>(head_dim) + kAttnThreads + 32) * sizeof(float);
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        AttentionRowsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(heads));
  AttentionRowsKernel<<<grid, kAttnThreads, smem, stream>>>(
      q, q_stride, k, k_stride, v, v_stride, key_off, keys, heads / kv_heads, head_dim, scale,
      window, softcap, out, out_stride);
  return cudaGetLastError();
}

cudaError_t LaunchActivate(float* x, int64_t n, ActKind act, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ActivateKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(x, n, act);
  return cudaGetLastError();
}

cudaError_t LaunchGatedActivate(float* gate, const float* up, int64_t n, ActKind act,
                                cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  GatedActivateKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(gate, up, n, act);
  return cudaGetLastError();
}

cudaError_t LaunchScale(float* x, int64_t n, float s, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ScaleKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(x, n, s);
  return cudaGetLastError();
}

cudaError_t LaunchSoftCap(float* x, int64_t n, float cap, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  SoftCapKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(x, n, cap);
  return cudaGetLastError();
}

cudaError_t LaunchAdd(const float* x, int64_t n, float* y, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  AddKernel<<<EltBlocks(n), kEltThreads, 0, stream>>>(x, n, y);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* table, int64_t cols, const int64_t* ids, int64_t n,
                             float* out, cudaStream_t stream) {
  if (n == 0 || cols == 0) return cudaSuccess;
  GatherRowsKernel<<<static_cast<unsigned>(n), kRowThreads, 0, stream>>>(table, cols, ids, out);
  return cudaGetLastError();
}

cudaError_t LaunchScoreRows(const float* logits, int64_t rows, int64_t vocab, const int32_t* gold,
                            DeviceRowScore* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  ScoreRowsKernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(logits, vocab, gold,
                                                                           out);
  return cudaGetLastError();
}

}  // namespace laserd::kernels::cuda
