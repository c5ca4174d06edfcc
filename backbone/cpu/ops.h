// CPU kernels of the Llama forward pass on f32 row-major buffers. Each takes
// explicit sizes; shapes are noted as [rows x cols]. The GEMM is OpenBLAS; the
// element-wise ops are OpenMP loops the compiler vectorises.
#pragma once

#include <cstdint>

namespace t2::backbone::cpu {

// y[n x out] (+)= x[n x in] * w[out x in]^T.
void matmul(const float* x, int64_t n, const float* w, int64_t out, int64_t in, float* y,
            bool accumulate = false);

// y[n x d] = x / sqrt(mean(x^2) + eps) * gain[d], row by row. y may alias x.
void rmsnorm(const float* x, const float* gain, int64_t n, int64_t d, float eps, float* y);

// In place: x[n_heads x head_dim] of one token at position pos, rotating
// adjacent pairs (GGUF row order) of the first n_rot dims.
void rope(float* x, int n_heads, int head_dim, int n_rot, int64_t pos, float base);

// gate[i] = silu(gate[i]) * up[i] for i < n.
void swiglu(float* gate, const float* up, int64_t n);

// In place softmax over n values; returns nothing, handles -inf entries.
void softmax(float* x, int64_t n);

}  // namespace t2::backbone::cpu
