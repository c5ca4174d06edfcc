// The safetensors reader and writer: exact round trips, and one malformed file
// per validation rule, each rejected with a message naming the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "backbone/safetensors.h"
#include "t2/error.h"
#include "tests/backbone/svf_test_util.h"

namespace t2::backbone::safetensors {
namespace {

std::string temp(const std::string& name) { return test::svf_temp_dir("svf_st") + "/" + name; }

// A file from a header text and a data section, as raw bytes.
std::vector<char> raw_file(const std::string& header, size_t data_bytes) {
  std::vector<char> bytes(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((n >> (8 * i)) & 0xff);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

// Expects File::open to throw an error containing `needle`.
void expect_rejected(const std::vector<char>& bytes, const std::string& needle) {
  const std::string path = temp("bad.safetensors");
  test::write_bytes(path, bytes);
  try {
    File::open(path);
    ADD_FAILURE() << "accepted a file that should fail with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

TEST(Safetensors, RoundTripIsExact) {
  const std::vector<float> a = {1.0f,   -0.0f, std::numeric_limits<float>::max(),
                                1e-40f, 0.1f,  -3.5f};
  const std::vector<float> b = {42.0f};
  const std::vector<float> empty;
  const std::vector<TensorOut> tensors = {
      {"a", {2, 3}, a}, {"b.scalar", {}, b}, {"empty", {0, 4}, empty}};
  const Metadata meta = {{"k", "v"}, {"json", "{\"x\": [1, 2]}"}};
  const std::string path = temp("rt.safetensors");
  write(path, tensors, meta);

  const File f = File::open(path);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorView& ta = f.tensor("a");
  EXPECT_EQ(ta.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ta.f32().data(), a.data(), a.size() * 4), 0);
  EXPECT_EQ(f.tensor("b.scalar").to_f32(), b);
  EXPECT_EQ(f.tensor("empty").numel(), 0);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_THROW(f.tensor("missing"), Error);
  EXPECT_EQ(data_sha256(tensors), sha256_hex(f.data()));
  // The data section starts 8-byte aligned (header padded), so views are aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data().data()) % 8, 0u);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const std::vector<float> v = {1, 2, 3};
  const std::vector<TensorOut> wrong_count = {{"a", {2, 2}, v}};
  EXPECT_THROW(write(temp("x.safetensors"), wrong_count, {}), Error);
  const std::vector<TensorOut> repeated = {{"a", {3}, v}, {"a", {3}, v}};
  EXPECT_THROW(write(temp("x.safetensors"), repeated, {}), Error);
  EXPECT_THROW(write(temp("no/such/dir/x.safetensors"), std::vector<TensorOut>{}, {}), Error);
}

TEST(Safetensors, AtomicWriteLeavesNoTempFiles) {
  const std::string dir = test::svf_temp_dir("svf_st_atomic");
  const std::vector<float> v = {1, 2};
  const std::vector<TensorOut> t = {{"a", {2}, v}};
  write(dir + "/f.safetensors", t, {});
  write(dir + "/f.safetensors", t, {{"second", "yes"}});  // replaces
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_EQ(*File::open(dir + "/f.safetensors").find_metadata("second"), "yes");
}

TEST(Safetensors, RejectsMalformedFiles) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  {
    auto f = raw_file(ok, 8);
    test::write_bytes(temp("ok.safetensors"), f);
    EXPECT_NO_THROW(File::open(temp("ok.safetensors")));
  }
  expect_rejected({'\x01', '\x02'}, "shorter than the 8-byte header");
  expect_rejected(raw_file(ok, 4), "outside the data section");  // truncated data
  expect_rejected(raw_file(ok, 12), "truncated or trailing");
  {
    auto f = raw_file(ok, 8);
    f.resize(20);  // header cut short
    expect_rejected(f, "runs past the end");
  }
  {
    auto f = raw_file(ok, 8);
    f[5] = 0x7f;  // absurd header length
    expect_rejected(f, "100 MB limit");
  }
  expect_rejected(raw_file(R"([1, 2])", 0), "does not start with");
  expect_rejected(raw_file(R"({"a": )", 0), "not valid JSON");
  expect_rejected(raw_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
                  "unknown dtype 'F33'");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                  "span 8 bytes");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                  "not a non-negative integer");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                  "outside the data section");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                  "data_offsets");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8),
                  "unknown field 'x'");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                  "overlaps");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                  "unreferenced bytes");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                           8),
                  "key 'a' twice");
  expect_rejected(raw_file(R"({"__metadata__":{"k":1}})", 0), "is not a string");
  expect_rejected(raw_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],)"
                           R"("data_offsets":[0,8]}})",
                           8),
                  "too large");
}

TEST(Safetensors, ReadsOtherDtypesButOnlyConvertsF32) {
  const std::string h = R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                        R"("h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}})";
  test::write_bytes(temp("mixed.safetensors"), raw_file(h, 12));
  const File f = File::open(temp("mixed.safetensors"));
  EXPECT_EQ(f.tensor("i").dtype, Dtype::kI64);
  EXPECT_EQ(f.tensor("h").numel(), 2);
  EXPECT_THROW(f.tensor("h").to_f32(), Error);
}

}  // namespace
}  // namespace t2::backbone::safetensors
