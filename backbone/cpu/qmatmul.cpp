// Quantized-weight matmul kernels (see qmatmul.h). Each output row's blocks are
// decoded once into registers and applied to up to kRowTile activation rows, so
// a batch of sequences reads the weights once. AVX2+FMA with a scalar fallback.
#include "backbone/cpu/qmatmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "t2/error.h"

namespace t2::backbone::cpu {
namespace {

constexpr int kRowTile = 4;  // activation rows per pass over a weight row

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

#if defined(__AVX2__) && defined(__FMA__)

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 bytes -> 8 floats.
inline __m256 u8_to_ps(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
inline __m256 i8_to_ps(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }

// Decodes the 32 integer values of one block into four vectors of 8 floats, in
// element order, plus the block's scale d and offset m (y = d*q + m).
template <GgmlType kType>
inline void decode_block(const uint8_t* b, __m256 q[4], float* d, float* m) {
  if constexpr (kType == GgmlType::kQ8_0) {
    *d = half(b);
    *m = 0.0f;
    const uint8_t* qs = b + 2;
    for (int i = 0; i < 4; ++i) q[i] = i8_to_ps(_mm_loadl_epi64((const __m128i*)(qs + 8 * i)));
  } else {
    const uint8_t* qs;
    if constexpr (kType == GgmlType::kQ4_1) {
      *d = half(b);
      *m = half(b + 2);
      qs = b + 4;
    } else {  // Q4_0: q - 8, folded into the offset m = -8d
      *d = half(b);
      *m = -8.0f * *d;
      qs = b + 2;
    }
    const __m128i raw = _mm_loadu_si128((const __m128i*)qs);
    const __m128i mask = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(raw, mask);                     // elements 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);  // elements 16..31
    q[0] = u8_to_ps(lo);
    q[1] = u8_to_ps(_mm_srli_si128(lo, 8));
    q[2] = u8_to_ps(hi);
    q[3] = u8_to_ps(_mm_srli_si128(hi, 8));
  }
}

// y[r][o] for rows r < nr (<= kRowTile) of x, output row o.
template <GgmlType kType, int kBlockBytes>
void dot_rows(const uint8_t* wrow, int64_t blocks, const float* x, int64_t in,
              const float* xsum, int nr, float* out) {
  __m256 acc[kRowTile];
  float msum[kRowTile] = {};
  for (int r = 0; r < kRowTile; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m256 q[4];
    float d, m;
    decode_block<kType>(wrow + b * kBlockBytes, q, &d, &m);
    const __m256 dv = _mm256_set1_ps(d);
    for (int r = 0; r < nr; ++r) {
      const float* xb = x + r * in + b * 32;
      __m256 t = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
      t = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xb + 8), t);
      t = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), t);
      t = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), t);
      acc[r] = _mm256_fmadd_ps(t, dv, acc[r]);
      msum[r] += m * xsum[r * blocks + b];
    }
  }
  for (int r = 0; r < nr; ++r) out[r] = hsum(acc[r]) + msum[r];
}

#else

template <GgmlType kType, int kBlockBytes>
void dot_rows(const uint8_t* wrow, int64_t blocks, const float* x, int64_t in,
              const float* /*xsum*/, int nr, float* out) {
  float w[32];
  for (int r = 0; r < nr; ++r) out[r] = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    dequantize(kType, wrow + b * kBlockBytes, w, 32);
    for (int r = 0; r < nr; ++r) {
      const float* xb = x + r * in + b * 32;
      float s = 0.0f;
      for (int j = 0; j < 32; ++j) s += w[j] * xb[j];
      out[r] += s;
    }
  }
}

#endif

template <GgmlType kType, int kBlockBytes>
void qmatmul_typed(const float* x, int64_t n, const uint8_t* w, int64_t out, int64_t in,
                   float* y) {
  const int64_t blocks = in / 32;
  // Per-block sums of x, for the offset term m * sum(x) of Q4_0/Q4_1.
  std::vector<float> xsum(size_t(n * blocks));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      float s = 0.0f;
      for (int j = 0; j < 32; ++j) s += x[r * in + b * 32 + j];
      xsum[size_t(r * blocks + b)] = s;
    }
  }
  const int64_t row_bytes = blocks * kBlockBytes;
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o) {
    const uint8_t* wrow = w + o * row_bytes;
    for (int64_t r0 = 0; r0 < n; r0 += kRowTile) {
      const int nr = int(std::min<int64_t>(kRowTile, n - r0));
      float res[kRowTile];
      dot_rows<kType, kBlockBytes>(wrow, blocks, x + r0 * in, in, &xsum[size_t(r0 * blocks)],
                                   nr, res);
      for (int r = 0; r < nr; ++r) y[(r0 + r) * out + o] = res[r];
    }
  }
}

}  // namespace

bool qmatmul_supported(GgmlType type) {
  return type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0;
}

void qmatmul(const float* x, int64_t n, const void* w, GgmlType type, int64_t out, int64_t in,
             float* y) {
  if (in % 32 != 0) fail("qmatmul: input size {} is not a multiple of 32", in);
  const auto* bytes = static_cast<const uint8_t*>(w);
  switch (type) {
    case GgmlType::kQ4_0: return qmatmul_typed<GgmlType::kQ4_0, 18>(x, n, bytes, out, in, y);
    case GgmlType::kQ4_1: return qmatmul_typed<GgmlType::kQ4_1, 20>(x, n, bytes, out, in, y);
    case GgmlType::kQ8_0: return qmatmul_typed<GgmlType::kQ8_0, 34>(x, n, bytes, out, in, y);
    default: fail("qmatmul: type {} has no quantized kernel", ggml_type_name(type));
  }
}

}  // namespace t2::backbone::cpu
