// Dequantizers against an independent implementation: blocks quantized and
// dequantized by the `gguf` Python package (tests/reference/make_quant_reference.py)
// must dequantize to the same f32 bits here. Then hand-worked single blocks, so a
// layout mistake shows as a readable number, not only as a mismatch.
#include "backbone/ggml_type.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

// One tests/reference/quant_reference/<TYPE>.bin (layout in the script's docstring).
struct Reference {
  uint32_t type = 0;
  uint32_t block_elements = 0, block_bytes = 0;
  uint32_t n_quantized = 0, n_raw = 0;
  std::vector<float> source;        // what gguf quantized into the first blocks
  std::vector<uint8_t> blocks;
  std::vector<float> expected;      // gguf's dequantization of all blocks

  uint32_t n_blocks() const { return n_quantized + n_raw; }
};

Reference read_reference(const std::string& name) {
  const std::string path = T2_SOURCE_DIR "/tests/reference/quant_reference/" + name + ".bin";
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  if (bytes.size() < 28 || std::memcmp(bytes.data(), "T2QR", 4) != 0) {
    fail("{}: missing or not a quant reference; run tests/reference/make_quant_reference.py",
         path);
  }
  uint32_t header[6];
  std::memcpy(header, bytes.data() + 4, sizeof(header));
  Reference r{header[1], header[2], header[3], header[4], header[5], {}, {}, {}};
  const size_t n_source = size_t(r.n_quantized) * r.block_elements;
  const size_t n_block_bytes = size_t(r.n_blocks()) * r.block_bytes;
  const size_t n_expected = size_t(r.n_blocks()) * r.block_elements;
  if (header[0] != 1 || bytes.size() != 28 + 4 * n_source + n_block_bytes + 4 * n_expected) {
    fail("{}: unexpected format version or size {}", path, bytes.size());
  }
  const char* p = bytes.data() + 28;
  r.source.resize(n_source);
  std::memcpy(r.source.data(), p, 4 * n_source);
  p += 4 * n_source;
  r.blocks.assign(p, p + n_block_bytes);
  p += n_block_bytes;
  r.expected.resize(n_expected);
  std::memcpy(r.expected.data(), p, 4 * n_expected);
  return r;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Distance in units in the last place (same-sign floats; 0 for identical bits).
int64_t ulp_distance(float a, float b) {
  auto ordered = [](float f) {
    const int64_t u = bits_of(f);
    return u & 0x80000000 ? int64_t(0x80000000) - u : u;
  };
  return std::llabs(ordered(a) - ordered(b));
}

class QuantReference : public testing::TestWithParam<const char*> {};

TEST_P(QuantReference, MatchesGgufPackage) {
  const Reference r = read_reference(GetParam());
  const auto info = ggml_type_info(r.type);
  ASSERT_TRUE(info) << "type id " << r.type;
  EXPECT_STREQ(info->name, GetParam());
  ASSERT_EQ(info->block_elements, int64_t(r.block_elements));
  ASSERT_EQ(info->block_bytes, int64_t(r.block_bytes));

  std::vector<float> got(r.expected.size());
  dequantize(GgmlType(r.type), r.blocks.data(), got.data(), int64_t(got.size()));

  double max_abs = 0.0;
  int64_t max_ulp = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float want = r.expected[i];
    if (std::isnan(want) || std::isnan(got[i])) {
      EXPECT_TRUE(std::isnan(want) && std::isnan(got[i])) << "element " << i;
      continue;
    }
    if (want == got[i]) continue;  // includes equal infinities
    max_abs = std::max(max_abs, double(std::fabs(want - got[i])));
    max_ulp = std::max(max_ulp, ulp_distance(want, got[i]));
    EXPECT_LE(ulp_distance(want, got[i]), 1)
        << GetParam() << " element " << i << " (block " << i / r.block_elements
        << "): got " << got[i] << ", gguf " << want;
  }
  std::printf("  %-5s %3u quantized + %3u raw blocks: max abs error %.3g, max ulp %lld\n",
              GetParam(), r.n_quantized, r.n_raw, max_abs, static_cast<long long>(max_ulp));
}

INSTANTIATE_TEST_SUITE_P(EveryType, QuantReference,
                         testing::Values("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                         "Q5_1", "Q4_K", "Q5_K", "Q6_K"),
                         [](const auto& info) { return std::string(info.param); });

// f32 -> f16 rounding (nearest even, subnormals, overflow) as numpy does it.
TEST(QuantF16, EncodeMatchesNumpy) {
  const Reference r = read_reference("F16");
  int checked = 0;
  for (uint32_t i = 0; i < r.n_quantized; ++i) {
    uint16_t want;
    std::memcpy(&want, r.blocks.data() + 2 * i, 2);
    const uint16_t got = f32_to_f16(r.source[i]);
    if (std::isnan(r.source[i])) {
      EXPECT_TRUE((got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0) << "NaN must stay NaN";
      continue;
    }
    EXPECT_EQ(got, want) << "f32 " << r.source[i] << " (0x" << std::hex << bits_of(r.source[i])
                         << ")";
    ++checked;
  }
  EXPECT_GT(checked, 250);
}

// The test writer's quantizers are ggml's reference algorithms; gguf's numpy
// ports of them must give the same blocks (so tiny models hold valid data).
TEST(QuantTinyWriter, QuantizersMatchGgufPackage) {
  for (const char* name : {"Q8_0", "Q4_0", "Q4_1"}) {
    SCOPED_TRACE(name);
    const Reference r = read_reference(name);
    const std::vector<std::byte> blocks = test::quantize(GgmlType(r.type), r.source);
    ASSERT_EQ(blocks.size(), size_t(r.n_quantized) * r.block_bytes);
    int differing = 0;
    for (size_t i = 0; i < blocks.size(); ++i) differing += uint8_t(blocks[i]) != r.blocks[i];
    EXPECT_EQ(differing, 0);
  }
}

// ---- hand-worked blocks ---------------------------------------------------------------

template <typename... Parts>
std::vector<uint8_t> block_of(size_t size, Parts... parts) {
  std::vector<uint8_t> b(size, 0);
  (parts(b), ...);
  return b;
}

auto at16(size_t at, uint16_t v) {
  return [=](std::vector<uint8_t>& b) { std::memcpy(b.data() + at, &v, 2); };
}
auto at32(size_t at, uint32_t v) {
  return [=](std::vector<uint8_t>& b) { std::memcpy(b.data() + at, &v, 4); };
}
auto at8(size_t at, uint8_t v) {
  return [=](std::vector<uint8_t>& b) { b[at] = v; };
}

std::vector<float> dequant(GgmlType type, const std::vector<uint8_t>& block) {
  const auto info = *ggml_type_info(uint32_t(type));
  const int64_t n = int64_t(block.size()) / info.block_bytes * info.block_elements;
  std::vector<float> y(static_cast<size_t>(n));
  dequantize(type, block.data(), y.data(), n);
  return y;
}

constexpr uint16_t kHalf = 0x3800, kOne = 0x3C00, kMinusOne = 0xBC00, kTwo = 0x4000,
                   kQuarter = 0x3400;

TEST(QuantByHand, Q4_1) {
  // d = 0.5, m = -1; byte j: low nibble j (element j), high nibble 15 - j (element j + 16).
  std::vector<uint8_t> b = block_of(20, at16(0, kHalf), at16(2, kMinusOne));
  for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(j | ((15 - j) << 4));
  const std::vector<float> want = {
      -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5,
      6.5,  6.0,  5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0};
  EXPECT_EQ(dequant(GgmlType::kQ4_1, b), want);
}

TEST(QuantByHand, Q4_0AndQ8_0) {
  // Q4_0, d = 2: byte 0 = 0x0F gives element 0 = 2 * (15 - 8) = 14 and element
  // 16 = 2 * (0 - 8) = -16; bytes 0x88 give 0.
  std::vector<uint8_t> q4 = block_of(18, at16(0, kTwo), at8(2, 0x0F));
  for (int j = 1; j < 16; ++j) q4[2 + j] = 0x88;
  const std::vector<float> y4 = dequant(GgmlType::kQ4_0, q4);
  EXPECT_EQ(y4[0], 14.0f);
  EXPECT_EQ(y4[16], -16.0f);
  EXPECT_EQ(y4[1], 0.0f);
  EXPECT_EQ(y4[31], 0.0f);

  // Q8_0, d = 0.25: q = -128, -1, 0, 1, 127.
  const std::vector<uint8_t> q8 = block_of(34, at16(0, kQuarter), at8(2, 0x80), at8(3, 0xFF),
                                           at8(5, 0x01), at8(6, 0x7F));
  const std::vector<float> y8 = dequant(GgmlType::kQ8_0, q8);
  EXPECT_EQ(y8[0], -32.0f);
  EXPECT_EQ(y8[1], -0.25f);
  EXPECT_EQ(y8[2], 0.0f);
  EXPECT_EQ(y8[3], 0.25f);
  EXPECT_EQ(y8[4], 31.75f);
}

TEST(QuantByHand, Q5_0AndQ5_1) {
  // Q5_0, d = 1: qh bits 0 and 31 set. Element 0: low nibble 3 | 16 -> 19 - 16 = 3;
  // element 31: high nibble of byte 15 (15) | 16 -> 31 - 16 = 15; element 16: 0 - 16.
  const std::vector<uint8_t> q5 = block_of(22, at16(0, kOne), at32(2, 0x80000001u),
                                           at8(6, 0x03), at8(6 + 15, 0xF0));
  const std::vector<float> y5 = dequant(GgmlType::kQ5_0, q5);
  EXPECT_EQ(y5[0], 3.0f);
  EXPECT_EQ(y5[31], 15.0f);
  EXPECT_EQ(y5[16], -16.0f);
  EXPECT_EQ(y5[15], -16.0f);

  // Q5_1, d = 0.5, m = 1: all bits set, q = 31 -> 16.5; element 20 has its fifth
  // bit cleared (qh bit 20) and nibble 15 -> 8.5.
  std::vector<uint8_t> q51 = block_of(24, at16(0, kHalf), at16(2, kOne),
                                      at32(4, ~(1u << 20)));
  for (int j = 0; j < 16; ++j) q51[8 + j] = 0xFF;
  const std::vector<float> y51 = dequant(GgmlType::kQ5_1, q51);
  EXPECT_EQ(y51[0], 16.5f);
  EXPECT_EQ(y51[20], 8.5f);
  EXPECT_EQ(y51[4], 16.5f);  // byte 4's low nibble: element 4, not 20
}

TEST(QuantByHand, Q4_K) {
  // d = 1, dmin = 0.5. Scales: s[0] = 66 -> sc0 = 2 (and bit 6 -> sc4 bit 4);
  // s[4] = 4 -> mn0 = 4; s[8] = 0x53 -> sc4 = 3 | 16 = 19, mn4 = 5.
  const std::vector<uint8_t> b =
      block_of(144, at16(0, kOne), at16(2, kHalf), at8(4 + 0, 66), at8(4 + 4, 4),
               at8(4 + 8, 0x53), at8(16 + 0, 0x03), at8(16 + 64, 0x07));
  const std::vector<float> y = dequant(GgmlType::kQ4_K, b);
  EXPECT_EQ(y[0], 4.0f);      // 1 * 2 * 3 - 0.5 * 4
  EXPECT_EQ(y[1], -2.0f);     // q = 0
  EXPECT_EQ(y[32], 0.0f);     // sub-block 1 (high nibbles of chunk 0): sc = mn = 0
  EXPECT_EQ(y[128], 130.5f);  // chunk 2 low nibble, sub-block 4: 19 * 7 - 0.5 * 5
  EXPECT_EQ(y[129], -2.5f);
  EXPECT_EQ(y[255], 0.0f);
}

TEST(QuantByHand, Q5_K) {
  // d = 0.25, dmin = 1; sc0 = 4, mn0 = 1, sc2 = 1. qh[0] bit 0 (element 0) and
  // bit 2 (element 64, chunk 1's low nibbles).
  const std::vector<uint8_t> b =
      block_of(176, at16(0, kQuarter), at16(2, kOne), at8(4 + 0, 4), at8(4 + 4, 1),
               at8(4 + 2, 1), at8(16 + 0, 0x05), at8(48 + 0, 0x02));
  const std::vector<float> y = dequant(GgmlType::kQ5_K, b);
  EXPECT_EQ(y[0], 17.0f);  // 0.25 * 4 * (2 + 16) - 1 * 1
  EXPECT_EQ(y[1], -1.0f);  // 0.25 * 4 * 0 - 1
  EXPECT_EQ(y[64], 4.0f);  // 0.25 * 1 * (0 + 16)
  EXPECT_EQ(y[32], 0.0f);  // sub-block 1: sc = mn = 0
}

TEST(QuantByHand, Q6_K) {
  // d = 0.5 (the last field). Element 0: ql[0] low 5 | qh[0] bits 0-1 = 2 -> 37 - 32 = 5,
  // scale sc[0] = 3 -> 7.5. Element 32: ql[32] low 0 | qh[0] bits 2-3 = 0 -> -32,
  // sc[2] = -2 -> 32. Element 64: ql[0] high 0 | qh[0] bits 4-5 = 0 -> -32, sc[4] = -1
  // -> 16. Element 128: second half, sc[8] = 1 -> -16.
  const std::vector<uint8_t> b =
      block_of(210, at16(208, kHalf), at8(0, 0x05), at8(128, 0x02), at8(192 + 0, 3),
               at8(192 + 2, uint8_t(-2)), at8(192 + 4, uint8_t(-1)), at8(192 + 8, 1));
  const std::vector<float> y = dequant(GgmlType::kQ6_K, b);
  EXPECT_EQ(y[0], 7.5f);
  EXPECT_EQ(y[32], 32.0f);
  EXPECT_EQ(y[64], 16.0f);
  EXPECT_EQ(y[128], -16.0f);
}

TEST(QuantByHand, HalfAndBfloatConversions) {
  const std::vector<std::pair<uint16_t, float>> halves = {
      {0x3C00, 1.0f},          {0x0001, 0x1p-24f},          {0x03FF, 0x3FFp-24f},
      {0x7BFF, 65504.0f},      {0xFC00, -INFINITY},         {0x3555, 0.333251953125f},
      {0xC000, -2.0f},         {0x0400, 0x1p-14f}};
  for (auto [h, f] : halves) {
    EXPECT_EQ(f16_to_f32(h), f) << std::hex << h;
    EXPECT_EQ(f32_to_f16(f), h) << f;
  }
  EXPECT_EQ(bits_of(f16_to_f32(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);     // rounds up to infinity
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);     // halfway to the smallest subnormal: even
  EXPECT_EQ(f32_to_f16(0x1.01p-25f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1.002p0f), 0x3C00);   // halfway between 0x3C00 and 0x3C01: even
  EXPECT_EQ(f32_to_f16(0x1.003p0f), 0x3C01);   // above halfway
  EXPECT_EQ(f32_to_f16(0x1.006p0f), 0x3C02);   // halfway between 0x3C01 and 0x3C02: even

  const uint16_t bf[] = {0x3F80, 0xC040, 0x7F80, 0x0001};
  std::vector<float> y(4);
  dequantize(GgmlType::kBF16, bf, y.data(), 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -3.0f);
  EXPECT_EQ(y[2], INFINITY);
  EXPECT_EQ(bits_of(y[3]), 0x00010000u);
}

TEST(QuantErrors, BadCountOrTypeThrows) {
  std::vector<uint8_t> block(34, 0);
  std::vector<float> y(64);
  EXPECT_THROW(dequantize(GgmlType::kQ8_0, block.data(), y.data(), 16), Error);
  EXPECT_THROW(dequantize(GgmlType(4), block.data(), y.data(), 32), Error);
  EXPECT_FALSE(ggml_type_info(4));
  EXPECT_FALSE(ggml_type_info(31));
  EXPECT_STREQ(ggml_type_name(GgmlType::kQ6_K), "Q6_K");
}

}  // namespace
}  // namespace t2::backbone
