// dLoss/dz at z = 1 on the real model against PyTorch (transformers f32 autograd of
// the dense weights, projected on an f64 SVD; tests/reference/svf_grad_reference.py).
// The quantity s_i u_i^T G v_i does not depend on SVD signs; near-degenerate singular
// values (where the basis itself is ill-defined) are skipped.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <string>

#include "backbone/train_forward.h"
#include "tests/backbone/svd_factors.h"

namespace t2::backbone {
namespace {

MatrixKind kind_named(const std::string& name) {
  for (int k = 0; k < kMatrixKinds; ++k) {
    if (name == matrix_kind_name(MatrixKind(k))) return MatrixKind(k);
  }
  throw std::runtime_error("unknown matrix kind " + name);
}

TEST(BackwardModel, DzMatchesPyTorchAtUnitZ) {
  std::ifstream js(T2_SOURCE_DIR "/tests/reference/svf_grad_reference.json");
  const auto ref = nlohmann::json::parse(js);
  std::ifstream bin(T2_SOURCE_DIR "/tests/reference/svf_grad_reference.bin", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(bin)), {});
  ASSERT_EQ(bytes.size() % sizeof(float), 0u);
  std::vector<float> ref_values(bytes.size() / sizeof(float));
  std::memcpy(ref_values.data(), bytes.data(), bytes.size());

  const auto model = Model::load(T2_MODEL_PATH);
  const int64_t V = model->config().n_vocab;
  std::vector<std::pair<int, MatrixKind>> which;
  for (const auto& s : ref["slots"]) which.emplace_back(s["layer"], kind_named(s["kind"]));
  test::TestSlots slots;
  test::build_slots(*model, which, slots);
  const SvfSlots& sv = slots.slots;

  // Both sequences with z = 1 in one batch; loss = sum of response log-probs.
  std::vector<std::vector<int32_t>> ids;
  std::vector<TrainSequence> batch;
  const std::vector<float> ones(size_t(sv.total_rank), 1.0f);
  for (const auto& c : ref["cases"]) ids.push_back(c["ids"].get<std::vector<int32_t>>());
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.push_back({ids[i], ref["cases"][i]["n_prompt"].get<int>(), ones});
  }
  TrainForward tf(*model, sv);
  tf.run(batch);
  std::vector<float>& d = tf.logits();  // overwritten in place with dLoss/dlogits
  double lp_err = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto want = ref["logprobs"][i].get<std::vector<double>>();
    const int64_t r0 = tf.sequence_rows()[i];
    ASSERT_EQ(int64_t(want.size()), tf.sequence_rows()[i + 1] - r0);
    for (size_t r = 0; r < want.size(); ++r) {
      lp_err = std::max(lp_err, std::fabs(double(tf.token_logprobs()[size_t(r0) + r]) - want[r]));
    }
  }
  std::vector<float> row(static_cast<size_t>(V));
  for (int64_t r = 0; r < tf.rows(); ++r) {
    float* lr = &d[size_t(r * V)];
    std::copy(lr, lr + V, row.begin());
    std::fill(lr, lr + V, 0.0f);
    const size_t seq = r < tf.sequence_rows()[1] ? 0 : 1;
    const int32_t target = ids[seq][size_t(ref["cases"][seq]["n_prompt"].get<int64_t>() +
                                           (r - tf.sequence_rows()[seq]))];
    add_logprob_grad(row.data(), V, target, 1.0, lr);
  }
  const auto& dz = tf.backward(d);
  std::printf("response log-probs: max abs err %.3g\n", lp_err);
  EXPECT_LT(lp_err, 1e-3);

  // Per slot: s, then dz (summed over the two sequences).
  std::printf("%-18s %5s %9s %9s %11s %11s %9s\n", "slot", "rank", "skipped", "s rel err",
              "max|dz|", "max abs err", "rel err");
  size_t at = 0;
  for (int i = 0; i < sv.n_slots(); ++i) {
    const int64_t rank = sv.factors[size_t(i)].rank, off = sv.offset[size_t(i)];
    const float* s_ref = &ref_values[at];
    const float* dz_ref = &ref_values[at + size_t(rank)];
    at += 2 * size_t(rank);
    double s_err = 0.0, max_ref = 0.0, max_abs = 0.0;
    int skipped = 0;
    for (int64_t j = 0; j < rank; ++j) {
      const float* s = sv.factors[size_t(i)].s;
      s_err = std::max(s_err, std::fabs(double(s[j]) - s_ref[j]) / double(s_ref[0]));
      // A singular value within 1e-5 (relative) of a neighbour: its vectors may mix.
      const double gap = std::min(j > 0 ? s_ref[j - 1] - s_ref[j] : 1e30,
                                  j + 1 < rank ? s_ref[j] - s_ref[j + 1] : 1e30);
      if (gap < 1e-5 * double(s_ref[0])) {
        ++skipped;
        continue;
      }
      const double ours =
          double(dz[size_t(off + j)]) + double(dz[size_t(sv.total_rank + off + j)]);
      max_ref = std::max(max_ref, std::fabs(double(dz_ref[j])));
      max_abs = std::max(max_abs, std::fabs(ours - double(dz_ref[j])));
    }
    const std::string name = "blk." + std::to_string(which[size_t(i)].first) + "." +
                             matrix_kind_name(which[size_t(i)].second);
    const double rel = max_abs / max_ref;
    std::printf("%-18s %5lld %9d %9.2g %11.4g %11.3g %9.3g\n", name.c_str(), (long long)rank,
                skipped, s_err, max_ref, max_abs, rel);
    EXPECT_LT(s_err, 1e-5) << name;
    EXPECT_LT(skipped, rank / 10) << name;
    EXPECT_LT(rel, 1e-3) << name;
  }
  EXPECT_EQ(at, ref_values.size());
}

}  // namespace
}  // namespace t2::backbone
