// The forward pass on tiny random Llama models (written by the test) against a
// plain double-precision reference written here from docs/gguf.md — with q/k
// rows un-permuted to the original order and RoPE on half-split pairs, so the
// GGUF adjacent-pair convention is checked, not assumed. Also: incremental
// decode equals one full pass, batching does not change results, and the
// quantized-weight kernels agree with the f32 path.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "backbone/forward.h"
#include "backbone/generator.h"
#include "backbone/model.h"
#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::backbone {
namespace {

using Vec = std::vector<double>;

struct RefModel {
  const test::TinyLlama& t;
  const test::TinyLlamaSpec& spec;

  Vec matvec(const std::string& name, const Vec& x, int out) const {
    const auto& w = t[name];
    const size_t in = x.size();
    Vec y(size_t(out), 0.0);
    for (int o = 0; o < out; ++o) {
      for (size_t i = 0; i < in; ++i) y[size_t(o)] += double(w[size_t(o) * in + i]) * x[i];
    }
    return y;
  }
  Vec rmsnorm(const Vec& x, const std::string& gain) const {
    double ss = 0.0;
    for (double v : x) ss += v * v;
    const double s = 1.0 / std::sqrt(ss / double(x.size()) + spec.rms_eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * t[gain][i];
    return y;
  }
  // GGUF row 2i+j of a head is original row j*hd/2+i: undo it, then rotate
  // (x[i], x[i+hd/2]) as the original model does.
  Vec rope_original_order(const Vec& x, int heads, int pos) const {
    const int hd = spec.n_embd / spec.n_head, half = hd / 2;
    Vec y(x.size());
    for (int h = 0; h < heads; ++h) {
      Vec orig(static_cast<size_t>(hd));
      for (int i = 0; i < half; ++i) {
        for (int j = 0; j < 2; ++j) orig[size_t(j * half + i)] = x[size_t(h * hd + 2 * i + j)];
      }
      for (int i = 0; i < half; ++i) {
        const double th = pos * std::pow(double(spec.rope_base), -2.0 * i / hd);
        const double a = orig[size_t(i)], b = orig[size_t(i + half)];
        y[size_t(h * hd + i)] = a * std::cos(th) - b * std::sin(th);
        y[size_t(h * hd + i + half)] = a * std::sin(th) + b * std::cos(th);
      }
    }
    return y;
  }

  // Logits at every position of `ids`.
  std::vector<Vec> logits(const std::vector<int32_t>& ids) const {
    const int D = spec.n_embd, hd = D / spec.n_head, kvd = spec.n_head_kv * hd;
    const int group = spec.n_head / spec.n_head_kv;
    std::vector<Vec> h;
    for (int32_t id : ids) {
      const auto& e = t["token_embd.weight"];
      h.emplace_back(e.begin() + int64_t(id) * D, e.begin() + int64_t(id + 1) * D);
    }
    for (int l = 0; l < spec.n_layer; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      std::vector<Vec> q, k, v;
      for (size_t p = 0; p < ids.size(); ++p) {
        const Vec x = rmsnorm(h[p], b + "attn_norm.weight");
        q.push_back(rope_original_order(matvec(b + "attn_q.weight", x, D), spec.n_head, int(p)));
        k.push_back(rope_original_order(matvec(b + "attn_k.weight", x, kvd), spec.n_head_kv,
                                        int(p)));
        v.push_back(matvec(b + "attn_v.weight", x, kvd));
      }
      for (size_t p = 0; p < ids.size(); ++p) {
        Vec att(size_t(D), 0.0);
        for (int hh = 0; hh < spec.n_head; ++hh) {
          const int g = hh / group;
          Vec s(p + 1);
          double mx = -1e300, sum = 0.0;
          for (size_t j = 0; j <= p; ++j) {
            double dot = 0.0;
            for (int d = 0; d < hd; ++d) dot += q[p][size_t(hh * hd + d)] * k[j][size_t(g * hd + d)];
            s[j] = dot / std::sqrt(double(hd));
            mx = std::max(mx, s[j]);
          }
          for (double& x : s) sum += (x = std::exp(x - mx));
          for (size_t j = 0; j <= p; ++j) {
            for (int d = 0; d < hd; ++d) att[size_t(hh * hd + d)] += s[j] / sum * v[j][size_t(g * hd + d)];
          }
        }
        const Vec o = matvec(b + "attn_output.weight", att, D);
        for (int d = 0; d < D; ++d) h[p][size_t(d)] += o[size_t(d)];
      }
      for (size_t p = 0; p < ids.size(); ++p) {
        const Vec x = rmsnorm(h[p], b + "ffn_norm.weight");
        Vec g = matvec(b + "ffn_gate.weight", x, spec.n_ff);
        const Vec u = matvec(b + "ffn_up.weight", x, spec.n_ff);
        for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
        const Vec d = matvec(b + "ffn_down.weight", g, D);
        for (int i = 0; i < D; ++i) h[p][size_t(i)] += d[size_t(i)];
      }
    }
    std::vector<Vec> out;
    const std::string head = spec.tied_output ? "token_embd.weight" : "output.weight";
    for (const Vec& x : h) out.push_back(matvec(head, rmsnorm(x, "output_norm.weight"), test::kTinyVocab));
    return out;
  }
};

class TinyForward : public ::testing::Test {
 protected:
  std::string write(const test::TinyLlamaSpec& spec, const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / "t2_forward_test";
    std::filesystem::create_directories(dir);
    const std::string path = (dir / name).string();
    tiny_ = test::write_tiny_llama(path, spec);
    return path;
  }
  test::TinyLlama tiny_;
};

double max_abs_diff(const float* a, const Vec& b) {
  double m = 0.0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

const std::vector<int32_t> kIds{1, 40, 75, 3, 264, 99, 150, 12, 7, 260, 33, 2};

TEST_F(TinyForward, AllPositionsMatchTheDoubleReference) {
  for (bool tied : {true, false}) {
    test::TinyLlamaSpec spec;
    spec.tied_output = tied;
    const auto model = Model::load(write(spec, tied ? "tied.gguf" : "untied.gguf"));
    const auto want = RefModel{tiny_, spec}.logits(kIds);

    Forward fwd(*model);
    KvCache cache(model->config());
    std::vector<float> logits;
    SequenceInput in{&cache, kIds, true};
    fwd.run({&in, 1}, logits);
    double worst = 0.0;
    for (size_t p = 0; p < kIds.size(); ++p) {
      worst = std::max(worst, max_abs_diff(&logits[p * test::kTinyVocab], want[p]));
    }
    std::printf("tied=%d: max |dlogit| vs double reference %.3g\n", tied, worst);
    EXPECT_LT(worst, 1e-4);
  }
}

TEST_F(TinyForward, IncrementalDecodeEqualsOnePass) {
  test::TinyLlamaSpec spec;
  const auto model = Model::load(write(spec, "inc.gguf"));
  const auto want = RefModel{tiny_, spec}.logits(kIds);
  Forward fwd(*model);
  KvCache cache(model->config(), 4);  // forces the cache to grow
  std::vector<float> logits;
  const std::vector<int32_t> prompt(kIds.begin(), kIds.begin() + 5);
  SequenceInput first{&cache, prompt, false};
  fwd.run({&first, 1}, logits);
  EXPECT_LT(max_abs_diff(logits.data(), want[4]), 1e-4);
  for (size_t p = 5; p < kIds.size(); ++p) {
    SequenceInput step{&cache, {&kIds[p], 1}, false};
    fwd.run({&step, 1}, logits);
    EXPECT_LT(max_abs_diff(logits.data(), want[p]), 1e-4) << "position " << p;
  }
  EXPECT_EQ(cache.length(), int(kIds.size()));
}

TEST_F(TinyForward, BatchOfDifferentLengthsEqualsEachAlone) {
  test::TinyLlamaSpec spec;
  const auto model = Model::load(write(spec, "batch.gguf"));
  const RefModel ref{tiny_, spec};
  const std::vector<std::vector<int32_t>> seqs{
      {5, 6, 7}, {1, 40, 75, 3, 264, 99, 150}, {200}, {9, 9, 9, 9, 9, 9, 9, 9, 9, 9}};
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<SequenceInput> batch;
  for (const auto& s : seqs) {
    caches.push_back(std::make_unique<KvCache>(model->config()));
    batch.push_back({caches.back().get(), s, false});
  }
  Forward fwd(*model);
  std::vector<float> logits;
  fwd.run(batch, logits);
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_LT(max_abs_diff(&logits[i * test::kTinyVocab], ref.logits(seqs[i]).back()), 1e-4)
        << "sequence " << i;
  }
}

TEST_F(TinyForward, LongPrefillsAfterAPrefixMatchTheReference) {
  // 40 and 70 new tokens take the GEMM attention path, one of them after a cached
  // prefix of 20; a 3-token sequence in the same batch takes the per-row path.
  test::TinyLlamaSpec spec;
  const auto model = Model::load(write(spec, "long.gguf"));
  const RefModel ref{tiny_, spec};
  std::vector<int32_t> a, b;
  for (int i = 0; i < 40; ++i) a.push_back(3 + (i * 37) % 260);
  for (int i = 0; i < 90; ++i) b.push_back(3 + (i * 53 + 11) % 260);
  const std::vector<int32_t> c{7, 8, 9};
  Forward fwd(*model);
  KvCache ca(model->config()), cb(model->config()), cc(model->config());
  std::vector<float> logits;
  SequenceInput prefix{&cb, {b.data(), 20}, false};
  fwd.run({&prefix, 1}, logits);
  std::vector<SequenceInput> batch{{&ca, a, false}, {&cb, {b.data() + 20, 70}, true}, {&cc, c, false}};
  fwd.run(batch, logits);
  const auto want_b = ref.logits(b);
  EXPECT_LT(max_abs_diff(&logits[0], ref.logits(a).back()), 1e-4);
  for (int p = 0; p < 70; ++p) {
    EXPECT_LT(max_abs_diff(&logits[size_t(1 + p) * test::kTinyVocab], want_b[size_t(20 + p)]), 1e-4)
        << "position " << 20 + p;
  }
  EXPECT_LT(max_abs_diff(&logits[71 * size_t(test::kTinyVocab)], ref.logits(c).back()), 1e-4);
}

TEST_F(TinyForward, FirstLogitSkipsTheLeadingRowsOfASequence) {
  test::TinyLlamaSpec spec;
  const auto model = Model::load(write(spec, "first_logit.gguf"));
  const RefModel ref{tiny_, spec};
  std::vector<int32_t> a, b;
  for (int i = 0; i < 30; ++i) a.push_back(3 + (i * 41) % 260);
  for (int i = 0; i < 12; ++i) b.push_back(5 + (i * 19) % 250);
  Forward fwd(*model);
  KvCache ca(model->config()), cb(model->config());
  std::vector<float> logits;
  // a: logits of its last 5 tokens only; b: all of its 12.
  std::vector<SequenceInput> batch{{&ca, a, true, 25}, {&cb, b, true}};
  fwd.run(batch, logits);
  ASSERT_EQ(logits.size(), size_t(5 + 12) * test::kTinyVocab);
  const auto want_a = ref.logits(a), want_b = ref.logits(b);
  for (int p = 0; p < 5; ++p) {
    EXPECT_LT(max_abs_diff(&logits[size_t(p) * test::kTinyVocab], want_a[size_t(25 + p)]), 1e-4)
        << "position " << 25 + p;
  }
  for (int p = 0; p < 12; ++p) {
    EXPECT_LT(max_abs_diff(&logits[size_t(5 + p) * test::kTinyVocab], want_b[size_t(p)]), 1e-4)
        << "position " << p;
  }
  KvCache cc(model->config());
  for (int64_t bad : {int64_t(-1), int64_t(a.size())}) {
    SequenceInput in{&cc, a, true, bad};
    EXPECT_THROW(fwd.run({&in, 1}, logits), t2::Error) << "first_logit " << bad;
    EXPECT_EQ(cc.length(), 0) << "a refused run must not touch the cache";
  }
}

TEST_F(TinyForward, QuantizedKernelsAgreeWithF32Path) {
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
    test::TinyLlamaSpec spec;
    spec.matrix_type = type;
    spec.embd_type = GgmlType::kQ8_0;
    const auto model = Model::load(write(spec, "quant.gguf"));
    const auto want = RefModel{tiny_, spec}.logits(kIds);
    for (int rows_max : {0, 64}) {  // f32 GEMM only, then quantized kernels everywhere
      Forward fwd(*model);
      fwd.set_quantized_rows_max(rows_max);
      KvCache cache(model->config());
      std::vector<float> logits;
      SequenceInput in{&cache, kIds, true};
      fwd.run({&in, 1}, logits);
      for (size_t p = 0; p < kIds.size(); ++p) {
        EXPECT_LT(max_abs_diff(&logits[p * test::kTinyVocab], want[p]), 1e-4)
            << ggml_type_name(type) << " rows_max " << rows_max << " position " << p;
      }
    }
  }
}

TEST_F(TinyForward, GeneratorStopsAndRespectsBudgets) {
  test::TinyLlamaSpec spec;
  const auto model = Model::load(write(spec, "gen.gguf"));
  Generator gen(*model);
  GenerationRequest a;
  a.prompt = {1, 50, 60};
  a.max_tokens = 7;
  a.ignore_stops = true;
  GenerationRequest b = a;
  b.max_tokens = 0;
  GenerationRequest c = a;
  c.ignore_stops = false;
  c.max_tokens = 20;
  // Make c stop on whatever it generates first: its own first greedy token.
  const auto first = gen.generate({a})[0].tokens.front();
  c.stop_ids = {first};
  const auto out = gen.generate({a, b, c});
  EXPECT_EQ(out[0].tokens.size(), 7u);
  EXPECT_EQ(out[0].finish_reason, "length");
  EXPECT_TRUE(out[1].tokens.empty());
  EXPECT_TRUE(out[2].tokens.empty());
  EXPECT_EQ(out[2].finish_reason, "stop");
}

}  // namespace
}  // namespace t2::backbone
