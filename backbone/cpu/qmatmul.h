// Matrix products straight from quantized weight blocks (Q4_0, Q4_1, Q8_0) with
// f32 activations: the decode path, where reading 4-8 bits per weight instead of
// 32 is what bounds speed. Values equal the dequantized f32 weights times x up to
// summation order; the f32 GEMM path (ops.h) is the reference it is tested against.
#pragma once

#include <cstdint>

#include "backbone/ggml_type.h"

namespace t2::backbone::cpu {

bool qmatmul_supported(GgmlType type);

// y[n x out] = x[n x in] * W^T where W [out x in] is stored as `type` blocks, each
// row contiguous. `in` must be a multiple of 32. Parallel over output rows.
void qmatmul(const float* x, int64_t n, const void* w, GgmlType type, int64_t out, int64_t in,
             float* y);

}  // namespace t2::backbone::cpu
