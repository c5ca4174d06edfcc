// Test-only SVD factors: W = U diag(s) V^T of a row-major [out x in] matrix via
// LAPACK dgesdd (double, then stored f32), independent of backbone/svf.cpp, and an
// SvfSlots over chosen (layer, kind) pairs of a model.
#pragma once

#include <algorithm>
#include <deque>
#include <stdexcept>
#include <vector>

#include "backbone/model.h"
#include "backbone/train_forward.h"

extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda,
                        double* s, double* u, const int* ldu, double* vt, const int* ldvt,
                        double* work, const int* lwork, int* iwork, int* info);

namespace t2::test {

struct OwnedFactors {
  std::vector<float> u, s, vt;  // [out x r], [r], [r x in]
  backbone::SvdFactors view(int out, int in) const {
    backbone::SvdFactors f;
    f.out = out;
    f.in = in;
    f.rank = int(s.size());
    f.u = u.data();
    f.s = s.data();
    f.vt = vt.data();
    for (float x : s) f.s_sum += double(x);
    return f;
  }
};

// Row-major W [out x in] is column-major W^T [in x out]; its SVD W^T = A S B^T gives
// W = B S A^T: column-major A [in x r] is row-major V^T, column-major B^T is row-major U.
inline OwnedFactors svd_factors(const float* w, int out, int in) {
  const int r = std::min(out, in);
  std::vector<double> a(w, w + int64_t(out) * in), s(static_cast<size_t>(r));
  std::vector<double> vt_rm(size_t(r) * size_t(in)), u_rm(size_t(out) * size_t(r));
  std::vector<int> iwork(static_cast<size_t>(8 * r));
  int info = 0, lwork = -1;
  double query = 0.0;
  dgesdd_("S", &in, &out, a.data(), &in, s.data(), vt_rm.data(), &in, u_rm.data(), &r, &query,
          &lwork, iwork.data(), &info);
  lwork = int(query);
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_("S", &in, &out, a.data(), &in, s.data(), vt_rm.data(), &in, u_rm.data(), &r,
          work.data(), &lwork, iwork.data(), &info);
  if (info != 0) throw std::runtime_error("dgesdd failed");
  OwnedFactors f;
  f.u.assign(u_rm.begin(), u_rm.end());
  f.s.assign(s.begin(), s.end());
  f.vt.assign(vt_rm.begin(), vt_rm.end());
  return f;
}

// Factors for the given (layer, kind) pairs of `model`, in that order.
struct TestSlots {
  std::deque<OwnedFactors> owned;
  backbone::SvfSlots slots;
};

inline void build_slots(const backbone::Model& model,
                        const std::vector<std::pair<int, backbone::MatrixKind>>& which,
                        TestSlots& out) {
  out.slots = backbone::SvfSlots(model.config().n_layer);
  for (const auto& [layer, kind] : which) {
    const backbone::Linear& lin = model.layer(layer).matrix(kind);
    out.owned.push_back(svd_factors(lin.w, lin.out, lin.in));
    out.slots.add(layer, kind, out.owned.back().view(lin.out, lin.in));
  }
}

}  // namespace t2::test
