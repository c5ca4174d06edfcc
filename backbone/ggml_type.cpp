// Dequantization of ggml block types to f32 (layouts in docs/gguf.md). Plain,
// scalar code: it runs once per tensor at load, so clarity beats speed here.
#include "backbone/ggml_type.h"

#include <cstring>

#include "t2/error.h"

namespace t2::backbone {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float load_f16(const uint8_t* p) { return f16_to_f32(load_u16(p)); }

// 4-bit blocks of 32: byte j holds element j (low nibble) and j+16 (high).
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float((qs[j] & 15)) - 8.0f);
    y[j + 16] = d * (float((qs[j] >> 4)) - 8.0f);
  }
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b), m = load_f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(qs[j] & 15) + m;
    y[j + 16] = d * float(qs[j] >> 4) + m;
  }
}

// 5-bit blocks: the fifth bit of element j is bit j of qh (little-endian u32).
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * float(lo - 16);
    y[j + 16] = d * float(hi - 16);
  }
}

void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b), m = load_f16(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * float(lo) + m;
    y[j + 16] = d * float(hi) + m;
  }
}

void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = d * float(q[j]);
}

// 6-bit scale and min of sub-block j from the 12 packed bytes of a K-quant.
void k_scale_min(int j, const uint8_t* s, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc0, mn0, sc1, mn1;
    k_scale_min(2 * c, scales, &sc0, &mn0);
    k_scale_min(2 * c + 1, scales, &sc1, &mn1);
    const uint8_t* q = qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      y[64 * c + l] = d * float(sc0) * float(q[l] & 15) - dmin * float(mn0);
      y[64 * c + 32 + l] = d * float(sc1) * float(q[l] >> 4) - dmin * float(mn1);
    }
  }
}

void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc0, mn0, sc1, mn1;
    k_scale_min(2 * c, scales, &sc0, &mn0);
    k_scale_min(2 * c + 1, scales, &sc1, &mn1);
    const uint8_t* q = qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      const int lo = (q[l] & 15) + (((qh[l] >> (2 * c)) & 1) << 4);
      const int hi = (q[l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) << 4);
      y[64 * c + l] = d * float(sc0) * float(lo) - dmin * float(mn0);
      y[64 * c + 32 + l] = d * float(sc1) * float(hi) - dmin * float(mn1);
    }
  }
}

void dequant_q6_k(const uint8_t* b, float* y) {
  const float d = load_f16(b + 208);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b + 64 * n;
    const uint8_t* qh = b + 128 + 32 * n;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * n);
    float* out = y + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * float(sc[is]) * float(q1);
      out[l + 32] = d * float(sc[is + 2]) * float(q2);
      out[l + 64] = d * float(sc[is + 4]) * float(q3);
      out[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // round to nearest even
  return uint16_t(half);
}

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32: return GgmlTypeInfo{"F32", 1, 4};
    case GgmlType::kF16: return GgmlTypeInfo{"F16", 1, 2};
    case GgmlType::kBF16: return GgmlTypeInfo{"BF16", 1, 2};
    case GgmlType::kQ4_0: return GgmlTypeInfo{"Q4_0", 32, 18};
    case GgmlType::kQ4_1: return GgmlTypeInfo{"Q4_1", 32, 20};
    case GgmlType::kQ5_0: return GgmlTypeInfo{"Q5_0", 32, 22};
    case GgmlType::kQ5_1: return GgmlTypeInfo{"Q5_1", 32, 24};
    case GgmlType::kQ8_0: return GgmlTypeInfo{"Q8_0", 32, 34};
    case GgmlType::kQ4_K: return GgmlTypeInfo{"Q4_K", 256, 144};
    case GgmlType::kQ5_K: return GgmlTypeInfo{"Q5_K", 256, 176};
    case GgmlType::kQ6_K: return GgmlTypeInfo{"Q6_K", 256, 210};
  }
  return std::nullopt;
}

const char* ggml_type_name(GgmlType type) {
  auto info = ggml_type_info(static_cast<uint32_t>(type));
  return info ? info->name : "unknown";
}

void dequantize(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(bytes + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = uint32_t(load_u16(bytes + 2 * i)) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    default:
      break;
  }
  BlockFn fn = nullptr;
  switch (type) {
    case GgmlType::kQ4_0: fn = dequant_q4_0; break;
    case GgmlType::kQ4_1: fn = dequant_q4_1; break;
    case GgmlType::kQ5_0: fn = dequant_q5_0; break;
    case GgmlType::kQ5_1: fn = dequant_q5_1; break;
    case GgmlType::kQ8_0: fn = dequant_q8_0; break;
    case GgmlType::kQ4_K: fn = dequant_q4_k; break;
    case GgmlType::kQ5_K: fn = dequant_q5_k; break;
    case GgmlType::kQ6_K: fn = dequant_q6_k; break;
    default: fail("dequantize: unsupported ggml type id {}", static_cast<uint32_t>(type));
  }
  const auto info = *ggml_type_info(static_cast<uint32_t>(type));
  if (n % info.block_elements != 0) {
    fail("dequantize: {} elements is not a multiple of the {} block size {}", n, info.name,
         info.block_elements);
  }
  const int64_t blocks = n / info.block_elements;
  for (int64_t b = 0; b < blocks; ++b) {
    fn(bytes + b * info.block_bytes, dst + b * info.block_elements);
  }
}

}  // namespace t2::backbone
