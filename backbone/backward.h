// Forward and backward of each Llama layer op for training (f32 for speed, f64
// for finite-difference checks): GEMM, RMSNorm, RoPE, SwiGLU and causal GQA
// attention. Backward ops take the forward's inputs and dL/d(output) and return
// dL/d(input); frozen weights get no gradient. Buffers are row-major.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace t2::backbone::train {

// e^x for f32 in plain arithmetic, so that loops over it vectorise (libm's expf does
// not without -ffast-math): Cephes' reduction x = n ln2 + r and degree-7 polynomial,
// 2^n from the exponent bits; within 2 ulp on [-87, 88], clamped outside. f64 (the
// finite-difference reference) keeps std::exp.
inline float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = round(x / ln2) by the 1.5 * 2^23 trick (std::floor blocks vectorisation).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((int32_t(n) + 127) << 23);
}
inline float exp_t(float x) { return exp_fast(x); }
inline double exp_t(double x) { return std::exp(x); }

// c[m x n] = alpha * op(a) * op(b) + beta * c, op = transpose when ta / tb.
// OpenBLAS (threaded outside OpenMP regions, serial inside them).
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// y[n x d] = x * rsqrt(mean(x^2) + eps) * gain. y may alias x.
template <typename T>
void rmsnorm_forward(const T* x, const T* gain, int64_t n, int64_t d, float eps, T* y);
// dx[n x d] (+)= dL/dx given x and dy.
template <typename T>
void rmsnorm_backward(const T* x, const T* gain, const T* dy, int64_t n, int64_t d, float eps,
                      T* dx, bool accumulate);

// cos/sin of theta_i = pos * base^(-2i/n_rot) for pos < n_pos, i < n_rot/2, computed in
// f32 exactly as cpu::rope does: table[(pos * n_rot/2 + i) * 2 + {0: cos, 1: sin}].
template <typename T>
std::vector<T> rope_table(int n_pos, int n_rot, float base);
// In place on one row [n_heads x head_dim]: rotate adjacent pairs (x[2i], x[2i+1]) of
// the first n_rot dims by +theta (forward) or -theta (backward: R^T = R(-theta)).
template <typename T>
void rope_rotate(T* x, int n_heads, int head_dim, int n_rot, const T* table, int64_t pos,
                 bool inverse);

// act = silu(gate) * up, element-wise over n.
template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t n, T* act);
// dgate, dup from gate, up and dact. dup may alias dact.
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t n, T* dgate, T* dup);

// Causal attention of one sequence of n tokens: every query head h reads kv head
// h / (n_head / n_kv). q, out: [n x q_dim] with row stride q_ld; k, v: [n x kv_dim]
// with row stride kv_ld (q and k already rotated). Scores are scale * q.k.
struct AttentionShape {
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  int64_t q_ld = 0, kv_ld = 0;
  double scale = 0.0;
};

// Query rows are done in blocks of this many, each against the keys up to its last row.
constexpr int64_t kAttentionBlock = 64;

// Scratch one thread needs for n tokens: scores and their gradient, one block each.
inline int64_t attention_scratch(int64_t n) { return 2 * kAttentionBlock * n; }

// out = softmax(scale * q k^T, causal) v for the heads of kv group g.
template <typename T>
void attention_forward(const AttentionShape& a, int g, int64_t n, const T* q, const T* k,
                       const T* v, T* out, T* scratch);
// dq (heads of group g), dk and dv (group g, overwritten: the group's heads are summed
// here) from the forward's q, k, v and dout. Probabilities are recomputed, not stored.
template <typename T>
void attention_backward(const AttentionShape& a, int g, int64_t n, const T* q, const T* k,
                        const T* v, const T* dout, T* dq, T* dk, T* dv, T* scratch);

}  // namespace t2::backbone::train
