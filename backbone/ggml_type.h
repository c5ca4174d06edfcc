// The ggml tensor types t2 reads, their block geometry, and dequantization to
// f32. Block layouts follow docs/gguf.md; each is tested against an independent
// implementation (the `gguf` Python package) in tests/backbone/quant_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace t2::backbone {

enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block_elements;  // elements per block
  int64_t block_bytes;     // bytes per block
};

// Geometry of a supported type; std::nullopt for ids t2 does not read.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id);
const char* ggml_type_name(GgmlType type);

// Dequantizes `n` elements (a multiple of the block size) from `src` into `dst`.
void dequantize(GgmlType type, const void* src, float* dst, int64_t n);

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace t2::backbone
