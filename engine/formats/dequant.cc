// Dequantization of ggml block formats to fp32.
//
// Block layouts and formulas follow ggml (ggml-common.h / ggml-quants.c,
// dequantize_row_*). Each value is computed with the same fp32 operations in the
// same order, so the results are bit-identical; contraction into FMA is disabled
// here because it would change the rounding.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <bit>
#include <cstring>

#include "engine/formats/internal.h"

namespace laserd::formats::internal {

static_assert(std::endian::native == std::endian::little,
              "the weight readers assume a little-endian host");

namespace {

constexpr int kQK = 32;    // elements per block of the *_0 / *_1 formats
constexpr int kQKK = 256;  // elements per super-block of the K formats

inline uint16_t U16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline float F16At(const uint8_t* p) { return HalfToFloat(U16(p)); }

// Q4_0: f16 d, 16 bytes of nibbles. y[j] = (lo(q[j]) - 8) * d, y[j+16] = (hi(q[j]) - 8) * d.
void DeqQ4_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1: f16 d, f16 m, 16 bytes of nibbles. y = q * d + m.
void DeqQ4_1(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float m = F16At(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
    y[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0: f16 d, u32 high bits, 16 bytes of nibbles. y = (q - 16) * d.
void DeqQ5_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int x1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(x0 - 16) * d;
    y[j + kQK / 2] = static_cast<float>(x1 - 16) * d;
  }
}

// Q5_1: f16 d, f16 m, u32 high bits, 16 bytes of nibbles. y = q * d + m.
void DeqQ5_1(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float m = F16At(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int x1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(x0) * d + m;
    y[j + kQK / 2] = static_cast<float>(x1) * d + m;
  }
}

// Q8_0: f16 d, 32 int8. y = q * d.
void DeqQ8_0(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// Q2_K: 16 scale bytes (lo nibble scale, hi nibble min), 64 bytes of 2-bit quants,
// f16 d, f16 dmin. Element 128*h + 32*s + l uses bits 2s of q[32h + l] and scale
// byte (128*h + 32*s + l) / 16. y = (d * sc) * q - (dmin * m).
void DeqQ2_K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = F16At(b + 80);
  const float dmin = F16At(b + 82);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const uint8_t sc = scales[e / 16];
    const float dl = d * static_cast<float>(sc & 0x0f);
    const float ml = dmin * static_cast<float>(sc >> 4);
    const int v = (q[32 * h + l] >> (2 * s)) & 3;
    y[e] = dl * static_cast<float>(v) - ml;
  }
}

// Q3_K: 32 bytes hmask, 64 bytes of 2-bit quants, 12 bytes of packed 6-bit scales, f16 d.
// q = lo2 - (hmask bit set ? 0 : 4); y = (d * (scale - 32)) * q.
void DeqQ3_K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* q = b + 32;
  const uint8_t* sc = b + 96;
  const float d = F16At(b + 108);
  int scales[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = (i < 8 ? sc[i] : sc[i - 8] >> 4) & 0x0f;
    const int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = static_cast<int8_t>(lo | (hi << 4)) - 32;
  }
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const int lo = (q[32 * h + l] >> (2 * s)) & 3;
    const int hbit = (hmask[l] >> (e / 32)) & 1;
    const int v = lo - (hbit ? 0 : 4);
    const float dl = d * static_cast<float>(scales[e / 16]);
    y[e] = dl * static_cast<float>(v);
  }
}

// The 6-bit scale and min of sub-block j (0..7) of Q4_K / Q5_K.
inline void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Sub-block j (32 values)
// takes nibble (j % 2) of bytes 32 * (j / 2) .. +31. y = (d * sc) * q - (dmin * m).
void DeqQ4_K(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float dmin = F16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    ScaleMinK4(j, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      y[32 * j + l] = d1 * static_cast<float>((q[l] >> shift) & 0x0f) - m1;
    }
  }
}

// Q5_K: as Q4_K plus 32 bytes of high bits (bit j of qh[l] for sub-block j).
void DeqQ5_K(const uint8_t* b, float* y) {
  const float d = F16At(b);
  const float dmin = F16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    ScaleMinK4(j, scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0f) | (((qh[l] >> j) & 1) << 4);
      y[32 * j + l] = d1 * static_cast<float>(v) - m1;
    }
  }
}

// Q6_K: 128 bytes low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, f16 d.
// Element 128*h + 64*s + l (l < 64) takes nibble s of ql[64h + l]; element
// 128*h + 32*k + l (l < 32) takes bits 2k of qh[32h + l]. y = (d * sc) * (q - 32).
void DeqQ6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = F16At(b + 208);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, r = e % 128;
    const int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    const int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    const int v = (lo | (hi << 4)) - 32;
    const float ds = d * static_cast<float>(scales[e / 16]);
    y[e] = ds * static_cast<float>(v);
  }
}

// Q8_K: f32 d, 256 int8, 16 int16 block sums (unused here). y = d * q.
void DeqQ8_K(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < kQKK; ++j) y[j] = d * static_cast<float>(qs[j]);
}

template <typename T>
void CastRow(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

}  // namespace

BlockGeometry Geometry(DType t) {
  switch (t) {
    case DType::kF32:
      return {1, 4};
    case DType::kF16:
      return {1, 2};
    case DType::kBF16:
      return {1, 2};
    case DType::kF64:
      return {1, 8};
    case DType::kI8:
      return {1, 1};
    case DType::kI16:
      return {1, 2};
    case DType::kI32:
      return {1, 4};
    case DType::kI64:
      return {1, 8};
    case DType::kU8:
      return {1, 1};
    case DType::kBool:
      return {1, 1};
    case DType::kQ8_0:
      return {32, 34};
    case DType::kQ4_0:
      return {32, 18};
    case DType::kQ4_1:
      return {32, 20};
    case DType::kQ5_0:
      return {32, 22};
    case DType::kQ5_1:
      return {32, 24};
    case DType::kQ2_K:
      return {256, 84};
    case DType::kQ3_K:
      return {256, 110};
    case DType::kQ4_K:
      return {256, 144};
    case DType::kQ5_K:
      return {256, 176};
    case DType::kQ6_K:
      return {256, 210};
    case DType::kQ8_K:
      return {256, 292};
  }
  return {1, 1};
}

void DequantizeRow(DType t, const uint8_t* src, int64_t n, float* dst) {
  if (n <= 0) return;  // nothing to do (and an empty output may have a null data())
  const BlockGeometry g = Geometry(t);
  void (*block_fn)(const uint8_t*, float*) = nullptr;
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = F16At(src + 2 * i);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToFloat(U16(src + 2 * i));
      return;
    case DType::kF64:
      CastRow<double>(src, n, dst);
      return;
    case DType::kI8:
      CastRow<int8_t>(src, n, dst);
      return;
    case DType::kI16:
      CastRow<int16_t>(src, n, dst);
      return;
    case DType::kI32:
      CastRow<int32_t>(src, n, dst);
      return;
    case DType::kI64:
      CastRow<int64_t>(src, n, dst);
      return;
    case DType::kU8:
      CastRow<uint8_t>(src, n, dst);
      return;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return;
    case DType::kQ8_0:
      block_fn = DeqQ8_0;
      break;
    case DType::kQ4_0:
      block_fn = DeqQ4_0;
      break;
    case DType::kQ4_1:
      block_fn = DeqQ4_1;
      break;
    case DType::kQ5_0:
      block_fn = DeqQ5_0;
      break;
    case DType::kQ5_1:
      block_fn = DeqQ5_1;
      break;
    case DType::kQ2_K:
      block_fn = DeqQ2_K;
      break;
    case DType::kQ3_K:
      block_fn = DeqQ3_K;
      break;
    case DType::kQ4_K:
      block_fn = DeqQ4_K;
      break;
    case DType::kQ5_K:
      block_fn = DeqQ5_K;
      break;
    case DType::kQ6_K:
      block_fn = DeqQ6_K;
      break;
    case DType::kQ8_K:
      block_fn = DeqQ8_K;
      break;
  }
  const int64_t blocks = n / g.block_elems;
  for (int64_t i = 0; i < blocks; ++i) {
    block_fn(src + i * g.block_bytes, dst + i * g.block_elems);
  }
}

}  // namespace laserd::formats::internal
