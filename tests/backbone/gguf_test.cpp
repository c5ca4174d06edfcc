// GGUF reader unit tests: files written by tiny_gguf.h read back field by field,
// typed getters, alignment, and every malformation giving a t2::Error that names
// the file and the problem. Ends with Model::load on tiny, broken models.
#include "backbone/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "backbone/model.h"
#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

using test::GgufWriter;
using testing::HasSubstr;
using Bytes = std::vector<std::byte>;

constexpr const char* kLabel = "crafted.gguf";

std::string temp_path(const std::string& name) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::path(testing::TempDir()) /
                   ("t2_gguf_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / (std::string(info->name()) + "_" + name)).string();
}

template <typename T>
void patch(Bytes& bytes, uint64_t at, T value) {
  ASSERT_LE(at + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// The message of the t2::Error that parsing `bytes` throws ("" if none).
std::string parse_error(const Bytes& bytes) {
  try {
    GgufFile f(bytes, kLabel);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const Bytes& bytes, const std::string& problem) {
  const std::string message = parse_error(bytes);
  ASSERT_FALSE(message.empty()) << "parsed without error; expected: " << problem;
  EXPECT_THAT(message, HasSubstr(kLabel));
  EXPECT_THAT(message, HasSubstr(problem));
}

std::vector<float> iota(size_t n, float scale = 0.25f) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = scale * float(int(i % 37) - 18);
  return x;
}

// A small valid file: three metadata entries, an F32 matrix and a Q8_0 vector.
GgufWriter small_writer() {
  GgufWriter w;
  w.add("general.architecture", test::meta_string("llama"));
  w.add("test.count", test::meta_u32(7));
  w.add("test.names", test::meta_string_array({"a", "bc"}));
  w.add_f32("matrix", {4, 3}, iota(12));
  w.add_tensor("vector", {64}, GgmlType::kQ8_0, test::quantize(GgmlType::kQ8_0, iota(64)));
  return w;
}

// ---- reading back -------------------------------------------------------------

TEST(GgufReader, MetadataOfEveryTypeRoundTrips) {
  using namespace test;
  GgufWriter w;
  w.add("u8", meta_u8(255));
  w.add("i8", meta_i8(-128));
  w.add("u16", meta_u16(65535));
  w.add("i16", meta_i16(-32768));
  w.add("u32", meta_u32(0xffffffffu));
  w.add("i32", meta_i32(std::numeric_limits<int32_t>::min()));
  w.add("u64", meta_u64(std::numeric_limits<uint64_t>::max()));
  w.add("i64", meta_i64(std::numeric_limits<int64_t>::min()));
  w.add("f32", meta_f32(-1.5f));
  w.add("f64", meta_f64(3.141592653589793));
  w.add("true", meta_bool(true));
  w.add("false", meta_bool(false));
  w.add("utf8", meta_string("h\xC3\xA9llo \xE2\x9C\x93"));
  w.add("empty", meta_string(""));
  w.add("strings", meta_string_array({"x", "", "yz"}));
  w.add("i32s", meta_i32_array({-1, 0, 2147483647}));
  w.add("f32s", meta_f32_array({0.5f, -0.25f}));
  w.add("no_f64s", meta_array(uint32_t(GgufValueType::kF64), {}));
  w.add("nested", meta_array(uint32_t(GgufValueType::kArray),
                             {meta_i32_array({1, 2}), meta_i32_array({3})}));
  w.add("u16s", meta_array(uint32_t(GgufValueType::kU16), {meta_u16(1), meta_u16(65535)}));
  const Bytes bytes = w.bytes();
  GgufFile f(bytes, kLabel);

  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), w.metadata.size());
  EXPECT_TRUE(f.tensors().empty());
  auto type_of = [&](const char* key) { return f.find(key)->type; };
  EXPECT_EQ(type_of("u8"), GgufValueType::kU8);
  EXPECT_EQ(type_of("i16"), GgufValueType::kI16);
  EXPECT_EQ(type_of("f64"), GgufValueType::kF64);
  EXPECT_EQ(type_of("nested"), GgufValueType::kArray);
  EXPECT_EQ(f.get_uint("u8"), 255u);
  EXPECT_EQ(f.get_int("i8"), -128);
  EXPECT_EQ(f.get_uint("u16"), 65535u);
  EXPECT_EQ(f.get_int("i16"), -32768);
  EXPECT_EQ(f.get_uint("u32"), 0xffffffffu);
  EXPECT_EQ(f.get_int("i32"), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f.get_uint("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_float("f32"), -1.5);
  EXPECT_EQ(f.get_float("f64"), 3.141592653589793);
  EXPECT_TRUE(f.get_bool("true"));
  EXPECT_FALSE(f.get_bool("false"));
  EXPECT_EQ(f.get_string("utf8"), "h\xC3\xA9llo \xE2\x9C\x93");
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(f.get_int_array("i32s"), (std::vector<int64_t>{-1, 0, 2147483647}));
  EXPECT_EQ(f.get_int_array("u16s"), (std::vector<int64_t>{1, 65535}));

  const GgufValue& f32s = *f.find("f32s");
  EXPECT_EQ(f32s.element_type, GgufValueType::kF32);
  const auto& items = std::get<std::vector<GgufValue>>(f32s.value);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(std::get<double>(items[1].value), -0.25);

  const GgufValue& empty = *f.find("no_f64s");
  EXPECT_EQ(empty.element_type, GgufValueType::kF64);
  EXPECT_TRUE(std::get<std::vector<GgufValue>>(empty.value).empty());

  const auto& nested = std::get<std::vector<GgufValue>>(f.find("nested")->value);
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[0].element_type, GgufValueType::kI32);
  EXPECT_EQ(std::get<int64_t>(std::get<std::vector<GgufValue>>(nested[1].value)[0].value), 3);
}

TEST(GgufReader, TypedGettersConvertIntegerWidths) {
  using namespace test;
  GgufWriter w;
  w.add("u8", meta_u8(200));
  w.add("i8", meta_i8(100));
  w.add("i64", meta_i64(1ll << 40));
  w.add("u64_big", meta_u64(uint64_t(1) << 63));
  w.add("i32_neg", meta_i32(-5));
  const Bytes bytes = w.bytes();
  GgufFile f(bytes, kLabel);

  EXPECT_EQ(f.get_uint("u8"), 200u);
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_uint("i8"), 100u);  // signed but non-negative: fine as unsigned
  EXPECT_EQ(f.get_uint("i64"), uint64_t(1) << 40);
  EXPECT_EQ(f.get_float("u8"), 200.0);  // an integer is a number
  EXPECT_EQ(f.get_float("i32_neg"), -5.0);
  EXPECT_EQ(f.get_int("i32_neg"), -5);

  // Values that do not fit the asked-for type.
  EXPECT_THROW(f.get_uint("i32_neg"), Error);
  EXPECT_THROW(f.get_int("u64_big"), Error);
}

TEST(GgufReader, TypedGettersRejectWrongTypesNamingKeyAndFile) {
  using namespace test;
  GgufWriter w;
  w.add("name", meta_string("x"));
  w.add("count", meta_u32(3));
  w.add("ratio", meta_f32(0.5f));
  w.add("flag", meta_bool(true));
  w.add("floats", meta_f32_array({1.0f}));
  const Bytes bytes = w.bytes();
  GgufFile f(bytes, kLabel);

  auto message = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string m1 = message([&] { f.get_uint("name"); });
  EXPECT_THAT(m1, HasSubstr(kLabel));
  EXPECT_THAT(m1, HasSubstr("'name'"));
  EXPECT_THAT(m1, HasSubstr("string"));
  EXPECT_THAT(message([&] { f.get_string("count"); }),
              HasSubstr("'count' is u32, expected string"));
  EXPECT_THAT(message([&] { f.get_bool("count"); }), HasSubstr("expected bool"));
  EXPECT_THAT(message([&] { f.get_int("ratio"); }), HasSubstr("'ratio' is f32"));
  EXPECT_THAT(message([&] { f.get_float("flag"); }), HasSubstr("expected a number"));
  EXPECT_THAT(message([&] { f.get_string_array("floats"); }), HasSubstr("array of strings"));
  EXPECT_THAT(message([&] { f.get_int_array("floats"); }), HasSubstr("expected integers"));
  EXPECT_THAT(message([&] { f.get_int_array("count"); }), HasSubstr("integer array"));

  const std::string missing = message([&] { f.get_uint("absent.key"); });
  EXPECT_THAT(missing, HasSubstr(kLabel));
  EXPECT_THAT(missing, HasSubstr("'absent.key' is missing"));

  // Fallbacks apply only to absent keys, never to a wrong type.
  EXPECT_EQ(f.get_uint("absent", 9), 9u);
  EXPECT_EQ(f.get_float("absent", 2.5), 2.5);
  EXPECT_TRUE(f.get_bool("absent", true));
  EXPECT_EQ(f.get_string("absent", "dflt"), "dflt");
  EXPECT_EQ(f.get_uint("count", 9), 3u);
  EXPECT_THROW(f.get_uint("name", 9), Error);
  EXPECT_THROW(f.get_string("count", "dflt"), Error);
}

TEST(GgufReader, TensorTableAndData) {
  GgufWriter w = small_writer();
  std::vector<float> q4_values;
  w.add_tensor("q4", {32, 2}, GgmlType::kQ4_1,
               test::quantize(GgmlType::kQ4_1, iota(64, 0.1f), &q4_values));
  test::GgufLayout layout;
  const Bytes bytes = w.bytes(&layout);
  GgufFile f(bytes, kLabel);

  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo& m = f.tensor("matrix");
  EXPECT_EQ(m.dims, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(m.cols(), 4);
  EXPECT_EQ(m.rows(), 3);
  EXPECT_EQ(m.n_elements(), 12);
  EXPECT_EQ(m.type, GgmlType::kF32);
  EXPECT_EQ(m.n_bytes, 48u);
  EXPECT_EQ(m.offset, layout.tensor_at[0]);
  EXPECT_EQ(m.data, bytes.data() + layout.data_start + layout.tensor_at[0]);
  EXPECT_EQ(f.dequantize(m), iota(12));

  const TensorInfo& v = f.tensor("vector");
  EXPECT_EQ(v.type, GgmlType::kQ8_0);
  EXPECT_EQ(v.n_bytes, 2u * 34u);
  EXPECT_EQ(v.offset, 64u);  // 48 bytes of matrix, rounded up to 32
  EXPECT_EQ(v.rows(), 1);

  const TensorInfo& q4 = f.tensor("q4");
  EXPECT_EQ(q4.n_bytes, 2u * 20u);
  EXPECT_EQ(f.dequantize(q4), q4_values);

  EXPECT_EQ(f.find_tensor("absent"), nullptr);
  EXPECT_EQ(f.find_tensor("vector"), &v);
}

TEST(GgufReader, MissingTensorNamesTensorAndFile) {
  const Bytes bytes = small_writer().bytes();
  GgufFile f(bytes, kLabel);
  try {
    f.tensor("blk.0.attn_q.weight");
    FAIL() << "no error for a missing tensor";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(kLabel));
    EXPECT_THAT(e.what(), HasSubstr("'blk.0.attn_q.weight' is missing"));
  }
}

TEST(GgufReader, PathAndSpanConstructorsAgree) {
  const GgufWriter w = small_writer();
  const std::string path = temp_path("small.gguf");
  w.write(path);
  const Bytes bytes = w.bytes();
  GgufFile from_path(path);
  GgufFile from_span(bytes, kLabel);
  EXPECT_EQ(from_path.path(), path);
  EXPECT_EQ(from_span.path(), kLabel);
  EXPECT_EQ(from_path.file_size(), bytes.size());
  EXPECT_EQ(from_path.get_string_array("test.names"), from_span.get_string_array("test.names"));
  for (const TensorInfo& t : from_span.tensors()) {
    const TensorInfo& u = from_path.tensor(t.name);
    EXPECT_EQ(u.offset, t.offset);
    EXPECT_EQ(from_path.dequantize(u), from_span.dequantize(t));
  }
}

TEST(GgufReader, AcceptsVersion2) {
  GgufWriter w = small_writer();
  w.version = 2;
  const Bytes bytes = w.bytes();
  EXPECT_EQ(GgufFile(bytes, kLabel).version(), 2u);
}

// ---- alignment ----------------------------------------------------------------

TEST(GgufAlignment, DefaultIs32) {
  const Bytes bytes = small_writer().bytes();
  GgufFile f(bytes, kLabel);
  EXPECT_EQ(f.alignment(), 32u);
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ((t.data - bytes.data()) % 32, 0) << t.name;
  }
}

TEST(GgufAlignment, CustomAlignmentPlacesData) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(alignment);
    GgufWriter w = small_writer();
    w.set_alignment(alignment);
    test::GgufLayout layout;
    const Bytes bytes = w.bytes(&layout);
    GgufFile f(bytes, kLabel);
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(layout.data_start % alignment, 0u);
    for (size_t i = 0; i < f.tensors().size(); ++i) {
      const TensorInfo& t = f.tensors()[i];
      EXPECT_EQ(t.offset, layout.tensor_at[i]);
      EXPECT_EQ(t.data, bytes.data() + layout.data_start + layout.tensor_at[i]);
    }
    EXPECT_EQ(f.dequantize(f.tensor("matrix")), iota(12));
  }
}

TEST(GgufAlignment, BadAlignmentValueIsAnError) {
  for (uint32_t bad : {0u, 3u, 48u, 1u << 21}) {
    SCOPED_TRACE(bad);
    GgufWriter w = small_writer();
    w.add("general.alignment", test::meta_u32(bad));
    expect_error(w.bytes(), "general.alignment must be a power of two");
  }
  GgufWriter w = small_writer();
  w.add("general.alignment", test::meta_string("32"));
  expect_error(w.bytes(), "general.alignment");
}

TEST(GgufAlignment, OffsetsNotAlignedAreAnError) {
  GgufWriter w = small_writer();
  w.tensors[1].offset = 50;
  expect_error(w.bytes(), "tensor 'vector' offset 50 is not a multiple of the alignment 32");

  GgufWriter w64 = small_writer();
  w64.set_alignment(64);
  w64.tensors[1].offset = 96;  // aligned to 32, not to 64
  expect_error(w64.bytes(), "not a multiple of the alignment 64");
}

// ---- malformed files --------------------------------------------------------------

TEST(GgufMalformed, EmptyFile) {
  const std::string path = temp_path("empty.gguf");
  test::write_file(path, {});
  try {
    GgufFile f(path);
    FAIL() << "an empty file parsed";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("empty file"));
  }
  expect_error({}, "truncated");
}

TEST(GgufMalformed, UnreadablePaths) {
  try {
    GgufFile f(temp_path("does_not_exist.gguf"));
    FAIL() << "a missing file parsed";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("does_not_exist.gguf"));
    EXPECT_THAT(e.what(), HasSubstr("cannot open"));
  }
  EXPECT_THROW(GgufFile f(testing::TempDir()), Error);  // a directory
}

TEST(GgufMalformed, EveryTruncationFails) {
  test::GgufLayout layout;
  const Bytes full = small_writer().bytes(&layout);
  ASSERT_GT(layout.data_start, 100u);
  for (size_t n = 0; n < full.size(); ++n) {
    const Bytes prefix(full.begin(), full.begin() + ptrdiff_t(n));
    const std::string message = parse_error(prefix);
    ASSERT_FALSE(message.empty()) << "a " << n << "-byte prefix of " << full.size() << " parsed";
    EXPECT_THAT(message, HasSubstr(kLabel)) << n;
    if (n < layout.tensor_info_start) {
      EXPECT_THAT(message, testing::AnyOf(HasSubstr("truncated"), HasSubstr("exceeds the file"),
                                          HasSubstr("does not fit")))
          << n;
    } else if (n >= layout.data_start) {
      EXPECT_THAT(message, HasSubstr("lies outside")) << n;
    }
  }
}

TEST(GgufMalformed, WrongMagic) {
  Bytes bytes = small_writer().bytes();
  patch<uint32_t>(bytes, 0, 0x4c4d4747);  // "GGML"
  expect_error(bytes, "not a GGUF file: magic is 0x4c4d4747");
  patch<uint32_t>(bytes, 0, 0x47475546);  // "GGUF" byte-swapped
  expect_error(bytes, "not a GGUF file");
}

TEST(GgufMalformed, UnsupportedVersion) {
  for (uint32_t version : {0u, 1u, 4u, 0xffffffffu}) {
    GgufWriter w = small_writer();
    w.version = version;
    expect_error(w.bytes(), "GGUF version " + std::to_string(version) + " is not supported");
  }
}

TEST(GgufMalformed, UnknownValueType) {
  GgufWriter w = small_writer();
  w.add("weird", test::MetaValue{13, {std::byte{0}}});
  expect_error(w.bytes(), "metadata 'weird': unknown value type 13");

  GgufWriter a = small_writer();
  a.add("weird_array", test::meta_array(99, {}));
  expect_error(a.bytes(), "metadata 'weird_array': unknown array element type 99");
}

TEST(GgufMalformed, BoolByteOtherThanZeroOrOne) {
  GgufWriter w = small_writer();
  w.add("flag", test::MetaValue{uint32_t(GgufValueType::kBool), {std::byte{2}}});
  expect_error(w.bytes(), "metadata 'flag': bool byte is 2");
}

TEST(GgufMalformed, UnknownTensorType) {
  for (uint32_t type : {4u, 5u, 16u, 99u, 0xffffffffu}) {
    GgufWriter w = small_writer();
    w.tensors[0].type = type;
    expect_error(w.bytes(), "tensor 'matrix' has unknown or unsupported ggml type " +
                                std::to_string(type));
  }
}

TEST(GgufMalformed, DimsCountAndSizes) {
  GgufWriter zero = small_writer();
  zero.tensors[0].dims.clear();
  expect_error(zero.bytes(), "tensor 'matrix' has 0 dims, expected 1..4");

  GgufWriter five = small_writer();
  five.tensors[0].dims = {1, 1, 1, 2, 6};
  expect_error(five.bytes(), "tensor 'matrix' has 5 dims");

  GgufWriter zero_dim = small_writer();
  zero_dim.tensors[0].dims = {4, 0};
  expect_error(zero_dim.bytes(), "tensor 'matrix' dim 1 is 0, out of range");

  GgufWriter huge_ndims = small_writer();
  huge_ndims.tensors[0].n_dims = 0xffffffffu;
  expect_error(huge_ndims.bytes(), "has 4294967295 dims");

  GgufWriter partial_block = small_writer();
  partial_block.tensors[1].dims = {48};  // Q8_0 rows are whole blocks of 32
  expect_error(partial_block.bytes(), "not a multiple of the Q8_0 block size 32");
}

TEST(GgufMalformed, DataOutsideTheFile) {
  GgufWriter past_end = small_writer();
  past_end.tensors[1].offset = 1 << 20;
  expect_error(past_end.bytes(), "tensor 'vector' data (68 bytes at data offset 1048576) "
                                 "lies outside");

  GgufWriter too_big = small_writer();
  too_big.tensors[1].dims = {64, 2};  // twice the bytes that were written
  expect_error(too_big.bytes(), "lies outside");

  GgufWriter max_offset = small_writer();
  max_offset.tensors[0].offset = uint64_t(0) - 32;  // aligned, and wraps when added
  expect_error(max_offset.bytes(), "lies outside");
}

TEST(GgufMalformed, TensorBytesMustNotOverflow) {
  // 2^62 f32 elements are 2^64 bytes: a wrapped byte count would pass as 0.
  GgufWriter w = small_writer();
  w.tensors[0].dims = {uint64_t(1) << 40, uint64_t(1) << 22};
  expect_error(w.bytes(),
               "tensor 'matrix' of 4611686018427387904 F32 elements needs more bytes");
  GgufWriter q = small_writer();
  q.tensors[1].dims = {uint64_t(1) << 40, uint64_t(1) << 20};
  expect_error(q.bytes(), "tensor 'vector'");
}

TEST(GgufMalformed, DuplicateKeyOrTensor) {
  GgufWriter key = small_writer();
  key.add("test.count", test::meta_u32(8));
  expect_error(key.bytes(), "metadata key 'test.count' appears twice");

  GgufWriter tensor = small_writer();
  tensor.add_f32("matrix", {4}, iota(4));
  expect_error(tensor.bytes(), "tensor 'matrix' appears twice");
}

TEST(GgufMalformed, LongTensorNameOrDeepNesting) {
  GgufWriter name = small_writer();
  name.tensors[0].name = std::string(65, 'x');
  expect_error(name.bytes(), "tensor name of 65 bytes exceeds 64");

  test::MetaValue v = test::meta_i32_array({1});
  for (int depth = 0; depth < 4; ++depth) {
    v = test::meta_array(uint32_t(GgufValueType::kArray), {v});
  }
  GgufWriter deep = small_writer();
  deep.add("deep", v);
  expect_error(deep.bytes(), "metadata 'deep': arrays nested deeper than 4");
}

// Counts read from the file must be checked against the bytes left before any
// allocation: each case would otherwise reserve terabytes (bad_alloc, not Error).
TEST(GgufMalformed, HugeCountsFailBeforeAllocating) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  test::GgufLayout layout;
  const Bytes base = small_writer().bytes(&layout);

  for (uint64_t count : {kMax, uint64_t(1) << 62, uint64_t(1) << 32}) {
    SCOPED_TRACE(count);
    Bytes bytes = base;
    patch<uint64_t>(bytes, 8, count);  // tensor count
    expect_error(bytes, "tensor count");
    bytes = base;
    patch<uint64_t>(bytes, 16, count);  // metadata count
    expect_error(bytes, "metadata count");
    bytes = base;
    patch<uint64_t>(bytes, layout.metadata_start, count);  // first key's length
    expect_error(bytes, "truncated");
    bytes = base;
    patch<uint64_t>(bytes, layout.tensor_info_start, count);  // first tensor name's length
    expect_error(bytes, "tensor name");

    GgufWriter w = small_writer();
    test::MetaValue array = test::meta_string_array({"a"});
    std::memcpy(array.bytes.data() + 4, &count, 8);
    w.add("huge_array", array);
    expect_error(w.bytes(), "metadata 'huge_array': array of");

    GgufWriter s = small_writer();
    test::MetaValue str = test::meta_string("abc");
    std::memcpy(str.bytes.data(), &count, 8);
    s.add("huge_string", str);
    expect_error(s.bytes(), "truncated file: huge_string");
  }
}

// ---- Model::load on tiny models ----------------------------------------------------

TEST(ModelLoad, TinyLlamaLoadsConfigTokenizerAndWeights) {
  const std::string path = temp_path("tiny.gguf");
  test::TinyLlamaSpec spec;
  const test::TinyLlama tiny = test::write_tiny_llama(path, spec);
  const auto model = Model::load(path);

  const ModelConfig& c = model->config();
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_ff, 128);
  EXPECT_EQ(c.n_ctx, 256);
  EXPECT_EQ(c.n_vocab, test::kTinyVocab);
  EXPECT_FLOAT_EQ(c.rope_base, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(model->tied_output());

  const Tokenizer& tok = model->tokenizer();
  EXPECT_EQ(tok.vocab_size(), test::kTinyVocab);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.default_system_message(), test::kTinySystemMessage);
  // " the" -> Ġ t h e -> Ġt h e -> Ġt he -> Ġthe (the sixth merge: id 3 + 256 + 5).
  EXPECT_EQ(tok.encode(" the"), (std::vector<int32_t>{264}));
  EXPECT_EQ(tok.encode("<|im_start|>A"), (std::vector<int32_t>{1, 3 + 'A'}));

  EXPECT_EQ(model->token_embedding(), tiny["token_embd.weight"]);
  EXPECT_EQ(model->output_norm(), tiny["output_norm.weight"]);
  EXPECT_EQ(model->layer(1).ffn_norm, tiny["blk.1.ffn_norm.weight"]);
  const Linear& q = model->layer(0).q;
  EXPECT_EQ(q.out, 64);
  EXPECT_EQ(q.in, 64);
  EXPECT_EQ(std::vector<float>(q.w, q.w + q.size()), tiny["blk.0.attn_q.weight"]);
}

// Every weight type the writer can produce loads to exactly the values it wrote.
TEST(ModelLoad, EachWeightTypeLoadsWhatWasWritten) {
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                        GgmlType::kQ4_0, GgmlType::kQ4_1}) {
    SCOPED_TRACE(ggml_type_name(type));
    test::TinyLlamaSpec spec;
    spec.seed = 7;
    spec.n_layer = 1;
    spec.tied_output = false;
    spec.matrix_type = type;
    spec.embd_type = type;
    spec.tensor_type["blk.0.ffn_down.weight"] = GgmlType::kQ8_0;  // a mixed file
    const std::string path = temp_path(std::string(ggml_type_name(type)) + ".gguf");
    const test::TinyLlama tiny = test::write_tiny_llama(path, spec);
    const auto model = Model::load(path);

    EXPECT_FALSE(model->tied_output());
    EXPECT_EQ(model->gguf().tensor("blk.0.attn_v.weight").type, type);
    EXPECT_EQ(model->gguf().tensor("blk.0.ffn_down.weight").type, GgmlType::kQ8_0);
    double max_err = 0.0;
    for (int k = 0; k < kMatrixKinds; ++k) {
      const auto kind = MatrixKind(k);
      const Linear& lin = model->layer(0).matrix(kind);
      const auto& want = tiny["blk.0." + std::string(matrix_kind_name(kind)) + ".weight"];
      ASSERT_EQ(size_t(lin.size()), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        max_err = std::max(max_err, double(std::fabs(lin.w[i] - want[i])));
      }
    }
    const Linear& out = model->output();
    EXPECT_EQ(std::vector<float>(out.w, out.w + out.size()), tiny["output.weight"]);
    EXPECT_EQ(model->token_embedding(), tiny["token_embd.weight"]);
    std::printf("  %-5s layer matrices: max abs error %.3g\n", ggml_type_name(type), max_err);
    EXPECT_EQ(max_err, 0.0);
  }
}

std::string load_error(const test::TinyLlamaSpec& spec, const std::string& name) {
  const std::string path = temp_path(name);
  test::write_tiny_llama(path, spec);
  try {
    Model::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelLoad, WrongShapeNamesTensorAndShapes) {
  test::TinyLlamaSpec spec;
  spec.tensor_dims["blk.1.attn_k.weight"] = {64, 64};  // should be [64 x 32]
  const std::string message = load_error(spec, "wrong_shape.gguf");
  EXPECT_THAT(message, HasSubstr("wrong_shape.gguf"));
  EXPECT_THAT(message, HasSubstr("tensor 'blk.1.attn_k.weight' has dims [64 x 64], "
                                 "expected [64 x 32]"));

  test::TinyLlamaSpec vec;
  vec.tensor_dims["output_norm.weight"] = {64, 1};  // a matrix where a vector belongs
  EXPECT_THAT(load_error(vec, "norm_shape.gguf"), HasSubstr("'output_norm.weight' has dims"));
}

TEST(ModelLoad, MissingTensorNamesTensor) {
  for (const char* name : {"blk.0.ffn_up.weight", "output_norm.weight", "token_embd.weight"}) {
    test::TinyLlamaSpec spec;
    spec.omit.insert(name);
    const std::string message = load_error(spec, "missing.gguf");
    EXPECT_THAT(message, HasSubstr("missing.gguf"));
    EXPECT_THAT(message, HasSubstr("tensor '" + std::string(name) + "' is missing"));
  }
}

TEST(ModelLoad, MissingHyperparameterNamesKey) {
  GgufWriter w = test::tiny_llama_writer();
  std::erase_if(w.metadata, [](const auto& kv) { return kv.first == "llama.block_count"; });
  const std::string path = temp_path("no_layers.gguf");
  w.write(path);
  try {
    Model::load(path);
    FAIL() << "loaded without llama.block_count";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no_layers.gguf"));
    EXPECT_THAT(e.what(), HasSubstr("'llama.block_count' is missing"));
  }
}

}  // namespace
}  // namespace t2::backbone
