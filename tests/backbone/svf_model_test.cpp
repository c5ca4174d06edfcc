// SVF on the real model (MLP set, cached under the test's build folder): the
// SVD reconstructs every matrix, a uniform z gives the base logits on both
// paths, factored and materialized agree per row, a batch mixing experts equals
// each sequence alone, and an expert written by Python's safetensors loads exactly.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backbone/expert.h"
#include "backbone/forward.h"
#include "backbone/generator.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "tests/backbone/svf_test_util.h"

namespace t2::backbone {
namespace {

const Model& model() {
  static const auto m = Model::load(T2_MODEL_PATH);
  return *m;
}

std::shared_ptr<const Svf> svf() {
  static const auto s = Svf::open(model(), MatrixSet::kMlp, "svf-test-cache");
  return s;
}

Expert random_expert(const std::string& name, uint64_t seed) {
  Expert e = expert_init(*svf(), name, "test", seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.5f);
  for (float& p : e.p) p = n(rng);  // far from uniform, as a trained expert can be
  return e;
}

std::vector<int32_t> chat(const std::string& text) {
  const Tokenizer& tok = model().tokenizer();
  const std::vector<ChatMessage> messages = {{"user", text}};
  return tok.encode(tok.apply_chat_template(messages, true));
}

const std::vector<std::vector<int32_t>>& prompts() {
  static const std::vector<std::vector<int32_t>> p = {
      chat("What is the capital of France?"),
      chat("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. How many clips did she sell altogether?"),
      model().tokenizer().encode("The quick brown fox"),
      chat("Write a haiku about the sea."),
  };
  return p;
}

std::vector<float> logits_alone(const std::vector<int32_t>& tokens, LinearHook* hook) {
  Forward fwd(model());
  KvCache cache(model().config());
  SequenceInput in{&cache, tokens, true};
  std::vector<float> logits;
  fwd.run({&in, 1}, logits, hook);
  return logits;
}

TEST(SvfModel, DecompositionReconstructsEveryMatrix) {
  const Svf& s = *svf();
  std::printf("cache %s (%s)\n", s.cache_path().c_str(),
              s.loaded_from_cache() ? "mapped" : "computed now");
  double worst_abs = 0.0, worst_rel = 0.0;
  for (int slot = 0; slot < s.n_slots(); ++slot) {
    const SvdFactors& f = s.factors(slot);
    const Linear& lin = model().layer(s.layer_of(slot)).matrix(s.kind_of(slot));
    std::vector<float> us(size_t(f.out) * f.rank), w(size_t(lin.size()));
    for (int64_t o = 0; o < f.out; ++o) {
      for (int j = 0; j < f.rank; ++j) us[size_t(o * f.rank + j)] = f.u[o * f.rank + j] * f.s[j];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, f.out, f.in, f.rank, 1.0f, us.data(),
                f.rank, f.vt, f.in, 0.0f, w.data(), f.in);
    const auto e = test::max_error(w, {lin.w, size_t(lin.size())});
    worst_abs = std::max(worst_abs, e.abs);
    worst_rel = std::max(worst_rel, e.rel);
    EXPECT_LT(e.rel, 1e-5) << "slot " << slot;
  }
  std::printf("SVD of %d matrices: max |U S V^T - W| = %.3g (%.3g of max |W|)\n", s.n_slots(),
              worst_abs, worst_rel);
}

TEST(SvfModel, UniformZGivesTheBaseLogits) {
  double worst[2] = {0.0, 0.0};
  for (const auto& p : prompts()) {
    const auto base = logits_alone(p, nullptr);
    for (float zv : {0.5f, 1.0f}) {
      const auto uniform =
          Adapter::from_z(*svf(), std::vector<float>(size_t(svf()->total_rank()), zv));
      for (int k = 0; k < 2; ++k) {
        SvfHookOptions opt;
        opt.path = k == 0 ? SvfPath::kFactored : SvfPath::kMaterialized;
        SvfHook hook(model(), svf(), nullptr, opt);
        hook.set_adapters({uniform});
        const auto e = test::max_error(logits_alone(p, &hook), base);
        worst[k] = std::max(worst[k], e.abs);
      }
    }
  }
  std::printf(
      "uniform z (0.5 and 1), %zu prompts, every position: max |logit - base| = %.3g "
      "factored, %.3g materialized\n",
      prompts().size(), worst[0], worst[1]);
  EXPECT_LT(worst[0], 5e-3);  // U S V^T vs W: f32 rounding of 576-term sums, 30 layers
  EXPECT_LT(worst[1], 5e-3);
}

TEST(SvfModel, FactoredAndMaterializedAgreePerRow) {
  const Svf& s = *svf();
  std::vector<Expert> experts;
  std::vector<std::shared_ptr<const Adapter>> adapters;
  for (int k = 0; k < 3; ++k) experts.push_back(random_expert("e" + std::to_string(k), 40 + k));
  for (const Expert& e : experts) adapters.push_back(Adapter::from_expert(s, e));
  const std::vector<int32_t> row_seq = {0, 0, 0, 1, 1, 2, 2, 2, 2, 0};
  const int64_t n = int64_t(row_seq.size());
  SvfHookOptions fo, mo;
  fo.path = SvfPath::kFactored;
  mo.path = SvfPath::kMaterialized;
  SvfHook factored(model(), svf(), nullptr, fo), materialized(model(), svf(), nullptr, mo);
  factored.set_adapters(adapters);
  materialized.set_adapters(adapters);
  std::mt19937_64 rng(9);
  std::normal_distribution<float> normal;
  double worst = 0.0;
  for (int slot = 0; slot < s.n_slots(); slot += 7) {
    const SvdFactors& f = s.factors(slot);
    const Linear& lin = model().layer(s.layer_of(slot)).matrix(s.kind_of(slot));
    std::vector<float> x(size_t(n * f.in)), yf(size_t(n * f.out)), ym(size_t(n * f.out));
    for (float& v : x) v = normal(rng);
    factored.apply(s.layer_of(slot), s.kind_of(slot), lin, x.data(), n, row_seq, yf.data());
    materialized.apply(s.layer_of(slot), s.kind_of(slot), lin, x.data(), n, row_seq, ym.data());
    for (int64_t r = 0; r < n; ++r) {
      const auto e = test::max_error({&yf[size_t(r * f.out)], size_t(f.out)},
                                     {&ym[size_t(r * f.out)], size_t(f.out)});
      worst = std::max(worst, e.rel);
    }
  }
  std::printf("factored vs materialized, 3 experts, 13 slots: max rel error per row = %.3g\n",
              worst);
  EXPECT_LT(worst, 2e-5);
}

TEST(SvfModel, MixedBatchEqualsEachSequenceAlone) {
  const Svf& s = *svf();
  std::vector<Expert> experts;
  for (int k = 0; k < 4; ++k) experts.push_back(random_expert("m" + std::to_string(k), 60 + k));
  std::vector<float> slot_alpha(size_t(s.n_slots()));
  for (size_t i = 0; i < slot_alpha.size(); ++i) slot_alpha[i] = float(i % 3) / 2.0f;
  const AdapterTerm terms[] = {{&experts[1], 0.5f, {}}, {&experts[3], 0.9f, slot_alpha}};
  const std::vector<std::shared_ptr<const Adapter>> adapters = {
      Adapter::from_expert(s, experts[0]), Adapter::from_expert(s, experts[1]),
      Adapter::mixture(s, terms),          nullptr,
      Adapter::from_expert(s, experts[2]), Adapter::from_expert(s, experts[3])};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < adapters.size(); ++i) {
    GenerationRequest r;
    r.prompt = prompts()[i % prompts().size()];
    r.max_tokens = 12;
    r.ignore_stops = true;  // all stay in the batch: sequence i is request i
    requests.push_back(r);
  }

  // Logits of the prompts: the whole batch in one pass against each alone.
  SvfHook hook(model(), svf());
  hook.set_adapters(adapters);
  Forward fwd(model());
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<SequenceInput> batch;
  for (const auto& r : requests) {
    caches.push_back(std::make_unique<KvCache>(model().config()));
    batch.push_back({caches.back().get(), r.prompt, false});
  }
  std::vector<float> logits;
  fwd.run(batch, logits, &hook);
  const size_t V = size_t(model().config().n_vocab);
  double worst = 0.0, moved = 0.0;
  const auto base_last = logits_alone(requests[0].prompt, nullptr);
  for (size_t i = 0; i < requests.size(); ++i) {
    SvfHook alone(model(), svf());
    alone.set_adapters({adapters[i]});
    const auto own = logits_alone(requests[i].prompt, &alone);
    const std::span<const float> last(&own[own.size() - V], V);
    worst = std::max(worst, test::max_error({&logits[i * V], V}, last).abs);
    if (i == 0) moved = test::max_error(last, {&base_last[base_last.size() - V], V}).abs;
  }
  std::printf(
      "6 sequences, 4 experts + a mixture + base: max |logit batch - alone| = %.3g "
      "(expert 0 moves the logits by up to %.3g from the base)\n",
      worst, moved);
  EXPECT_LT(worst, 2e-3);
  EXPECT_GT(moved, 0.5);  // the experts really adapt the model

  // Greedy continuations through the Generator: the same tokens either way.
  Generator gen(model());
  SvfHook gen_hook(model(), svf());
  gen_hook.set_adapters(adapters);
  const auto together = gen.generate(requests, &gen_hook);
  int same = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    SvfHook alone(model(), svf());
    alone.set_adapters({adapters[i]});
    const auto own = gen.generate({requests[i]}, &alone);
    same += own[0].tokens == together[i].tokens;
    EXPECT_EQ(own[0].tokens, together[i].tokens) << "sequence " << i;
  }
  std::printf("greedy 12-token continuations identical for %d of %zu sequences\n", same,
              requests.size());
}

TEST(SvfModel, ExpertWrittenByPythonLoadsExactly) {
  const Svf& s = *svf();
  const Expert e =
      expert_load(T2_SOURCE_DIR "/tests/reference/svf_expert_reference.safetensors", s);
  EXPECT_EQ(e.name, "python-fixture");
  EXPECT_EQ(e.task, "gsm8k");
  EXPECT_EQ(e.validation_accuracy, 0.625);
  EXPECT_EQ(e.training["steps"], 3);
  EXPECT_EQ(e.created, "2025-01-01T00:00:00Z");
  int64_t mismatches = 0;
  for (int slot = 0; slot < s.n_slots(); ++slot) {
    for (int j = 0; j < s.factors(slot).rank; ++j) {
      float want = float((int64_t(j) * 7919 + int64_t(slot) * 104729) % 2001 - 1000) / 1024.0f;
      if (slot == 0 && j < 5) {
        const float specials[5] = {-0.0f, 1e-40f, 3.4028234663852886e38f, -1.1754943508222875e-38f,
                                   0.1f};
        want = specials[j];
      }
      const float got = e.p[size_t(s.offset(slot) + j)];
      mismatches += std::memcmp(&want, &got, 4) != 0;
    }
  }
  std::printf("Python-written expert: %lld of %lld values differ bitwise\n", (long long)mismatches,
              (long long)s.total_rank());
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace t2::backbone
