// Expert files on a tiny model: exact round trip, the initialization of the
// method, files Python's safetensors reads back bit for bit, and one bad file per
// check (another model, another set, wrong shapes, NaN, truncated), each
// rejected with a clear message and without touching what was there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backbone/expert.h"
#include "backbone/safetensors.h"
#include "backbone/svf.h"
#include "t2/error.h"
#include "tests/backbone/svf_test_util.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

constexpr const char* kPython = T2_PYTHON;  // scripts/setup.sh makes it

struct Tiny {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Svf> mlp, all;
};

const Tiny& tiny(uint64_t seed) {
  static std::map<uint64_t, Tiny> models;
  auto it = models.find(seed);
  if (it != models.end()) return it->second;
  test::TinyLlamaSpec spec;
  spec.seed = seed;
  const std::string path =
      test::svf_temp_dir("svf_expert") + "/tiny" + std::to_string(seed) + ".gguf";
  test::write_tiny_llama(path, spec);
  Tiny t;
  t.model = Model::load(path);
  t.mlp = Svf::open(*t.model, MatrixSet::kMlp, "");
  t.all = Svf::open(*t.model, MatrixSet::kAll, "");
  return models[seed] = t;
}

std::string temp(const std::string& name) { return test::svf_temp_dir("svf_expert") + "/" + name; }

Expert sample_expert(const Svf& svf) {
  Expert e = expert_init(svf, "arith", "gsm8k", 7);
  e.training = {{"lr", 2e-3}, {"steps", 40}, {"lambda", 0.1}};
  e.validation_accuracy = 0.3125;
  e.p[0] = -0.0f;
  e.p[1] = 1e-40f;
  e.p[2] = 12345.678f;
  return e;
}

// Expects expert_load to throw a message containing every needle.
void expect_load_error(const std::string& path, const Svf& svf,
                       std::initializer_list<const char*> needles) {
  try {
    expert_load(path, svf);
    ADD_FAILURE() << path << " was accepted";
  } catch (const Error& e) {
    std::printf("rejected as expected: %s\n", e.what());
    for (const char* n : needles) {
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
    }
  }
}

// Writes an expert-shaped file by hand (metadata of `like`, tensors as given).
void write_raw(
    const std::string& path, const Svf& svf, const Expert& like,
    const std::function<void(int slot, std::vector<int64_t>&, std::vector<float>&)>& edit) {
  const std::string good = path + ".good";
  expert_save(good, like, svf);
  const auto f = safetensors::File::open(good);
  std::vector<std::vector<float>> values;
  std::vector<std::vector<int64_t>> shapes;
  for (int s = 0; s < svf.n_slots(); ++s) {
    const auto& t =
        f.tensor(fmt::format("blk.{}.{}", svf.layer_of(s), matrix_kind_name(svf.kind_of(s))));
    values.push_back(t.to_f32());
    shapes.push_back(t.shape);
    edit(s, shapes.back(), values.back());
  }
  std::vector<safetensors::TensorOut> out;
  for (int s = 0; s < svf.n_slots(); ++s) {
    out.push_back({fmt::format("blk.{}.{}", svf.layer_of(s), matrix_kind_name(svf.kind_of(s))),
                   shapes[size_t(s)], values[size_t(s)]});
  }
  safetensors::write(path, out, f.metadata());
}

TEST(Expert, RoundTripIsExact) {
  const Svf& svf = *tiny(1).all;
  const Expert e = sample_expert(svf);
  const std::string path = temp("arith.safetensors");
  expert_save(path, e, svf);
  const Expert r = expert_load(path, svf);
  EXPECT_EQ(r.name, e.name);
  EXPECT_EQ(r.task, e.task);
  EXPECT_EQ(r.base_model_sha256, svf.model_sha256());
  EXPECT_EQ(r.set, MatrixSet::kAll);
  EXPECT_EQ(r.parametrization, "sigmoid");
  EXPECT_EQ(r.training, e.training);
  EXPECT_EQ(r.validation_accuracy, e.validation_accuracy);
  EXPECT_EQ(r.created, e.created);
  ASSERT_EQ(r.p.size(), e.p.size());
  EXPECT_EQ(std::memcmp(r.p.data(), e.p.data(), e.p.size() * 4), 0);
  EXPECT_TRUE(std::signbit(r.p[0]));
}

TEST(Expert, InitIsTheReferenceInitialization) {
  const Svf& svf = *tiny(1).all;
  const Expert e = expert_init(svf, "x", "t", 3);
  ASSERT_EQ(int64_t(e.p.size()), svf.total_rank());
  double mean = 0, sq = 0;
  for (float v : e.p) mean += v;
  mean /= double(e.p.size());
  for (float v : e.p) sq += (v - mean) * (v - mean);
  const double sd = std::sqrt(sq / double(e.p.size()));
  std::printf("p = 0.1 + 0.01 N(0,1): mean %.4f sd %.4f over %zu values; z ~ %.4f\n", mean, sd,
              e.p.size(), e.z()[0]);
  EXPECT_NEAR(mean, 0.1, 0.002);
  EXPECT_NEAR(sd, 0.01, 0.002);
  EXPECT_NEAR(e.z()[0], 1.0 / (1.0 + std::exp(-e.p[0])), 1e-7);
  EXPECT_EQ(expert_init(svf, "x", "t", 3).p, e.p);  // seeded
}

TEST(Expert, BadFilesGiveClearErrors) {
  const Svf& svf = *tiny(1).all;
  const Expert e = sample_expert(svf);
  const std::string good = temp("good.safetensors");
  expert_save(good, e, svf);

  // Another base model (same shapes, other weights).
  expect_load_error(good, *tiny(2).all, {"trained on base model", "retrain"});
  // Another matrix set.
  expect_load_error(good, *tiny(1).mlp, {"'all' matrices", "--matrices all"});
  // Wrong shape of one slot.
  write_raw(temp("shape.safetensors"), svf, e, [](int slot, auto& shape, auto& v) {
    if (slot == 3) {
      shape[0] -= 1;
      v.pop_back();
    }
  });
  expect_load_error(temp("shape.safetensors"), svf, {"blk.0.attn_output", "expected F32 ["});
  // NaN and infinity.
  write_raw(temp("nan.safetensors"), svf, e, [](int slot, auto&, auto& v) {
    if (slot == 5) v[2] = std::nanf("");
  });
  expect_load_error(temp("nan.safetensors"), svf, {"blk.0.ffn_up", "value 2 is nan"});
  write_raw(temp("inf.safetensors"), svf, e, [](int slot, auto&, auto& v) {
    if (slot == 0) v[0] = INFINITY;
  });
  expect_load_error(temp("inf.safetensors"), svf, {"inf"});
  // Truncated: every cut point is caught by the reader, never a partial expert.
  const auto bytes = test::read_bytes(good);
  for (size_t cut : {size_t(0), size_t(7), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    test::write_bytes(temp("cut.safetensors"), {bytes.begin(), bytes.begin() + long(cut)});
    EXPECT_THROW(expert_load(temp("cut.safetensors"), svf), Error) << "cut at " << cut;
  }
  test::write_bytes(temp("cut.safetensors"), {bytes.begin(), bytes.end() - 4});
  expect_load_error(temp("cut.safetensors"), svf, {"truncated"});
  // Not an expert at all: an SVF-like file without the metadata.
  const std::vector<float> v = {1.0f};
  const std::vector<safetensors::TensorOut> one = {{"x", {1}, v}};
  safetensors::write(temp("other.safetensors"), one, {{"format", "t2-svf-cache"}});
  expect_load_error(temp("other.safetensors"), svf, {"format 't2-svf-cache'"});
  expect_load_error(temp("missing.safetensors"), svf, {"cannot open"});
}

TEST(Expert, FailedSaveChangesNothing) {
  const Svf& svf = *tiny(1).all;
  const Expert e = sample_expert(svf);
  const std::string path = temp("keep.safetensors");
  expert_save(path, e, svf);
  const auto before = test::read_bytes(path);

  Expert bad = e;
  bad.p[9] = std::nanf("");
  EXPECT_THROW(expert_save(path, bad, svf), Error);
  bad = e;
  bad.p.pop_back();
  EXPECT_THROW(expert_save(path, bad, svf), Error);
  bad = e;
  bad.base_model_sha256 = std::string(64, 'c');
  EXPECT_THROW(expert_save(path, bad, svf), Error);
  EXPECT_THROW(expert_save(path, e, *tiny(1).mlp), Error);  // set mismatch
  EXPECT_EQ(test::read_bytes(path), before);

  // Only the file itself is left in the folder: no temp files from any attempt.
  int others = 0;
  for (const auto& f :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    others += f.path().string().find("keep.safetensors.tmp") != std::string::npos;
  }
  EXPECT_EQ(others, 0);
}

TEST(Expert, PythonSafetensorsReadsOurFileExactly) {
  ASSERT_TRUE(std::filesystem::exists(kPython))
      << kPython << " is missing: scripts/setup.sh creates it (Python with safetensors)";
  const Svf& svf = *tiny(1).all;
  const Expert e = sample_expert(svf);
  const std::string path = temp("for_python.safetensors");
  expert_save(path, e, svf);

  const std::string cmd =
      std::string(kPython) + " " + T2_SOURCE_DIR + "/tests/reference/svf_expert_dump.py " + path;
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << out;
  const auto doc = nlohmann::json::parse(out);

  EXPECT_EQ(doc["metadata"]["base_model_sha256"], svf.model_sha256());
  EXPECT_EQ(doc["metadata"]["name"], "arith");
  EXPECT_EQ(nlohmann::json::parse(doc["metadata"]["training"].get<std::string>()), e.training);
  ASSERT_EQ(int(doc["tensors"].size()), svf.n_slots());
  int64_t mismatches = 0;
  for (int s = 0; s < svf.n_slots(); ++s) {
    const auto& t =
        doc["tensors"][fmt::format("blk.{}.{}", svf.layer_of(s), matrix_kind_name(svf.kind_of(s)))];
    EXPECT_EQ(t["dtype"], "float32");
    EXPECT_EQ(t["shape"], nlohmann::json::array({svf.factors(s).rank}));
    for (int j = 0; j < svf.factors(s).rank; ++j) {
      const float py = float(t["values"][size_t(j)].get<double>());
      const float ours = e.p[size_t(svf.offset(s) + j)];
      mismatches += std::memcmp(&py, &ours, 4) != 0;
    }
  }
  std::printf("Python read %d tensors, %lld values differ bitwise\n", svf.n_slots(),
              (long long)mismatches);
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace t2::backbone
