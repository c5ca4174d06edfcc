// CPU kernels (see ops.h). The GEMM goes to OpenBLAS, which runs its own threads;
// the element-wise loops are parallel over rows with OpenMP.
#include "backbone/cpu/ops.h"

#include <cblas.h>

#include <cmath>
#include <limits>

namespace t2::backbone::cpu {

void matmul(const float* x, int64_t n, const float* w, int64_t out, int64_t in, float* y,
            bool accumulate) {
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.0f, w, int(in), x, 1,
                accumulate ? 1.0f : 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(out), int(in), 1.0f, x,
              int(in), w, int(in), accumulate ? 1.0f : 0.0f, y, int(out));
}

void rmsnorm(const float* x, const float* gain, int64_t n, int64_t d, float eps, float* y) {
#pragma omp parallel for if (n > 4) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    const float scale = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * scale * gain[i];
  }
}

void rope(float* x, int n_heads, int head_dim, int n_rot, int64_t pos, float base) {
  float cos_t[256], sin_t[256];
  const int half = n_rot / 2;
  for (int i = 0; i < half; ++i) {
    // Same f32 frequency as reference implementations: base^(-2i/n_rot).
    const float inv_freq = 1.0f / std::pow(base, float(2 * i) / float(n_rot));
    const float angle = float(pos) * inv_freq;
    cos_t[i] = std::cos(angle);
    sin_t[i] = std::sin(angle);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + int64_t(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cos_t[i] - b * sin_t[i];
      v[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
    }
  }
}

void swiglu(float* gate, const float* up, int64_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace t2::backbone::cpu
