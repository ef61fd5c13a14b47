// Device kernels of the CUDA backend, behind plain launch functions so that
// the backend itself (cuda_backend.cc) is ordinary C++ compiled by the host
// compiler. Every launcher enqueues on `stream` and returns the launch status
// (cudaGetLastError); none of them synchronizes. Semantics mirror
// kernels/cpu/cpu_backend.cc exactly (same formulas, same operand order).
#ifndef LASERD_KERNELS_CUDA_CUDA_KERNELS_H_
#define LASERD_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace laserd::kernels::cuda {

// Mirrors kernels::Activation (kept separate so this header does not pull in
// ops.h and its absl headers into nvcc's compilation).
enum class ActKind : int { kSilu = 0, kGeluTanh = 1, kGeluErf = 2, kRelu = 3 };

// Storage element types (mirrors kernels::DType).
enum class ElemType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// dst[i] = src[i] converted (round to nearest even for narrowing), i < n.
// Same-type conversion is a copy. src and dst must not overlap.
cudaError_t LaunchConvert(const void* src, ElemType src_type, void* dst, ElemType dst_type,
                          int64_t n, cudaStream_t stream);

// out[i, :] = float(table[ids[i], :]) for a table of any ElemType; out fp32.
cudaError_t LaunchGatherRowsTyped(const void* table, ElemType table_type, int64_t cols,
                                  const int64_t* ids, int64_t n, float* out, cudaStream_t stream);

// *out = Σ x[i]² accumulated in double (device scalar, overwritten).
cudaError_t LaunchSumSquares(const float* x, int64_t n, double* out, cudaStream_t stream);

// Column-major x [rows, cols] (leading dimension ld): column j *= s[j].
cudaError_t LaunchScaleColumns(float* x, int64_t rows, int64_t cols, int64_t ld, const float* s,
                               cudaStream_t stream);

// The Gram route's post-processing of an ascending eigen-decomposition of
// XᵀX [c, c] (eigenvalues w, eigenvectors e column-major, ld c): s[j] =
// sqrt(max(w[c-1-j], 0)) (descending) and r[:, j] = e[:, c-1-j].
cudaError_t LaunchGramSpectrum(const float* w, const float* e, int64_t c, float* s, float* r,
                               cudaStream_t stream);
// Column-major p [rows, cols] (ld rows): column j /= s[j] where s[j] > 0, else 0.
cudaError_t LaunchDivideColumns(float* p, int64_t rows, int64_t cols, const float* s,
                                cudaStream_t stream);

// Per-row scoring result, laid out like Backend::RowScore.
struct DeviceRowScore {
  float logprob;
  int32_t argmax;
  int64_t greater;
};

// y[i, j] = bias[j] for every row (the CPU backend's bias broadcast before a GEMM with beta 1).
cudaError_t LaunchBroadcastRows(const float* bias, int64_t rows, int64_t cols, float* y,
                                cudaStream_t stream);
// y[i, j] += bias[j].
cudaError_t LaunchAddBias(const float* bias, int64_t rows, int64_t cols, float* y,
                          cudaStream_t stream);

// y = w * (x / sqrt(mean(x^2) + eps)), per row. y may alias x.
cudaError_t LaunchRmsNorm(const float* x, const float* w, float eps, int64_t rows, int64_t cols,
                          float* y, cudaStream_t stream);
// y = (x - mean) / sqrt(var + eps) * w (+ b), per row; b may be null. y may alias x.
cudaError_t LaunchLayerNorm(const float* x, const float* w, const float* b, float eps, int64_t rows,
                            int64_t cols, float* y, cudaStream_t stream);

// In-place rotary embedding. For each of the `count` entries, row_ids[e] is a
// row of x and pos[e] its position within its sequence. inv_freq has
// rotary_dim / 2 entries (device memory). neox: rotate_half; else interleaved.
// cos and sin are multiplied by attention_factor.
cudaError_t LaunchRope(float* x, int64_t row_stride, const int32_t* row_ids, const int32_t* pos,
                       int64_t count, int heads, int head_dim, int rotary_dim,
                       const float* inv_freq, bool neox, float attention_factor,
                       cudaStream_t stream);

// Causal grouped-query attention. For each of the `count` query rows
// (row_ids[e], at position pos[e] of its sequence, which starts at row
// row_ids[e] - pos[e]) and each head: softmax(s) over the keys of its
// sequence up to and including itself (the last `window` of them when window
// > 0), times v, where s = scale * q·kᵀ, soft-capped to softcap * tanh(s /
// softcap) when softcap > 0. Strides are the row lengths (cols) of each matrix.
cudaError_t LaunchAttention(const float* q, int64_t q_stride, const float* k, int64_t k_stride,
                            const float* v, int64_t v_stride, const int32_t* row_ids,
                            const int32_t* pos, int64_t count, int heads, int kv_heads,
                            int head_dim, float scale, int64_t window, float softcap, float* out,
                            int64_t out_stride, cudaStream_t stream);

// LaunchAttention over explicit key lists: query row e of q (row e of out)
// attends to the rows keys[key_off[e] .. key_off[e + 1]) of k and v, in
// position order (the last `window` of them when window > 0). key_off and
// keys are device arrays.
cudaError_t LaunchAttentionRows(const float* q, int64_t q_stride, const float* k, int64_t k_stride,
                                const float* v, int64_t v_stride, const int64_t* key_off,
                                const int64_t* keys, int64_t count, int heads, int kv_heads,
                                int head_dim, float scale, int64_t window, float softcap,
                                float* out, int64_t out_stride, cudaStream_t stream);

// x = act(x) elementwise.
cudaError_t LaunchActivate(float* x, int64_t n, ActKind act, cudaStream_t stream);
// gate = act(gate) * up elementwise.
cudaError_t LaunchGatedActivate(float* gate, const float* up, int64_t n, ActKind act,
                                cudaStream_t stream);
// y += x elementwise.
cudaError_t LaunchAdd(const float* x, int64_t n, float* y, cudaStream_t stream);
// x *= s elementwise.
cudaError_t LaunchScale(float* x, int64_t n, float s, cudaStream_t stream);
// x = cap * tanh(x / cap) elementwise.
cudaError_t LaunchSoftCap(float* x, int64_t n, float cap, cudaStream_t stream);

// out[i, :] = table[ids[i], :] for i < n; ids in device memory.
cudaError_t LaunchGatherRows(const float* table, int64_t cols, const int64_t* ids, int64_t n,
                             float* out, cudaStream_t stream);

// Per row of logits [rows, vocab] with gold[i]: log-softmax at gold, the first
// argmax, and the count of entries strictly greater than the gold logit.
cudaError_t LaunchScoreRows(const float* logits, int64_t rows, int64_t vocab, const int32_t* gold,
                            DeviceRowScore* out, cudaStream_t stream);

}  // namespace laserd::kernels::cuda

#endif  // LASERD_KERNELS_CUDA_CUDA_KERNELS_H_
