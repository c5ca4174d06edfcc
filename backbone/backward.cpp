// Training ops (see backward.h). Row reductions accumulate in double so that the
// f32 instantiation loses no more than the GEMMs do; both instantiations share
// one code path, so the f64 one checks the f32 one's math exactly.
#include "backbone/backward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace t2::backbone::train {

namespace {

CBLAS_TRANSPOSE trans(bool t) { return t ? CblasTrans : CblasNoTrans; }

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans(ta), trans(tb), int(m), int(n), int(k), alpha, a, int(lda), b,
              int(ldb), beta, c, int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                  double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, trans(ta), trans(tb), int(m), int(n), int(k), alpha, a, int(lda), b,
              int(ldb), beta, c, int(ldc));
}

// ---- RMSNorm: y = x r g, r = (mean(x^2) + eps)^-1/2 ---------------------------------
// dx = r (dy g) - x r^3 / d * sum(dy g x).

template <typename T>
void rmsnorm_forward(const T* x, const T* gain, int64_t n, int64_t d, float eps, T* y) {
#pragma omp parallel for if (n > 4) schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * double(xr[i]);
    const T r = T(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * gain[i];
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* gain, const T* dy, int64_t n, int64_t d, float eps,
                      T* dx, bool accumulate) {
#pragma omp parallel for if (n > 4) schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* xr = x + row * d;
    const T* dyr = dy + row * d;
    T* dxr = dx + row * d;
    double ss = 0.0, dot = 0.0;
#pragma omp simd reduction(+ : ss, dot)
    for (int64_t i = 0; i < d; ++i) {
      ss += double(xr[i]) * double(xr[i]);
      dot += double(dyr[i]) * double(gain[i]) * double(xr[i]);
    }
    const double r = 1.0 / std::sqrt(ss / double(d) + double(eps));
    const T a = T(r), b = T(r * r * r * dot / double(d));
    for (int64_t i = 0; i < d; ++i) {
      const T g = a * dyr[i] * gain[i] - b * xr[i];
      dxr[i] = accumulate ? dxr[i] + g : g;
    }
  }
}

// ---- RoPE ------------------------------------------------------------------------

template <typename T>
std::vector<T> rope_table(int n_pos, int n_rot, float base) {
  const int half = n_rot / 2;
  std::vector<T> table(size_t(n_pos) * size_t(half) * 2);
  for (int i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(base, float(2 * i) / float(n_rot));
    for (int pos = 0; pos < n_pos; ++pos) {
      const float angle = float(pos) * inv_freq;
      table[(size_t(pos) * size_t(half) + size_t(i)) * 2] = T(std::cos(angle));
      table[(size_t(pos) * size_t(half) + size_t(i)) * 2 + 1] = T(std::sin(angle));
    }
  }
  return table;
}

template <typename T>
void rope_rotate(T* x, int n_heads, int head_dim, int n_rot, const T* table, int64_t pos,
                 bool inverse) {
  const int half = n_rot / 2;
  const T* cs = table + pos * half * 2;
  for (int h = 0; h < n_heads; ++h) {
    T* v = x + int64_t(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const T c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
      const T a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * c - b * s;
      v[2 * i + 1] = a * s + b * c;
    }
  }
}

// ---- SwiGLU: act = g sigma(g) u; d act/dg = sigma(g) (1 + g (1 - sigma(g))) u ----------

template <typename T>
void swiglu_forward(const T* gate, const T* up, int64_t n, T* act) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    act[i] = g / (T(1) + exp_t(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, int64_t n, T* dgate, T* dup) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i], u = up[i], da = dact[i];
    const T sig = T(1) / (T(1) + exp_t(-g));
    dgate[i] = da * u * sig * (T(1) + g * (T(1) - sig));
    dup[i] = da * g * sig;
  }
}

// ---- causal attention --------------------------------------------------------------

namespace {

// p[bi x ld] = softmax over keys j <= i0 + row of scale * q k^T; later keys get 0.
template <typename T>
void block_probabilities(const AttentionShape& a, int h, int g, int64_t i0, int64_t bi,
                         const T* q, const T* k, T* p) {
  const int hd = a.head_dim;
  const int64_t keys = i0 + bi;
  gemm<T>(false, true, bi, keys, hd, T(a.scale), q + i0 * a.q_ld + int64_t(h) * hd, a.q_ld,
          k + int64_t(g) * hd, a.kv_ld, T(0), p, keys);
  for (int64_t r = 0; r < bi; ++r) {
    T* pr = p + r * keys;
    const int64_t n_valid = i0 + r + 1;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n_valid; ++j) mx = std::max(mx, pr[j]);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n_valid; ++j) {
      pr[j] = exp_t(pr[j] - mx);
      sum += double(pr[j]);
    }
    const T inv = T(1.0 / sum);
#pragma omp simd
    for (int64_t j = 0; j < n_valid; ++j) pr[j] *= inv;
    std::fill(pr + n_valid, pr + keys, T(0));
  }
}

}  // namespace

template <typename T>
void attention_forward(const AttentionShape& a, int g, int64_t n, const T* q, const T* k,
                       const T* v, T* out, T* scratch) {
  const int hd = a.head_dim, group = a.n_head / a.n_head_kv;
  for (int h = g * group; h < (g + 1) * group; ++h) {
    for (int64_t i0 = 0; i0 < n; i0 += kAttentionBlock) {
      const int64_t bi = std::min(kAttentionBlock, n - i0), keys = i0 + bi;
      block_probabilities(a, h, g, i0, bi, q, k, scratch);
      gemm<T>(false, false, bi, hd, keys, T(1), scratch, keys, v + int64_t(g) * hd, a.kv_ld, T(0),
              out + i0 * a.q_ld + int64_t(h) * hd, a.q_ld);
    }
  }
}

// Per block of query rows: dP = dO V^T; dS = P (dP - rowsum(P dP)); dQ = scale dS K;
// dK += scale dS^T Q; dV += P^T dO.
template <typename T>
void attention_backward(const AttentionShape& a, int g, int64_t n, const T* q, const T* k,
                        const T* v, const T* dout, T* dq, T* dk, T* dv, T* scratch) {
  const int hd = a.head_dim, group = a.n_head / a.n_head_kv;
  const int64_t col = int64_t(g) * hd;
  for (int64_t i = 0; i < n; ++i) {
    std::fill(dk + i * a.kv_ld + col, dk + i * a.kv_ld + col + hd, T(0));
    std::fill(dv + i * a.kv_ld + col, dv + i * a.kv_ld + col + hd, T(0));
  }
  T* p = scratch;
  T* dp = scratch + kAttentionBlock * n;
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const int64_t qcol = int64_t(h) * hd;
    for (int64_t i0 = 0; i0 < n; i0 += kAttentionBlock) {
      const int64_t bi = std::min(kAttentionBlock, n - i0), keys = i0 + bi;
      block_probabilities(a, h, g, i0, bi, q, k, p);
      const T* dob = dout + i0 * a.q_ld + qcol;
      gemm<T>(false, true, bi, keys, hd, T(1), dob, a.q_ld, v + col, a.kv_ld, T(0), dp, keys);
      for (int64_t r = 0; r < bi; ++r) {
        T* pr = p + r * keys;
        T* dpr = dp + r * keys;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < keys; ++j) dot += double(pr[j]) * double(dpr[j]);
        const T d = T(dot);
#pragma omp simd
        for (int64_t j = 0; j < keys; ++j) dpr[j] = pr[j] * (dpr[j] - d);  // now dS
      }
      gemm<T>(false, false, bi, hd, keys, T(a.scale), dp, keys, k + col, a.kv_ld, T(0),
              dq + i0 * a.q_ld + qcol, a.q_ld);
      gemm<T>(true, false, keys, hd, bi, T(a.scale), dp, keys, q + i0 * a.q_ld + qcol, a.q_ld,
              T(1), dk + col, a.kv_ld);
      gemm<T>(true, false, keys, hd, bi, T(1), p, keys, dob, a.q_ld, T(1), dv + col, a.kv_ld);
    }
  }
}

#define T2_TRAIN_OPS(T)                                                                     \
  template void rmsnorm_forward<T>(const T*, const T*, int64_t, int64_t, float, T*);        \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, int64_t, int64_t, float,  \
                                    T*, bool);                                              \
  template std::vector<T> rope_table<T>(int, int, float);                                   \
  template void rope_rotate<T>(T*, int, int, int, const T*, int64_t, bool);                 \
  template void swiglu_forward<T>(const T*, const T*, int64_t, T*);                         \
  template void swiglu_backward<T>(const T*, const T*, const T*, int64_t, T*, T*);          \
  template void attention_forward<T>(const AttentionShape&, int, int64_t, const T*,         \
                                     const T*, const T*, T*, T*);                           \
  template void attention_backward<T>(const AttentionShape&, int, int64_t, const T*,        \
                                      const T*, const T*, const T*, T*, T*, T*, T*);
T2_TRAIN_OPS(float)
T2_TRAIN_OPS(double)
#undef T2_TRAIN_OPS

}  // namespace t2::backbone::train
