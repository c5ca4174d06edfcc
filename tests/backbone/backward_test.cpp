// Gradients of the training pass. Table-driven: each op's backward against central
// finite differences in f64, and its f32 instantiation against the f64 one. Whole
// network: dLoss/dz of a tiny random Llama with all 7 matrix kinds adapted in every
// layer against finite differences, per slot (f64), and f32 against f64. Also the
// training forward against the inference forward, and the loss and chain helpers.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <type_traits>

#include "backbone/backward.h"
#include "backbone/forward.h"
#include "backbone/train_forward.h"
#include "t2/error.h"
#include "tests/backbone/svd_factors.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

std::vector<double> random_vector(std::mt19937_64& rng, int64_t n, double lo = -1.0,
                                  double hi = 1.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = u(rng);
  return v;
}

template <typename To, typename From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// Max |got - want| and max |want|; their ratio is the error relative to the scale of
// the gradient, which stays meaningful where single entries are near zero.
struct Err {
  double max_abs = 0.0, max_ref = 0.0;
  void add(double got, double want) {
    max_abs = std::max(max_abs, std::fabs(got - want));
    max_ref = std::max(max_ref, std::fabs(want));
  }
  double rel() const { return max_abs / std::max(max_ref, 1e-30); }
};

// ---- ops, table-driven -------------------------------------------------------------

// An op as y = f(x) over flat buffers, with its backward; generic lambdas give both
// the f64 and the f32 instantiation.
struct OpCase {
  std::string name;
  int64_t n_in = 0, n_out = 0;
  std::function<void(const double*, double*)> forward;
  std::function<void(const double*, const double*, double*)> backward;
  std::function<void(const float*, const float*, float*)> backward_f32;
};

template <typename F, typename B>
OpCase op_case(std::string name, int64_t n_in, int64_t n_out, F f, B b) {
  return {std::move(name), n_in, n_out, [f](const double* x, double* y) { f(x, y); },
          [b](const double* x, const double* dy, double* dx) { b(x, dy, dx); },
          [b](const float* x, const float* dy, float* dx) { b(x, dy, dx); }};
}

template <typename P>
using Elem = std::remove_cv_t<std::remove_pointer_t<P>>;

std::vector<OpCase> op_cases() {
  std::mt19937_64 rng(7);
  std::vector<OpCase> cases;

  // RMSNorm: 5 rows of 24.
  const auto gain = random_vector(rng, 24, 0.5, 1.5);
  const auto gain_f = cast<float>(gain);
  auto gain_of = [gain, gain_f](auto* x) {
    if constexpr (std::is_same_v<Elem<decltype(x)>, float>) return gain_f.data();
    else return gain.data();
  };
  cases.push_back(op_case(
      "rmsnorm", 5 * 24, 5 * 24,
      [=](auto* x, auto* y) { train::rmsnorm_forward(x, gain_of(x), 5, 24, 1e-5f, y); },
      [=](auto* x, auto* dy, auto* dx) {
        train::rmsnorm_backward(x, gain_of(x), dy, 5, 24, 1e-5f, dx, false);
      }));

  // RoPE on one row of 3 heads x 8, all dims rotated at pos 7, half of them at pos 123.
  for (const auto& [n_rot, pos] : {std::pair{8, 7}, std::pair{4, 123}}) {
    auto rope = [n_rot, pos](auto* x, auto* y, bool inverse) {
      using T = Elem<decltype(y)>;
      const auto table = train::rope_table<T>(pos + 1, n_rot, 10000.0f);
      std::copy(x, x + 24, y);
      train::rope_rotate(y, 3, 8, n_rot, table.data(), pos, inverse);
    };
    cases.push_back(op_case(
        "rope n_rot " + std::to_string(n_rot), 24, 24,
        [=](auto* x, auto* y) { rope(x, y, false); },
        [=](auto*, auto* dy, auto* dx) { rope(dy, dx, true); }));
  }

  // SwiGLU: x = [gate (40); up (40)].
  cases.push_back(op_case(
      "swiglu", 80, 40, [](auto* x, auto* y) { train::swiglu_forward(x, x + 40, 40, y); },
      [](auto* x, auto* dy, auto* dx) {
        train::swiglu_backward(x, x + 40, dy, 40, dx, dx + 40);
      }));

  // Causal attention, x = [q (n x qd); k (n x kvd); v (n x kvd)]: GQA groups of 2 over
  // two query blocks (n = 70 > 64), and one kv head for all (n = 20).
  for (const auto& [n, heads, kv] : {std::tuple{70, 4, 2}, std::tuple{20, 4, 1}}) {
    const int hd = 8;
    const train::AttentionShape a{heads, kv, hd, heads * hd, kv * hd, 1.0 / std::sqrt(8.0)};
    const int64_t nq = n * a.q_ld, nk = n * a.kv_ld;
    auto fwd = [=](auto* x, auto* y) {
      std::vector<Elem<decltype(y)>> scratch(static_cast<size_t>(train::attention_scratch(n)));
      for (int g = 0; g < kv; ++g) {
        train::attention_forward(a, g, n, x, x + nq, x + nq + nk, y, scratch.data());
      }
    };
    auto bwd = [=](auto* x, auto* dy, auto* dx) {
      std::vector<Elem<decltype(dx)>> scratch(static_cast<size_t>(train::attention_scratch(n)));
      for (int g = 0; g < kv; ++g) {
        train::attention_backward(a, g, n, x, x + nq, x + nq + nk, dy, dx, dx + nq,
                                  dx + nq + nk, scratch.data());
      }
    };
    cases.push_back(op_case("attention n " + std::to_string(n) + " heads " +
                                std::to_string(heads) + "/" + std::to_string(kv),
                            nq + 2 * nk, nq, fwd, bwd));
  }
  return cases;
}

TEST(TrainOps, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(11);
  std::printf("%-26s %12s %12s %12s\n", "op", "max|dx|", "fd rel err", "f32 rel err");
  for (const OpCase& op : op_cases()) {
    auto x = random_vector(rng, op.n_in);
    const auto w = random_vector(rng, op.n_out);  // loss = sum(w * y)
    std::vector<double> y(static_cast<size_t>(op.n_out)), dx(static_cast<size_t>(op.n_in));
    op.backward(x.data(), w.data(), dx.data());
    auto loss = [&] {
      op.forward(x.data(), y.data());
      double l = 0.0;
      for (int64_t i = 0; i < op.n_out; ++i) l += w[size_t(i)] * y[size_t(i)];
      return l;
    };
    Err fd;
    const double eps = 1e-6;
    for (int64_t i = 0; i < op.n_in; ++i) {
      const double x0 = x[size_t(i)];
      x[size_t(i)] = x0 + eps;
      const double lp = loss();
      x[size_t(i)] = x0 - eps;
      const double lm = loss();
      x[size_t(i)] = x0;
      fd.add(dx[size_t(i)], (lp - lm) / (2 * eps));
    }

    const auto xf = cast<float>(x), wf = cast<float>(w);
    std::vector<float> dxf(static_cast<size_t>(op.n_in));
    op.backward_f32(xf.data(), wf.data(), dxf.data());
    Err f32;
    for (int64_t i = 0; i < op.n_in; ++i) f32.add(dxf[size_t(i)], dx[size_t(i)]);

    std::printf("%-26s %12.4g %12.3g %12.3g\n", op.name.c_str(), fd.max_ref, fd.rel(), f32.rel());
    EXPECT_LT(fd.rel(), 1e-7) << op.name;
    EXPECT_LT(f32.rel(), 1e-5) << op.name;
  }
}

TEST(TrainOps, FastExpWithinTwoUlp) {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00137f) {
    const double want = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(train::exp_fast(x)) - want) / want);
  }
  std::printf("exp_fast on [-87, 88]: max rel err %.3g\n", worst);
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(train::exp_fast(-1e30f), train::exp_fast(-87.0f));
  EXPECT_TRUE(std::isfinite(train::exp_fast(1e30f)));
}

// ---- the whole network on a tiny model ----------------------------------------------------

struct Tiny {
  std::shared_ptr<const Model> model;
  test::TestSlots all;  // every kind in every layer
};

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::path(testing::TempDir()) /
                   ("t2_backward_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

const Tiny& tiny() {
  static const Tiny* t = [] {
    auto* tn = new Tiny;
    test::TinyLlamaSpec spec;  // 2 layers, embd 64, heads 4/2 (head dim 16), ff 128
    spec.seed = 5;
    const std::string path = temp_path("tiny.gguf");
    test::write_tiny_llama(path, spec);
    tn->model = Model::load(path);
    std::vector<std::pair<int, MatrixKind>> which;
    for (int l = 0; l < spec.n_layer; ++l) {
      for (int k = 0; k < kMatrixKinds; ++k) which.emplace_back(l, MatrixKind(k));
    }
    test::build_slots(*tn->model, which, tn->all);
    return tn;
  }();
  return *t;
}

// A batch: tokens, prompt lengths, z per sequence (empty = base), and a loss that is
// a random linear function of the logits plus a weighted sum of token log-probs.
struct Batch {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int> n_prompt;
  std::vector<std::vector<double>> z;
  std::vector<std::vector<double>> c;     // [rows_s x vocab]
  std::vector<std::vector<double>> coef;  // [rows_s]
};

Batch make_batch(const SvfSlots& slots, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b;
  const std::tuple<int, int, bool> shape[] = {{80, 50, true}, {9, 1, false}, {30, 12, true}};
  for (const auto& [n, p, adapted] : shape) {
    std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = tok(rng);
    b.tokens.push_back(t);
    b.n_prompt.push_back(p);
    b.z.push_back(adapted ? random_vector(rng, slots.total_rank, 0.3, 1.5)
                          : std::vector<double>{});
    b.c.push_back(random_vector(rng, int64_t(n - p) * vocab, -0.1, 0.1));
    b.coef.push_back(random_vector(rng, n - p));
  }
  return b;
}

template <typename T>
struct Casted {
  std::vector<std::vector<T>> z;
  std::vector<TrainSequenceT<T>> seqs;
};

template <typename T>
Casted<T> sequences(const Batch& b, const std::vector<size_t>& which) {
  Casted<T> out;
  for (size_t s : which) out.z.push_back(cast<T>(b.z[s]));
  for (size_t i = 0; i < which.size(); ++i) {
    out.seqs.push_back({b.tokens[which[i]], b.n_prompt[which[i]], out.z[i]});
  }
  return out;
}

// Loss of the last run over the sequences `which` of `b` (rows in that order).
template <typename T>
double loss(const TrainForwardT<T>& tf, const Batch& b, const std::vector<size_t>& which,
            int64_t vocab) {
  double l = 0.0;
  for (size_t i = 0; i < which.size(); ++i) {
    const int64_t r0 = tf.sequence_rows()[i], r1 = tf.sequence_rows()[i + 1];
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t v = 0; v < vocab; ++v) {
        l += b.c[which[i]][size_t((r - r0) * vocab + v)] *
             double(tf.logits()[size_t(r * vocab + v)]);
      }
      l += b.coef[which[i]][size_t(r - r0)] * double(tf.token_logprobs()[size_t(r)]);
    }
  }
  return l;
}

template <typename T>
std::vector<T> dlogits(const TrainForwardT<T>& tf, const Batch& b,
                       const std::vector<size_t>& which, int64_t vocab) {
  std::vector<T> d(tf.logits().size());
  for (size_t i = 0; i < which.size(); ++i) {
    const size_t s = which[i];
    const int64_t r0 = tf.sequence_rows()[i], r1 = tf.sequence_rows()[i + 1];
    for (int64_t r = r0; r < r1; ++r) {
      T* row = &d[size_t(r * vocab)];
      for (int64_t v = 0; v < vocab; ++v) row[v] = T(b.c[s][size_t((r - r0) * vocab + v)]);
      const int32_t target = b.tokens[s][size_t(b.n_prompt[s] + (r - r0))];
      add_logprob_grad(&tf.logits()[size_t(r * vocab)], vocab, target,
                       b.coef[s][size_t(r - r0)], row);
    }
  }
  return d;
}

template <typename T>
std::vector<T> batch_dz(TrainForwardT<T>& tf, const Batch& b, int64_t vocab) {
  const std::vector<size_t> all{0, 1, 2};
  auto seqs = sequences<T>(b, all);
  tf.run(seqs.seqs);
  const auto d = dlogits(tf, b, all, vocab);
  return tf.backward(d);
}

std::string slot_name(const SvfSlots& slots, int i) {
  for (int l = 0; l < slots.n_layer; ++l) {
    for (int k = 0; k < kMatrixKinds; ++k) {
      if (slots.slot(l, MatrixKind(k)) == i) {
        return "blk." + std::to_string(l) + "." + matrix_kind_name(MatrixKind(k));
      }
    }
  }
  return "?";
}

TEST(TrainBackward, DzMatchesFiniteDifferencesEverySlot) {
  const Tiny& t = tiny();
  const SvfSlots& slots = t.all.slots;
  const int64_t V = t.model->config().n_vocab, K = slots.total_rank;
  Batch b = make_batch(slots, int(V), 3);
  TrainForwardT<double> tf(*t.model, slots);
  const std::vector<double> dz = batch_dz(tf, b, V);

  // The base sequence has no z, so no gradient.
  for (int64_t i = 0; i < K; ++i) ASSERT_EQ(dz[size_t(K + i)], 0.0);

  // Each adapted sequence alone (sequences are independent): per slot, 8 single
  // entries spread over its rank (first and last included) and one random direction
  // over the whole slot. One thread: tiny GEMMs only lose to thread start-up.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<Err> per_slot(size_t(slots.n_slots()));
  const double eps = 1e-5;
  std::mt19937_64 rng(9);
  TrainForwardT<double> fd(*t.model, slots);
  auto central = [&](size_t s, const std::vector<double>& dir) {
    const std::vector<double> z0 = b.z[s];
    double l[2];
    for (int side = 0; side < 2; ++side) {
      for (size_t j = 0; j < z0.size(); ++j) b.z[s][j] = z0[j] + (side ? -eps : eps) * dir[j];
      auto one = sequences<double>(b, {s});
      fd.run(one.seqs, false);
      l[side] = loss(fd, b, {s}, V);
    }
    b.z[s] = z0;
    return (l[0] - l[1]) / (2 * eps);
  };
  for (size_t s : {size_t(0), size_t(2)}) {
    for (int i = 0; i < slots.n_slots(); ++i) {
      const int64_t off = slots.offset[size_t(i)], rank = slots.factors[size_t(i)].rank;
      std::vector<double> dir(size_t(K), 0.0);
      for (int j = 0; j < 8; ++j) {
        const int64_t at = off + j * (rank - 1) / 7;
        dir[size_t(at)] = 1.0;
        per_slot[size_t(i)].add(dz[s * size_t(K) + size_t(at)], central(s, dir));
        dir[size_t(at)] = 0.0;
      }
      double along = 0.0;
      const auto r = random_vector(rng, rank);
      for (int64_t j = 0; j < rank; ++j) {
        dir[size_t(off + j)] = r[size_t(j)];
        along += r[size_t(j)] * dz[s * size_t(K) + size_t(off + j)];
      }
      per_slot[size_t(i)].add(along, central(s, dir));
    }
  }
  omp_set_num_threads(threads);
  std::printf("%-18s %6s %12s %12s %12s\n", "slot", "rank", "max|dz|", "max abs err", "rel err");
  for (int i = 0; i < slots.n_slots(); ++i) {
    const Err& e = per_slot[size_t(i)];
    std::printf("%-18s %6d %12.4g %12.3g %12.3g\n", slot_name(slots, i).c_str(),
                slots.factors[size_t(i)].rank, e.max_ref, e.max_abs, e.rel());
    EXPECT_GT(e.max_ref, 1e-4) << slot_name(slots, i) << ": a gradient this small tests nothing";
    EXPECT_LT(e.rel(), 1e-6) << slot_name(slots, i);
  }
}

TEST(TrainBackward, F32MatchesF64) {
  const Tiny& t = tiny();
  const SvfSlots& slots = t.all.slots;
  const int64_t V = t.model->config().n_vocab, K = slots.total_rank;
  const Batch b = make_batch(slots, int(V), 4);
  TrainForwardT<double> f64(*t.model, slots);
  TrainForwardT<float> f32(*t.model, slots);
  const auto dz64 = batch_dz(f64, b, V);
  const auto dz32 = batch_dz(f32, b, V);
  Err lp;
  for (size_t r = 0; r < f64.token_logprobs().size(); ++r) {
    lp.add(f32.token_logprobs()[r], f64.token_logprobs()[r]);
  }
  std::printf("token log-probs: max abs err %.3g\n", lp.max_abs);
  EXPECT_LT(lp.max_abs, 1e-4);
  double worst = 0.0;
  for (int i = 0; i < slots.n_slots(); ++i) {
    Err e;
    for (size_t s : {size_t(0), size_t(2)}) {
      for (int r = 0; r < slots.factors[size_t(i)].rank; ++r) {
        const size_t at = s * size_t(K) + size_t(slots.offset[size_t(i)] + r);
        e.add(dz32[at], dz64[at]);
      }
    }
    worst = std::max(worst, e.rel());
    EXPECT_LT(e.rel(), 1e-4) << slot_name(slots, i);
  }
  std::printf("dz f32 vs f64: worst slot rel err %.3g\n", worst);
}

// The output does not change when z is scaled (the rescale undoes it), so the
// gradient is orthogonal to z in every slot.
TEST(TrainBackward, DzIsOrthogonalToZ) {
  const Tiny& t = tiny();
  const SvfSlots& slots = t.all.slots;
  const int64_t V = t.model->config().n_vocab, K = slots.total_rank;
  const Batch b = make_batch(slots, int(V), 5);
  TrainForwardT<double> tf(*t.model, slots);
  const auto dz = batch_dz(tf, b, V);
  for (size_t s : {size_t(0), size_t(2)}) {
    for (int i = 0; i < slots.n_slots(); ++i) {
      double dot = 0.0, mag = 0.0;
      for (int r = 0; r < slots.factors[size_t(i)].rank; ++r) {
        const size_t at = size_t(slots.offset[size_t(i)] + r);
        dot += b.z[s][at] * dz[s * size_t(K) + at];
        mag += std::fabs(b.z[s][at] * dz[s * size_t(K) + at]);
      }
      EXPECT_LT(std::fabs(dot), 1e-10 * mag) << slot_name(slots, i);
    }
  }
}

// With only layer 1's MLP adapted, backward stops early and the dense matrices carry
// the gradient; it must equal the all-adapted gradient with z = 1 elsewhere.
TEST(TrainBackward, PartialSlotsMatchAllSlotsWithUnitZ) {
  const Tiny& t = tiny();
  const SvfSlots& all = t.all.slots;
  test::TestSlots mlp1;
  test::build_slots(*t.model,
                    {{1, MatrixKind::kGate}, {1, MatrixKind::kUp}, {1, MatrixKind::kDown}}, mlp1);
  const int64_t V = t.model->config().n_vocab;
  Batch b = make_batch(all, int(V), 6);
  Batch small = b;
  for (size_t s = 0; s < b.z.size(); ++s) {
    if (b.z[s].empty()) continue;
    small.z[s].clear();
    for (int i = 0; i < all.n_slots(); ++i) {
      const int64_t off = all.offset[size_t(i)], r = all.factors[size_t(i)].rank;
      const bool kept = slot_name(all, i).rfind("blk.1.ffn_", 0) == 0;
      for (int64_t j = 0; j < r; ++j) {
        if (kept) small.z[s].push_back(b.z[s][size_t(off + j)]);
        else b.z[s][size_t(off + j)] = 1.0;
      }
    }
  }
  TrainForwardT<double> full(*t.model, all), part(*t.model, mlp1.slots);
  const auto dz_full = batch_dz(full, b, V);
  const auto dz_part = batch_dz(part, small, V);
  Err e;
  for (size_t s : {size_t(0), size_t(2)}) {
    for (int i = 0; i < mlp1.slots.n_slots(); ++i) {
      const int full_slot = all.slot(1, MatrixKind(int(MatrixKind::kGate) + i));
      for (int r = 0; r < mlp1.slots.factors[size_t(i)].rank; ++r) {
        const int64_t part_at = int64_t(s) * mlp1.slots.total_rank + mlp1.slots.offset[size_t(i)];
        const int64_t full_at = int64_t(s) * all.total_rank + all.offset[size_t(full_slot)];
        e.add(dz_part[size_t(part_at + r)], dz_full[size_t(full_at + r)]);
      }
    }
  }
  std::printf("layer-1 MLP only vs all slots: rel err %.3g\n", e.rel());
  EXPECT_LT(e.rel(), 1e-6);  // factors are stored in f32
}

TEST(TrainForward, LogitsMatchInferenceForward) {
  const Tiny& t = tiny();
  const Model& m = *t.model;
  const int64_t V = m.config().n_vocab;
  const Batch b = make_batch(t.all.slots, int(V), 8);
  TrainForward tf(m, t.all.slots);
  Forward inference(m);
  inference.set_quantized_rows_max(0);
  for (bool unit_z : {false, true}) {
    std::vector<std::vector<float>> z(b.tokens.size());
    std::vector<TrainSequence> seqs;
    for (size_t s = 0; s < b.tokens.size(); ++s) {
      if (unit_z) z[s].assign(size_t(t.all.slots.total_rank), 1.0f);
      seqs.push_back({b.tokens[s], b.n_prompt[s], z[s]});
    }
    tf.run(seqs, false);
    Err e;
    for (size_t s = 0; s < b.tokens.size(); ++s) {
      KvCache cache(m.config());
      std::vector<float> logits;
      SequenceInput in{&cache, b.tokens[s], true};
      inference.run({&in, 1}, logits);
      const int64_t r0 = tf.sequence_rows()[s], r1 = tf.sequence_rows()[s + 1];
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t pos = b.n_prompt[s] - 1 + (r - r0);
        for (int64_t v = 0; v < V; ++v) {
          e.add(tf.logits()[size_t(r * V + v)], logits[size_t(pos * V + v)]);
        }
      }
    }
    std::printf("%s: max |dlogit| vs inference forward %.3g\n",
                unit_z ? "factored, z = 1" : "dense", e.max_abs);
    EXPECT_LT(e.max_abs, unit_z ? 1e-3 : 1e-4);
  }
}

// ---- loss and chain helpers -----------------------------------------------------------------

TEST(TrainHelpers, LossAndChainGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(21);
  const int64_t V = 50;
  auto x = random_vector(rng, V, -3, 3);
  auto ref = random_vector(rng, V, -3, 3);
  std::vector<double> ref_lp(static_cast<size_t>(V));
  log_softmax(ref.data(), V, ref_lp.data());
  auto fd_check = [&](std::vector<double>& p, const std::function<double()>& f,
                      const std::vector<double>& grad, const char* what) {
    Err e;
    for (size_t i = 0; i < p.size(); ++i) {
      const double p0 = p[i];
      p[i] = p0 + 1e-6;
      const double lp = f();
      p[i] = p0 - 1e-6;
      const double lm = f();
      p[i] = p0;
      e.add(grad[i], (lp - lm) / 2e-6);
    }
    std::printf("%-22s rel err %.3g\n", what, e.rel());
    EXPECT_LT(e.rel(), 1e-7) << what;
  };

  std::vector<double> g(static_cast<size_t>(V), 0.0);
  add_logprob_grad(x.data(), V, 7, 1.0, g.data());
  fd_check(x, [&] { return token_logprob(x.data(), V, 7); }, g, "log-prob");

  std::fill(g.begin(), g.end(), 0.0);
  add_kl_grad(x.data(), ref_lp.data(), V, 1.0, g.data());
  fd_check(x, [&] {
    std::vector<double> tmp(static_cast<size_t>(V));
    return add_kl_grad(x.data(), ref_lp.data(), V, 1.0, tmp.data());
  }, g, "KL(ref || policy)");

  // Chain rules on a fake slot layout of two slots.
  SvfSlots slots(1);
  std::vector<float> dummy(4);
  SvdFactors f3{3, 3, 3, dummy.data(), dummy.data(), dummy.data(), 1.0};
  SvdFactors f2{2, 4, 2, dummy.data(), dummy.data(), dummy.data(), 1.0};
  slots.add(0, MatrixKind::kQ, f3);
  slots.add(0, MatrixKind::kDown, f2);
  auto p = random_vector(rng, 5, -2, 2);
  const auto w = random_vector(rng, 5);
  std::vector<double> dp(5);
  sigmoid_backward<double>(p, w, dp);
  fd_check(p, [&] {
    double l = 0.0;
    for (size_t i = 0; i < 5; ++i) l += w[i] / (1.0 + std::exp(-p[i]));
    return l;
  }, dp, "sigmoid");

  const auto e0 = random_vector(rng, 5, 0, 1), e1 = random_vector(rng, 5, 0, 1);
  const std::vector<std::span<const double>> experts{e0, e1};
  for (bool per_slot : {false, true}) {
    auto alpha = random_vector(rng, per_slot ? 4 : 2, 0, 1);
    std::vector<double> da(alpha.size()), z(5);
    mix_backward<double>(slots, experts, w, per_slot, da);
    fd_check(alpha, [&] {
      mix<double>(slots, experts, alpha, per_slot, z);
      double l = 0.0;
      for (size_t i = 0; i < 5; ++i) l += w[i] * z[i];
      return l;
    }, da, per_slot ? "mixture, per slot" : "mixture, per expert");
  }
}

TEST(TrainForward, RejectsBadInputBeforeWork) {
  const Tiny& t = tiny();
  TrainForward tf(*t.model, t.all.slots);
  const std::vector<int32_t> ok{1, 5, 6, 7};
  const std::vector<float> short_z(3, 1.0f);
  const std::vector<int32_t> bad{1, 99999, 3};
  auto run = [&](const TrainSequence& s) { tf.run(std::span<const TrainSequence>(&s, 1)); };
  EXPECT_THROW(run({ok, 0, {}}), Error);  // no prompt
  EXPECT_THROW(run({ok, 4, {}}), Error);  // no response
  EXPECT_THROW(run({bad, 1, {}}), Error);
  EXPECT_THROW(run({ok, 1, short_z}), Error);
  EXPECT_THROW(tf.run(std::span<const TrainSequence>()), Error);
  tf.run(std::vector<TrainSequence>{{ok, 2, {}}}, false);
  std::vector<float> d(static_cast<size_t>(2 * t.model->config().n_vocab));
  EXPECT_THROW(tf.backward(d), Error);  // activations were not kept
  tf.run(std::vector<TrainSequence>{{ok, 2, {}}});
  EXPECT_THROW(tf.backward(std::span<const float>(d.data(), 3)), Error);
  EXPECT_NO_THROW(tf.backward(d));
}

}  // namespace
}  // namespace t2::backbone
