// CPU kernels against plain reference computations: the quantized-weight matmul
// against the f32 GEMM on the dequantized weights (per type, per batch size),
// and RMSNorm, RoPE, SwiGLU, softmax against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backbone/cpu/ops.h"
#include "backbone/cpu/qmatmul.h"
#include "backbone/ggml_type.h"
#include "backbone/sampler.h"

namespace t2::backbone {
namespace {

// Random but valid blocks: f16 scales in a sane range, random quant bytes.
std::vector<uint8_t> random_blocks(GgmlType type, int64_t n_elements, std::mt19937& rng) {
  const auto info = *ggml_type_info(uint32_t(type));
  std::vector<uint8_t> bytes(size_t(n_elements / info.block_elements * info.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (auto& b : bytes) b = uint8_t(byte(rng));
  const int scales = type == GgmlType::kQ4_1 ? 2 : 1;  // d (and m) at the block start
  for (size_t off = 0; off < bytes.size(); off += size_t(info.block_bytes)) {
    for (int k = 0; k < scales; ++k) {
      const uint16_t h = f32_to_f16(scale(rng));
      std::memcpy(&bytes[off + 2 * size_t(k)], &h, 2);
    }
  }
  return bytes;
}

class QMatmul : public ::testing::TestWithParam<std::tuple<GgmlType, int>> {};

TEST_P(QMatmul, MatchesF32GemmOnDequantizedWeights) {
  const auto [type, n] = GetParam();
  const int64_t out = 96, in = 256;
  std::mt19937 rng(7 + n);
  const auto blocks = random_blocks(type, out * in, rng);
  std::vector<float> w(size_t(out * in));
  dequantize(type, blocks.data(), w.data(), out * in);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n * in));
  for (auto& v : x) v = normal(rng);

  std::vector<float> want(size_t(n * out)), got(size_t(n * out));
  cpu::matmul(x.data(), n, w.data(), out, in, want.data());
  cpu::qmatmul(x.data(), n, blocks.data(), type, out, in, got.data());
  double max_abs = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_abs = std::max(max_abs, double(std::fabs(want[i] - got[i])));
    max_ref = std::max(max_ref, double(std::fabs(want[i])));
  }
  std::printf("%s n=%d: max abs err %.3g (max |y| %.3g)\n", ggml_type_name(type), n, max_abs,
              max_ref);
  EXPECT_LT(max_abs, 1e-5 * std::max(1.0, max_ref));
}

INSTANTIATE_TEST_SUITE_P(Types, QMatmul,
                         ::testing::Combine(::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1,
                                                              GgmlType::kQ8_0),
                                            ::testing::Values(1, 2, 3, 4, 5, 8, 9)));

TEST(Ops, RmsnormByHand) {
  // x = (3, 4): mean(x^2) = 12.5, so y = x / sqrt(12.5 + eps) * gain.
  const float x[2] = {3.0f, 4.0f}, gain[2] = {1.0f, 2.0f};
  float y[2];
  cpu::rmsnorm(x, gain, 1, 2, 0.0f, y);
  EXPECT_NEAR(y[0], 3.0 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[1], 2.0 * 4.0 / std::sqrt(12.5), 1e-6);
}

TEST(Ops, RopeRotatesAdjacentPairs) {
  // head_dim 4, base 100: pair 0 turns by pos*1, pair 1 by pos*100^(-1/2) = pos/10.
  float x[4] = {1.0f, 0.0f, 0.0f, 1.0f};
  cpu::rope(x, 1, 4, 4, 2, 100.0f);
  EXPECT_NEAR(x[0], std::cos(2.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(2.0), 1e-6);
  EXPECT_NEAR(x[2], -std::sin(0.2), 1e-6);
  EXPECT_NEAR(x[3], std::cos(0.2), 1e-6);
  float y[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  cpu::rope(y, 1, 4, 4, 0, 100.0f);  // position 0 is the identity
  EXPECT_FLOAT_EQ(y[1], 2.0f);
  EXPECT_FLOAT_EQ(y[3], 4.0f);
}

TEST(Ops, SwigluAndSoftmaxByHand) {
  float g[2] = {0.0f, 2.0f};
  const float u[2] = {5.0f, 3.0f};
  cpu::swiglu(g, u, 2);
  EXPECT_FLOAT_EQ(g[0], 0.0f);
  EXPECT_NEAR(g[1], 2.0 / (1.0 + std::exp(-2.0)) * 3.0, 1e-5);

  float s[3] = {0.0f, std::log(3.0f), -INFINITY};
  cpu::softmax(s, 3);
  EXPECT_NEAR(s[0], 0.25, 1e-6);
  EXPECT_NEAR(s[1], 0.75, 1e-6);
  EXPECT_EQ(s[2], 0.0f);
}

TEST(Sampler, GreedyTakesTheArgmaxAndTinyTopPToo) {
  const std::vector<float> logits{0.1f, 2.0f, 1.9f, -1.0f};
  Sampler greedy({0.0f, 1.0f, 1});
  EXPECT_EQ(greedy.sample(logits), 1);
  Sampler nucleus({1.0f, 1e-6f, 1});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(nucleus.sample(logits), 1);
}

TEST(Sampler, TemperatureSamplesFollowTheSoftmax) {
  // logits log(1), log(2), log(7): probabilities 0.1, 0.2, 0.7 at T = 1.
  const std::vector<float> logits{0.0f, std::log(2.0f), std::log(7.0f)};
  Sampler s({1.0f, 1.0f, 42});
  int counts[3] = {};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  EXPECT_NEAR(counts[0] / double(n), 0.1, 0.01);
  EXPECT_NEAR(counts[1] / double(n), 0.2, 0.012);
  EXPECT_NEAR(counts[2] / double(n), 0.7, 0.015);
  // top_p 0.75 keeps {0.7, 0.2}: token 0 is never drawn.
  Sampler top({1.0f, 0.75f, 42});
  for (int i = 0; i < 2000; ++i) EXPECT_NE(top.sample(logits), 0);
}

TEST(Sampler, SameSeedSameDraws) {
  const std::vector<float> logits{0.3f, 0.2f, 0.1f, 0.4f, 0.0f};
  Sampler a({0.9f, 0.95f, 5}), b({0.9f, 0.95f, 5});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(logits), b.sample(logits));
}

TEST(Sampler, RejectsBadSettings) {
  EXPECT_THROW(Sampler({-1.0f, 1.0f, 0}), std::exception);
  EXPECT_THROW(Sampler({1.0f, 0.0f, 0}), std::exception);
  EXPECT_THROW(Sampler({1.0f, 1.5f, 0}), std::exception);
}

}  // namespace
}  // namespace t2::backbone
