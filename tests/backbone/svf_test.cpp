// SVF on a tiny model (every matrix kind adapted): the SVD reconstructs W, the
// cache is reused when valid and rebuilt when corrupt, truncated or stale, and
// the three execution paths of SvfHook agree with a double-precision W' per row.
#include "backbone/svf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "backbone/forward.h"
#include "backbone/safetensors.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "tests/backbone/svf_test_util.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

const Model& tiny() {
  static const auto model = [] {
    test::TinyLlamaSpec spec;  // 2 layers, embd 64, heads 4/2, ff 128, f32 matrices
    spec.seed = 11;
    const std::string path = test::svf_temp_dir("svf_tiny") + "/tiny.gguf";
    test::write_tiny_llama(path, spec);
    return Model::load(path);
  }();
  return *model;
}

std::shared_ptr<const Svf> tiny_svf() {
  static const auto svf = Svf::open(tiny(), MatrixSet::kAll, test::svf_temp_dir("svf_tiny_cache"));
  return svf;
}

std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

Expert random_expert(const Svf& svf, const std::string& name, uint64_t seed) {
  Expert e = expert_init(svf, name, "test", seed);
  e.p = random_vector(e.p.size(), seed, -3.0f, 3.0f);  // far from uniform z
  return e;
}

// ---- the decomposition ---------------------------------------------------------

TEST(Svf, SlotTable) {
  const Svf& svf = *tiny_svf();
  ASSERT_EQ(svf.n_slots(), 2 * kMatrixKinds);
  int64_t offset = 0;
  for (int s = 0; s < svf.n_slots(); ++s) {
    EXPECT_EQ(svf.slot(svf.layer_of(s), svf.kind_of(s)), s);
    EXPECT_EQ(svf.offset(s), offset);
    const Linear& lin = tiny().layer(svf.layer_of(s)).matrix(svf.kind_of(s));
    EXPECT_EQ(svf.factors(s).rank, std::min(lin.out, lin.in));
    offset += svf.factors(s).rank;
  }
  EXPECT_EQ(svf.total_rank(), offset);
  EXPECT_EQ(svf.slot(2, MatrixKind::kQ), -1);
  const auto mlp = Svf::open(tiny(), MatrixSet::kMlp, "");
  EXPECT_EQ(mlp->n_slots(), 2 * 3);
  EXPECT_EQ(mlp->slot(0, MatrixKind::kQ), -1);
  EXPECT_EQ(mlp->kind_of(0), MatrixKind::kGate);
  EXPECT_EQ(matrix_kinds(MatrixSet::kAttention).size(), 4u);
  EXPECT_THROW(parse_matrix_set("mlps"), Error);
}

TEST(Svf, DecompositionReconstructsEveryMatrix) {
  const Svf& svf = *tiny_svf();
  double worst = 0.0, worst_orth = 0.0;
  for (int slot = 0; slot < svf.n_slots(); ++slot) {
    const SvdFactors& f = svf.factors(slot);
    const Linear& lin = tiny().layer(svf.layer_of(slot)).matrix(svf.kind_of(slot));
    double err = 0.0, wmax = 0.0;
    for (int o = 0; o < f.out; ++o) {
      for (int i = 0; i < f.in; ++i) {
        double w = 0.0;
        for (int j = 0; j < f.rank; ++j) {
          w += double(f.u[o * f.rank + j]) * f.s[j] * f.vt[int64_t(j) * f.in + i];
        }
        err = std::max(err, std::fabs(w - lin.w[int64_t(o) * f.in + i]));
        wmax = std::max(wmax, double(std::fabs(lin.w[int64_t(o) * f.in + i])));
      }
    }
    // Orthonormal columns of U.
    for (int a = 0; a < f.rank; ++a) {
      for (int b = 0; b < f.rank; ++b) {
        double d = 0.0;
        for (int o = 0; o < f.out; ++o) d += double(f.u[o * f.rank + a]) * f.u[o * f.rank + b];
        worst_orth = std::max(worst_orth, std::fabs(d - (a == b)));
      }
    }
    EXPECT_LT(err, 1e-5 * wmax) << "slot " << slot;
    for (int j = 1; j < f.rank; ++j) EXPECT_LE(f.s[j], f.s[j - 1]);
    worst = std::max(worst, err / wmax);
  }
  std::printf("SVD of %d matrices: max |U S V^T - W| / max |W| = %.3g, max |U^T U - I| = %.3g\n",
              svf.n_slots(), worst, worst_orth);
  EXPECT_LT(worst_orth, 1e-5);
}

TEST(Svf, BothThreadingsGiveTheSameFactors) {
  const auto a = Svf::build(tiny(), MatrixSet::kMlp, SvdThreading::kOverMatrices);
  const auto b = Svf::build(tiny(), MatrixSet::kMlp, SvdThreading::kInsideLapack);
  for (int s = 0; s < a->n_slots(); ++s) {
    const SvdFactors& fa = a->factors(s);
    const SvdFactors& fb = b->factors(s);
    for (int j = 0; j < fa.rank; ++j) EXPECT_NEAR(fa.s[j], fb.s[j], 1e-5 * fa.s[0]);
  }
}

// ---- the cache ------------------------------------------------------------------

std::string cache_file(const Svf& svf, const std::string& dir) {
  return dir + "/" + svf.model_sha256() + "/svf-all.safetensors";
}

void expect_same_factors(const Svf& a, const Svf& b) {
  ASSERT_EQ(a.n_slots(), b.n_slots());
  for (int s = 0; s < a.n_slots(); ++s) {
    const SvdFactors& fa = a.factors(s);
    const SvdFactors& fb = b.factors(s);
    ASSERT_EQ(fa.rank, fb.rank);
    EXPECT_EQ(std::memcmp(fa.u, fb.u, size_t(fa.out) * fa.rank * 4), 0);
    EXPECT_EQ(std::memcmp(fa.s, fb.s, size_t(fa.rank) * 4), 0);
    EXPECT_EQ(std::memcmp(fa.vt, fb.vt, size_t(fa.rank) * fa.in * 4), 0);
    EXPECT_EQ(fa.s_sum, fb.s_sum);
  }
}

TEST(SvfCache, SecondOpenMapsTheFile) {
  const std::string dir = test::svf_temp_dir("svf_cache_reuse");
  const auto first = Svf::open(tiny(), MatrixSet::kAll, dir);
  EXPECT_FALSE(first->loaded_from_cache());
  EXPECT_EQ(first->cache_path(), cache_file(*first, dir));
  const auto second = Svf::open(tiny(), MatrixSet::kAll, dir);
  EXPECT_TRUE(second->loaded_from_cache());
  expect_same_factors(*first, *second);

  // The metadata says what the data is; Python's safetensors reads the same header.
  const auto f = safetensors::File::open(second->cache_path());
  EXPECT_EQ(*f.find_metadata("model_sha256"), second->model_sha256());
  EXPECT_EQ(*f.find_metadata("matrix_set"), "all");
  EXPECT_EQ(*f.find_metadata("data_sha256"), safetensors::sha256_hex(f.data()));
}

// Damages the cache file in a way each check must catch; the next open rebuilds
// it (not from cache) and the one after that maps the rebuilt file.
void expect_rebuilt(const std::string& what,
                    const std::function<void(const std::string& path)>& damage) {
  const std::string dir = test::svf_temp_dir("svf_cache_" + what);
  const auto good = Svf::open(tiny(), MatrixSet::kAll, dir);
  const std::string path = good->cache_path();
  damage(path);
  const auto rebuilt = Svf::open(tiny(), MatrixSet::kAll, dir);
  EXPECT_FALSE(rebuilt->loaded_from_cache()) << what << ": damaged cache was used";
  expect_same_factors(*good, *rebuilt);
  const auto again = Svf::open(tiny(), MatrixSet::kAll, dir);
  EXPECT_TRUE(again->loaded_from_cache()) << what;
  expect_same_factors(*good, *again);
}

// Rewrites the cache with edited metadata and/or data (checksum kept consistent
// unless the edit is to the checksum itself).
void rewrite(const std::string& path, const std::function<void(safetensors::Metadata&)>& meta_edit,
             const std::function<void(std::vector<float>&)>& data_edit, bool fix_checksum) {
  const auto f = safetensors::File::open(path);
  std::vector<std::vector<float>> values;
  for (const auto& t : f.tensors()) values.push_back(t.to_f32());
  if (data_edit) data_edit(values[0]);
  std::vector<safetensors::TensorOut> out;
  for (size_t i = 0; i < values.size(); ++i) {
    out.push_back({f.tensors()[i].name, f.tensors()[i].shape, values[i]});
  }
  safetensors::Metadata meta = f.metadata();
  if (meta_edit) meta_edit(meta);
  if (fix_checksum) meta["data_sha256"] = safetensors::data_sha256(out);
  safetensors::write(path, out, meta);
}

TEST(SvfCache, CorruptTruncatedOrStaleCacheIsRebuilt) {
  expect_rebuilt("flipped_byte", [](const std::string& p) {
    auto b = test::read_bytes(p);
    b[b.size() - 3] ^= 0x10;
    test::replace_bytes(p, b);
  });
  expect_rebuilt("truncated", [](const std::string& p) {
    auto b = test::read_bytes(p);
    b.resize(b.size() / 2);
    test::replace_bytes(p, b);
  });
  expect_rebuilt("empty", [](const std::string& p) { test::replace_bytes(p, {}); });
  expect_rebuilt("other_model", [](const std::string& p) {
    rewrite(
        p, [](auto& m) { m["model_sha256"] = std::string(64, 'a'); }, nullptr, true);
  });
  expect_rebuilt("other_set", [](const std::string& p) {
    rewrite(
        p, [](auto& m) { m["matrix_set"] = "mlp"; }, nullptr, true);
  });
  expect_rebuilt("other_version", [](const std::string& p) {
    rewrite(
        p, [](auto& m) { m["format_version"] = "0"; }, nullptr, true);
  });
  expect_rebuilt("nan_with_valid_checksum", [](const std::string& p) {
    rewrite(
        p, nullptr, [](auto& v) { v[1] = std::nanf(""); }, true);
  });
  expect_rebuilt("edited_without_checksum", [](const std::string& p) {
    rewrite(
        p, nullptr, [](auto& v) { v[1] += 1.0f; }, false);
  });
  expect_rebuilt("missing_tensor", [](const std::string& p) {
    const auto f = safetensors::File::open(p);
    std::vector<std::vector<float>> values;
    std::vector<safetensors::TensorOut> out;
    for (size_t i = 1; i < f.tensors().size(); ++i) values.push_back(f.tensors()[i].to_f32());
    for (size_t i = 1; i < f.tensors().size(); ++i) {
      out.push_back({f.tensors()[i].name, f.tensors()[i].shape, values[i - 1]});
    }
    auto meta = f.metadata();
    meta["data_sha256"] = safetensors::data_sha256(out);
    safetensors::write(p, out, meta);
  });
}

TEST(SvfCache, ModelHashIsRememberedByPathSizeAndMtime) {
  const std::string dir = test::svf_temp_dir("svf_hash_memo");
  const std::string model = dir + "/m.bin";
  test::write_bytes(model, {'a', 'b', 'c'});
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(file_sha256(model), abc);
  EXPECT_EQ(file_sha256(model, dir), abc);

  // A planted entry for the same (path, size, mtime) is trusted: no rehash.
  const std::string memo = dir + "/model-sha256.json";
  auto text = test::read_bytes(memo);
  std::string s(text.begin(), text.end());
  s.replace(s.find(abc), 64, std::string(64, 'f'));
  test::write_bytes(memo, {s.begin(), s.end()});
  EXPECT_EQ(file_sha256(model, dir), std::string(64, 'f'));

  // A changed file (other size) is hashed again.
  test::write_bytes(model, {'a', 'b', 'c', 'd'});
  EXPECT_EQ(file_sha256(model, dir),
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
  test::write_bytes(memo, {'{', 'x'});  // a broken memo is ignored
  EXPECT_EQ(file_sha256(model, dir),
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
}

// ---- adapters -----------------------------------------------------------------

TEST(Adapter, MixtureMixesZAfterTheSigmoid) {
  const auto svf = tiny_svf();
  const Expert a = random_expert(*svf, "a", 1), b = random_expert(*svf, "b", 2);
  std::vector<float> slot_alpha(size_t(svf->n_slots()), 1.0f);
  slot_alpha[3] = 0.25f;
  const AdapterTerm terms[] = {{&a, 0.4f, {}}, {&b, 0.8f, slot_alpha}};
  const auto mix = Adapter::mixture(*svf, terms);
  const auto za = a.z(), zb = b.z();
  double err = 0.0;
  for (int s = 0; s < svf->n_slots(); ++s) {
    const float wb = 0.8f * (s == 3 ? 0.25f : 1.0f);
    const auto z = mix->z(s);
    double sz = 0.0;
    for (int j = 0; j < svf->factors(s).rank; ++j) {
      const size_t i = size_t(svf->offset(s) + j);
      err = std::max(err, std::fabs(double(z[size_t(j)]) - (0.4 * za[i] + wb * zb[i])));
      sz += double(svf->factors(s).s[j]) * z[size_t(j)];
    }
    EXPECT_NEAR(mix->scale(s), svf->factors(s).s_sum / sz, 1e-5 * mix->scale(s));
  }
  EXPECT_LT(err, 1e-6);

  // Bad alphas are refused; all-zero alphas give the base weight (z = 1, scale 1).
  const AdapterTerm negative[] = {{&a, -0.1f, {}}};
  EXPECT_THROW(Adapter::mixture(*svf, negative), Error);
  const AdapterTerm short_slots[] = {{&a, 1.0f, {1.0f, 2.0f}}};
  EXPECT_THROW(Adapter::mixture(*svf, short_slots), Error);
  const AdapterTerm zero[] = {{&a, 0.0f, {}}};
  const auto z0 = Adapter::mixture(*svf, zero);
  EXPECT_EQ(z0->scale(0), 1.0f);
  EXPECT_EQ(z0->z(0)[0], 1.0f);
  Expert other = a;
  other.base_model_sha256 = std::string(64, '0');
  EXPECT_THROW(Adapter::from_expert(*svf, other), Error);
  EXPECT_NE(Adapter::from_expert(*svf, a)->id(), Adapter::from_expert(*svf, a)->id());
}

// ---- the three paths, one linear call ---------------------------------------------

// y of one row by the definition, in double: W' x = U diag(s*z*c) V^T x.
std::vector<double> reference_row(const Svf& svf, int slot, const Adapter* a, const Linear& lin,
                                  const float* x) {
  const SvdFactors& f = svf.factors(slot);
  std::vector<double> y(size_t(f.out), 0.0);
  if (!a) {
    for (int o = 0; o < f.out; ++o) {
      for (int i = 0; i < f.in; ++i) y[size_t(o)] += double(lin.w[int64_t(o) * f.in + i]) * x[i];
    }
    return y;
  }
  const double c = f.s_sum / [&] {
    double sz = 0.0;
    for (int j = 0; j < f.rank; ++j) sz += double(f.s[j]) * a->z(slot)[size_t(j)];
    return sz;
  }();
  for (int j = 0; j < f.rank; ++j) {
    double t = 0.0;
    for (int i = 0; i < f.in; ++i) t += double(f.vt[int64_t(j) * f.in + i]) * x[i];
    t *= double(f.s[j]) * a->z(slot)[size_t(j)] * c;
    for (int o = 0; o < f.out; ++o) y[size_t(o)] += double(f.u[int64_t(o) * f.rank + j]) * t;
  }
  return y;
}

TEST(SvfHook, PathsAgreeWithTheDefinitionPerRow) {
  const auto svf = tiny_svf();
  std::vector<std::shared_ptr<const Adapter>> adapters;
  std::vector<Expert> experts;
  for (int k = 0; k < 3; ++k)
    experts.push_back(random_expert(*svf, "e" + std::to_string(k), 10 + k));
  for (const Expert& e : experts) adapters.push_back(Adapter::from_expert(*svf, e));
  adapters.push_back(nullptr);  // sequence 3: base weights
  const AdapterTerm terms[] = {{&experts[0], 0.5f, {}}, {&experts[2], 0.5f, {}}};
  adapters.push_back(Adapter::mixture(*svf, terms));

  // Rows: sequences interleaved in runs, as Forward lays them out.
  const std::vector<int32_t> row_seq = {0, 0, 1, 2, 2, 2, 3, 3, 4, 0, 1};
  const int64_t n = int64_t(row_seq.size());
  const struct {
    const char* name;
    SvfPath path;
  } paths[] = {{"factored", SvfPath::kFactored},
               {"materialized", SvfPath::kMaterialized},
               {"auto", SvfPath::kAuto}};
  for (const auto& p : paths) {
    SvfHookOptions opt;
    opt.path = p.path;
    SvfHook hook(tiny(), svf, nullptr, opt);
    hook.set_adapters(adapters);
    double worst = 0.0;
    for (int slot = 0; slot < svf->n_slots(); ++slot) {
      const SvdFactors& f = svf->factors(slot);
      const Linear& lin = tiny().layer(svf->layer_of(slot)).matrix(svf->kind_of(slot));
      const auto x = random_vector(size_t(n * f.in), 100 + uint64_t(slot));
      std::vector<float> y(size_t(n * f.out), -1.0f);
      ASSERT_TRUE(
          hook.apply(svf->layer_of(slot), svf->kind_of(slot), lin, x.data(), n, row_seq, y.data()));
      for (int64_t r = 0; r < n; ++r) {
        const auto ref = reference_row(*svf, slot, adapters[size_t(row_seq[size_t(r)])].get(), lin,
                                       &x[size_t(r * f.in)]);
        double err = 0.0, scale = 0.0;
        for (int o = 0; o < f.out; ++o) {
          err = std::max(err, std::fabs(y[size_t(r * f.out + o)] - ref[size_t(o)]));
          scale = std::max(scale, std::fabs(ref[size_t(o)]));
        }
        worst = std::max(worst, err / scale);
      }
    }
    std::printf(
        "%-12s path: max rel error per row vs double W' = %.3g (dense %lld, "
        "materialized %lld, factored %lld rows)\n",
        p.name, worst, (long long)hook.stats().dense_rows,
        (long long)hook.stats().materialized_rows, (long long)hook.stats().factored_rows);
    EXPECT_LT(worst, 2e-5) << p.name;
    EXPECT_EQ(hook.stats().dense_rows, 2 * svf->n_slots());  // sequence 3's rows
  }
}

TEST(SvfHook, AutoRuleAndCacheBudget) {
  const auto svf = tiny_svf();
  const Expert e1 = random_expert(*svf, "e1", 21), e2 = random_expert(*svf, "e2", 22);
  const auto a1 = Adapter::from_expert(*svf, e1), a2 = Adapter::from_expert(*svf, e2);
  const int slot = svf->slot(0, MatrixKind::kUp);
  const Linear& lin = tiny().layer(0).up;
  const auto x = random_vector(size_t(4 * lin.in), 5);
  std::vector<float> y(size_t(4 * lin.out));
  const std::vector<int32_t> rows = {0, 0, 1, 1};

  // Only base rows: the hook declines and Forward runs the plain weight.
  SvfHook hook(tiny(), svf);
  hook.set_adapters({nullptr, nullptr});
  EXPECT_FALSE(hook.apply(0, MatrixKind::kUp, lin, x.data(), 4, rows, y.data()));
  EXPECT_FALSE(hook.apply(0, MatrixKind::kUp, lin, x.data(), 4, rows, y.data()));

  // Two adapters, not hot: factored. The same rows keep coming: once hot (rank
  // rows), each half-batch adapter is materialized.
  hook.set_adapters({a1, a2});
  const int rank = svf->factors(slot).rank;
  int calls = 0;
  while (a1->rows_seen(slot) < rank) {
    hook.reset_stats();
    hook.apply(0, MatrixKind::kUp, lin, x.data(), 4, rows, y.data());
    ++calls;
    if (a1->rows_seen(slot) < rank) EXPECT_EQ(hook.stats().factored_rows, 4);
  }
  EXPECT_EQ(hook.stats().materialized_rows, 4);
  EXPECT_EQ(hook.cache().builds(), 2);
  std::printf("auto: factored for %d calls, then materialized (rank %d)\n", calls - 1, rank);

  // A budget of one matrix: the least recently used one is evicted.
  const int64_t one = int64_t(lin.out) * lin.in * 4;
  auto cache = std::make_shared<MaterializedCache>(one);
  SvfHookOptions forced;
  forced.path = SvfPath::kMaterialized;
  SvfHook small(tiny(), svf, cache, forced);
  small.set_adapters({a1, a2});
  small.apply(0, MatrixKind::kUp, lin, x.data(), 4, rows, y.data());
  EXPECT_EQ(cache->builds(), 2);
  EXPECT_EQ(cache->evictions(), 1);
  EXPECT_LE(cache->bytes(), one);
  EXPECT_EQ(cache->find(*a1, slot), nullptr);
  EXPECT_NE(cache->find(*a2, slot), nullptr);
  // Not adapted in this set: declined.
  const auto mlp = Svf::open(tiny(), MatrixSet::kMlp, "");
  SvfHook mlp_hook(tiny(), mlp);
  const Expert em = random_expert(*mlp, "m", 3);
  mlp_hook.set_adapters({Adapter::from_expert(*mlp, em)});
  EXPECT_FALSE(mlp_hook.apply(0, MatrixKind::kQ, tiny().layer(0).q, x.data(), 1, {rows.data(), 1},
                              y.data()));
}

// ---- whole forward passes -----------------------------------------------------------

std::vector<float> run_alone(const std::vector<int32_t>& tokens, LinearHook* hook) {
  Forward fwd(tiny());
  KvCache cache(tiny().config());
  SequenceInput in{&cache, tokens, true};
  std::vector<float> logits;
  fwd.run({&in, 1}, logits, hook);
  return logits;
}

TEST(SvfHook, UniformZGivesTheBaseLogits) {
  const auto svf = tiny_svf();
  const std::vector<int32_t> tokens = {1, 50, 60, 70, 80, 90, 100, 2};
  const auto base = run_alone(tokens, nullptr);
  for (float zv : {0.3f, 1.0f}) {
    const auto uniform = Adapter::from_z(*svf, std::vector<float>(size_t(svf->total_rank()), zv));
    for (SvfPath path : {SvfPath::kFactored, SvfPath::kMaterialized}) {
      SvfHookOptions opt;
      opt.path = path;
      SvfHook hook(tiny(), svf, nullptr, opt);
      hook.set_adapters({uniform});
      const auto logits = run_alone(tokens, &hook);
      const auto e = test::max_error(logits, base);
      std::printf("uniform z = %.1f, %s: max |logit - base| = %.3g\n", zv,
                  path == SvfPath::kFactored ? "factored" : "materialized", e.abs);
      EXPECT_LT(e.abs, 1e-4);
      if (path == SvfPath::kMaterialized) EXPECT_EQ(e.abs, 0.0);  // W' = W + 0 exactly
    }
  }
}

TEST(SvfHook, MixedBatchEqualsEachSequenceAlone) {
  const auto svf = tiny_svf();
  std::vector<Expert> experts;
  for (int k = 0; k < 3; ++k)
    experts.push_back(random_expert(*svf, "x" + std::to_string(k), 30 + k));
  const AdapterTerm terms[] = {{&experts[0], 0.7f, {}}, {&experts[1], 0.6f, {}}};
  const std::vector<std::shared_ptr<const Adapter>> adapters = {
      Adapter::from_expert(*svf, experts[0]),
      Adapter::from_expert(*svf, experts[1]),
      nullptr,
      Adapter::mixture(*svf, terms),
      Adapter::from_expert(*svf, experts[2]),
      Adapter::from_expert(*svf, experts[0])};
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 40, 41}, {1, 90, 91, 92, 93}, {1, 7}, {1, 200, 201, 202}, {1, 3, 4, 5, 6, 7, 8}, {1, 9}};

  for (SvfPath path : {SvfPath::kAuto, SvfPath::kFactored, SvfPath::kMaterialized}) {
    SvfHookOptions opt;
    opt.path = path;
    // Batch: prefill all, then 3 decode steps with fixed tokens.
    SvfHook hook(tiny(), svf, nullptr, opt);
    hook.set_adapters(adapters);
    Forward fwd(tiny());
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<SequenceInput> batch;
    for (const auto& p : prompts) {
      caches.push_back(std::make_unique<KvCache>(tiny().config()));
      batch.push_back({caches.back().get(), p, true});
    }
    std::vector<std::vector<float>> batch_logits;
    std::vector<float> logits;
    fwd.run(batch, logits, &hook);
    batch_logits.push_back(logits);
    const int32_t steps[3] = {11, 12, 13};
    for (const int32_t& t : steps) {
      for (auto& in : batch) in = {in.cache, {&t, 1}, false};
      fwd.run(batch, logits, &hook);
      batch_logits.push_back(logits);
    }

    // Each alone, same tokens.
    const int V = tiny().config().n_vocab;
    double worst = 0.0;
    size_t prefill_row = 0;
    for (size_t s = 0; s < prompts.size(); ++s) {
      SvfHook alone_hook(tiny(), svf, nullptr, opt);
      alone_hook.set_adapters({adapters[s]});
      Forward f1(tiny());
      KvCache cache(tiny().config());
      SequenceInput in{&cache, prompts[s], true};
      f1.run({&in, 1}, logits, &alone_hook);
      worst = std::max(
          worst,
          test::max_error(logits, {&batch_logits[0][prefill_row * size_t(V)], logits.size()}).abs);
      prefill_row += prompts[s].size();
      for (int k = 0; k < 3; ++k) {
        in = {&cache, {&steps[k], 1}, false};
        f1.run({&in, 1}, logits, &alone_hook);
        worst = std::max(
            worst,
            test::max_error(logits, {&batch_logits[size_t(k) + 1][s * size_t(V)], size_t(V)}).abs);
      }
    }
    std::printf(
        "mixed batch of %zu sequences (4 adapters + base), path %d: max |logit batch - "
        "alone| = %.3g\n",
        prompts.size(), int(path), worst);
    EXPECT_LT(worst, 1e-4);
  }
}

}  // namespace
}  // namespace t2::backbone
