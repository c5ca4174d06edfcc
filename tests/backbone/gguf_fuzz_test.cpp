// Seeded mutation fuzzing of the GGUF reader, built with ASan + UBSan (see
// CMakeLists.txt): every mutant of a tiny written file or of the real model's
// header must parse or throw t2::Error, and a parsed file must be consistent
// (tensor data inside the image, dequantizable). A crash, sanitizer report or
// other exception fails the run; the failing input is saved for replay.
//
// T2_FUZZ_ITERATIONS sets the tiny-file iterations (the model header, ~160x
// dearer to parse, gets 1/160 of them), T2_FUZZ_SEED the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "backbone/gguf.h"
#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

#if defined(__SANITIZE_ADDRESS__)
#define T2_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T2_FUZZ_ASAN 1
#endif
#endif
#ifdef T2_FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace t2::backbone {
namespace {

using Bytes = std::vector<std::byte>;

std::string failure_path() { return testing::TempDir() + "gguf_fuzz_failure.bin"; }

// The input being parsed, saved by the sanitizer's death callback: a sanitizer
// report ends the process before the test can save it.
const Bytes* g_current_input = nullptr;

void save_current_input() {
  if (!g_current_input) return;
  test::write_file(failure_path(), *g_current_input);
  std::fprintf(stderr, "failing input saved to %s\n", failure_path().c_str());
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

// Parses one image. Returns true when it parsed; t2::Error is the only way to
// refuse it. A parsed file is probed the way a loader would use it.
bool parse_and_probe(const Bytes& image) {
  try {
    GgufFile f(image, "fuzz.gguf");
    const std::byte* begin = image.data();
    const std::byte* end = begin + image.size();
    for (const auto& [key, value] : f.metadata()) {
      try {  // typed getters on whatever each key holds
        if (value.type == GgufValueType::kArray) {
          f.get_int_array(key);
          f.get_string_array(key);
        } else {
          f.get_int(key);
          f.get_float(key);
          f.get_string(key);
        }
      } catch (const Error&) {
      }
    }
    for (const TensorInfo& t : f.tensors()) {
      const auto info = ggml_type_info(uint32_t(t.type));
      if (!info) throw std::logic_error("parsed a tensor of an unknown type");
      const auto blocks = uint64_t(t.n_elements() / info->block_elements);
      const auto block_bytes = uint64_t(info->block_bytes);
      if (t.data < begin || t.n_bytes > uint64_t(end - t.data) ||
          t.n_bytes % block_bytes != 0 || t.n_bytes / block_bytes != blocks) {
        ADD_FAILURE() << "tensor '" << t.name << "' parsed inconsistent with the image";
        throw std::logic_error("inconsistent tensor");
      }
      if (t.n_elements() <= (1 << 20)) f.dequantize(t);
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // A position, most often inside `hot` (the header and tables), else anywhere.
  size_t position(const Bytes& b, size_t hot_begin, size_t hot_end) {
    if (b.empty()) return 0;
    hot_end = std::min(hot_end, b.size());
    if (hot_begin < hot_end && below(4) != 0) return hot_begin + below(hot_end - hot_begin);
    return below(b.size());
  }

  void mutate(Bytes& b, size_t hot_begin, size_t hot_end) {
    static constexpr uint64_t kInteresting[] = {
        0, 1, 2, 4, 12, 13, 31, 32, 33, 64, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff,
        0x7fffffff, 0x80000000, 0xffffffff, 1ull << 32, 1ull << 40, 1ull << 62,
        0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff};
    const size_t at = position(b, hot_begin, hot_end);
    switch (below(8)) {
      case 0:  // bit flips
        for (uint64_t i = 0, n = 1 + below(4); i < n && !b.empty(); ++i) {
          b[position(b, hot_begin, hot_end)] ^= std::byte(1u << below(8));
        }
        break;
      case 1:  // one byte set to an edge value
        if (at < b.size()) b[at] = std::byte(uint8_t(kInteresting[below(15)]));
        break;
      case 2:
      case 3: {  // a u32 or u64 field set to an edge value (or the image's size)
        const size_t width = below(2) ? 4 : 8;
        uint64_t v = kInteresting[below(std::size(kInteresting))];
        if (below(4) == 0) v = uint64_t(1) << below(64);
        if (below(8) == 0) v = b.size() - below(64);  // near the image's size
        if (below(4) == 0) v += below(3) - 1;
        if (at + width <= b.size()) std::memcpy(b.data() + at, &v, width);
        break;
      }
      case 4:  // truncation
        b.resize(at);
        break;
      case 5: {  // chunk duplication
        const size_t len = std::min<size_t>(1 + below(64), b.size() - std::min(at, b.size()));
        const Bytes chunk(b.begin() + ptrdiff_t(at), b.begin() + ptrdiff_t(at + len));
        const size_t to = position(b, hot_begin, hot_end);
        b.insert(b.begin() + ptrdiff_t(std::min(to, b.size())), chunk.begin(), chunk.end());
        break;
      }
      case 6: {  // chunk deletion
        const size_t len = std::min<size_t>(1 + below(64), b.size() - std::min(at, b.size()));
        b.erase(b.begin() + ptrdiff_t(at), b.begin() + ptrdiff_t(at + len));
        break;
      }
      default:  // random bytes
        for (uint64_t i = 0, n = 1 + below(8); i < n && at + i < b.size(); ++i) {
          b[at + i] = std::byte(uint8_t(rng_()));
        }
        break;
    }
  }

 private:
  std::mt19937_64 rng_;
};

struct Seed {
  std::string name;
  Bytes bytes;
  size_t hot_begin = 0, hot_end = 0;  // where mutations concentrate
};

struct FuzzStats {
  uint64_t iterations = 0, parsed = 0;
  double seconds = 0.0;
};

// Mutates each seed in turn; stops at the first failure, saving its input.
FuzzStats fuzz(const std::vector<Seed>& seeds, uint64_t iterations, uint64_t seed) {
#ifdef T2_FUZZ_ASAN
  __sanitizer_set_death_callback(save_current_input);
#endif
  Mutator m(seed);
  FuzzStats stats;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    const Seed& s = seeds[i % seeds.size()];
    Bytes image = s.bytes;
    for (uint64_t k = 0, n = 1 + m.below(4); k < n; ++k) m.mutate(image, s.hot_begin, s.hot_end);
    bool ok = false;
    g_current_input = &image;
    try {
      ok = parse_and_probe(image);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << i << " (seed " << seed << ", " << s.name
                    << "): threw a non-t2 exception: " << e.what();
    }
    if (testing::Test::HasFailure()) {
      save_current_input();
      g_current_input = nullptr;
      break;
    }
    g_current_input = nullptr;
    stats.parsed += ok;
    ++stats.iterations;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

void report(const char* what, const FuzzStats& s, uint64_t seed) {
  std::printf("  %-12s seed %llu: %llu iterations in %.1f s (%.0f/s), %llu parsed, %llu "
              "refused with t2::Error\n",
              what, static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(s.iterations), s.seconds,
              double(s.iterations) / std::max(s.seconds, 1e-9),
              static_cast<unsigned long long>(s.parsed),
              static_cast<unsigned long long>(s.iterations - s.parsed));
}

Seed seed_of(std::string name, const test::GgufWriter& w) {
  test::GgufLayout layout;
  Bytes bytes = w.bytes(&layout);
  return {std::move(name), std::move(bytes), 0, size_t(layout.data_start)};
}

// Every metadata type and every tensor type, random blocks, alignment 64.
Seed zoo_seed() {
  using namespace test;
  GgufWriter w;
  w.set_alignment(64);
  w.add("u8", meta_u8(1));
  w.add("i8", meta_i8(-1));
  w.add("u16", meta_u16(2));
  w.add("i16", meta_i16(-2));
  w.add("u32", meta_u32(3));
  w.add("i32", meta_i32(-3));
  w.add("u64", meta_u64(4));
  w.add("i64", meta_i64(-4));
  w.add("f32", meta_f32(0.5f));
  w.add("f64", meta_f64(0.25));
  w.add("bool", meta_bool(true));
  w.add("str", meta_string("text"));
  w.add("strs", meta_string_array({"a", "bc", ""}));
  w.add("nested", meta_array(uint32_t(GgufValueType::kArray),
                             {meta_i32_array({1, 2}), meta_f32_array({3.0f})}));
  std::mt19937_64 rng(5);
  for (uint32_t id : {0u, 1u, 2u, 3u, 6u, 7u, 8u, 12u, 13u, 14u, 30u}) {
    const auto info = *ggml_type_info(id);
    const uint64_t n = info.block_elements == 1 ? 64 : uint64_t(info.block_elements);
    Bytes data(size_t(n / uint64_t(info.block_elements) * uint64_t(info.block_bytes)));
    for (std::byte& b : data) b = std::byte(uint8_t(rng()));
    w.add_tensor(std::string("t.") + info.name, {n, 1}, id, std::move(data));
  }
  return seed_of("zoo", w);
}

std::vector<Seed> tiny_seeds() {
  std::vector<Seed> seeds = {zoo_seed()};
  for (GgmlType type : {GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kQ4_1}) {
    test::TinyLlamaSpec spec;
    spec.n_layer = 1;
    spec.n_embd = 32;
    spec.n_head = 2;
    spec.n_head_kv = 1;
    spec.n_ff = 32;
    spec.matrix_type = spec.embd_type = type;
    spec.tied_output = type != GgmlType::kQ8_0;
    seeds.push_back(seed_of(std::string("tiny ") + ggml_type_name(type),
                            test::tiny_llama_writer(spec)));
  }
  return seeds;
}

// The unmutated seeds must parse, or the fuzzing explores only error paths.
TEST(GgufFuzz, SeedsParse) {
  for (const Seed& s : tiny_seeds()) EXPECT_TRUE(parse_and_probe(s.bytes)) << s.name;
}

TEST(GgufFuzz, TinyFiles) {
  const uint64_t seed = env_u64("T2_FUZZ_SEED", 20240601);
  const uint64_t iterations = env_u64("T2_FUZZ_ITERATIONS", 160000);
  const FuzzStats s = fuzz(tiny_seeds(), iterations, seed);
  report("tiny files", s, seed);
  EXPECT_GT(s.parsed, 0u);
}

// The first 2 MB of the real model: the whole header and tensor table (the
// data section starts near 1.8 MB), so the pristine image is refused only for
// tensor data past its end. Mutations concentrate on the first 4 KB and on the
// tensor table, where the structure is; the vocabulary arrays in between are
// bulk strings.
TEST(GgufFuzz, ModelHeader) {
  std::ifstream in(T2_MODEL_PATH, std::ios::binary);
  ASSERT_TRUE(in) << "no model at " << T2_MODEL_PATH << " (scripts/fetch-model.sh)";
  Bytes head(2u << 20);
  in.read(reinterpret_cast<char*>(head.data()), std::streamsize(head.size()));
  head.resize(size_t(in.gcount()));

  // The tensor table begins at the first tensor name, "token_embd.weight" in
  // llama.cpp's order; failing that, fuzz the tail.
  const std::string first = "token_embd.weight";
  const auto it = std::search(head.begin(), head.end(), first.begin(), first.end(),
                              [](std::byte a, char b) { return a == std::byte(b); });
  const size_t table = it == head.end() ? head.size() - (64u << 10) : size_t(it - head.begin()) - 8;
  std::vector<Seed> seeds = {{"model head", head, 0, 4096},
                             {"model table", head, table, head.size()}};

  const uint64_t seed = env_u64("T2_FUZZ_SEED", 20240601) + 1;
  const uint64_t iterations = env_u64("T2_FUZZ_ITERATIONS", 160000) / 160;
  const FuzzStats s = fuzz(seeds, iterations, seed);
  report("model header", s, seed);
}


}  // namespace
}  // namespace t2::backbone
