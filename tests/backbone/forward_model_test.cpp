// The forward pass on the real model against Hugging Face transformers (f32, same
// GGUF; tests/reference/make_logits_reference.py): logits of the last position,
// top-1 agreement at every position, and 64-token greedy continuations.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "backbone/forward.h"
#include "backbone/generator.h"
#include "backbone/model.h"
#include "t2/error.h"

namespace t2::backbone {
namespace {

struct Reference {
  nlohmann::json cases;
  int vocab = 0;
  std::vector<float> last_logits;  // [cases x vocab]
};

const Reference& reference() {
  static const Reference ref = [] {
    Reference r;
    std::ifstream js(T2_SOURCE_DIR "/tests/reference/logits_reference.json");
    const auto doc = nlohmann::json::parse(js);
    r.cases = doc["cases"];
    r.vocab = doc["vocab"];
    std::ifstream bin(T2_SOURCE_DIR "/tests/reference/logits_reference.bin", std::ios::binary);
    r.last_logits.resize(r.cases.size() * size_t(r.vocab));
    bin.read(reinterpret_cast<char*>(r.last_logits.data()),
             std::streamsize(r.last_logits.size() * sizeof(float)));
    return r;
  }();
  return ref;
}

const Model& model() {
  static const auto m = Model::load(T2_MODEL_PATH);
  return *m;
}

TEST(ForwardModel, LogitsMatchTransformers) {
  const Reference& ref = reference();
  ASSERT_GE(ref.cases.size(), 5u);
  Forward fwd(model());
  int64_t agree = 0, positions = 0;
  double worst = 0.0;
  for (size_t c = 0; c < ref.cases.size(); ++c) {
    const auto ids = ref.cases[c]["ids"].get<std::vector<int32_t>>();
    const auto argmax_ref = ref.cases[c]["argmax"].get<std::vector<int32_t>>();
    KvCache cache(model().config());
    std::vector<float> logits;
    SequenceInput in{&cache, ids, true};
    fwd.run({&in, 1}, logits);
    ASSERT_EQ(logits.size(), ids.size() * size_t(ref.vocab));

    for (size_t p = 0; p < ids.size(); ++p) {
      agree += argmax({&logits[p * size_t(ref.vocab)], size_t(ref.vocab)}) == argmax_ref[p];
      ++positions;
    }
    const float* ours = &logits[(ids.size() - 1) * size_t(ref.vocab)];
    const float* theirs = &ref.last_logits[c * size_t(ref.vocab)];
    double max_abs = 0.0;
    for (int v = 0; v < ref.vocab; ++v) max_abs = std::max(max_abs, double(std::fabs(ours[v] - theirs[v])));
    worst = std::max(worst, max_abs);
    std::printf("case %zu: %zu tokens, last-position max |dlogit| = %.3g\n", c, ids.size(),
                max_abs);
    EXPECT_LT(max_abs, 2e-2) << "case " << c;
  }
  std::printf("top-1 agreement %lld / %lld positions, worst max |dlogit| %.3g\n",
              (long long)agree, (long long)positions, worst);
  // f32 rounding may flip a near-tie; anything more is a bug.
  EXPECT_GE(double(agree), 0.99 * double(positions));
}

TEST(ForwardModel, GreedyContinuationsMatchTransformers) {
  const Reference& ref = reference();
  std::vector<GenerationRequest> reqs;
  for (const auto& c : ref.cases) {
    GenerationRequest r;
    r.prompt = c["ids"].get<std::vector<int32_t>>();
    r.max_tokens = 64;
    r.ignore_stops = true;
    reqs.push_back(r);
  }
  // All prompts in one batch: also checks that sequences do not disturb each other.
  Generator gen(model());
  const auto results = gen.generate(reqs);
  for (size_t c = 0; c < reqs.size(); ++c) {
    const auto expected = ref.cases[c]["greedy64"].get<std::vector<int32_t>>();
    EXPECT_EQ(results[c].tokens, expected) << "case " << c << ": " << results[c].text;
  }
}

TEST(ForwardModel, BatchedEqualsAlone) {
  const Reference& ref = reference();
  Generator gen(model());
  std::vector<GenerationRequest> reqs;
  for (size_t c = 0; c < 3; ++c) {
    GenerationRequest r;
    r.prompt = ref.cases[c]["ids"].get<std::vector<int32_t>>();
    r.max_tokens = 16;
    r.sampling = {0.8f, 0.9f, 1234 + c};
    reqs.push_back(r);
  }
  const auto together = gen.generate(reqs);
  for (size_t c = 0; c < reqs.size(); ++c) {
    const auto alone = gen.generate({reqs[c]});
    EXPECT_EQ(alone[0].tokens, together[c].tokens) << "case " << c;
  }
}

TEST(ForwardModel, CapitalOfFranceIsParis) {
  const Tokenizer& tok = model().tokenizer();
  std::vector<ChatMessage> chat{{"user", "What is the capital of France?"}};
  GenerationRequest r;
  r.prompt = tok.encode(tok.apply_chat_template(chat, true));
  r.max_tokens = 32;
  Generator gen(model());
  const auto out = gen.generate({r});
  EXPECT_NE(out[0].text.find("Paris"), std::string::npos) << out[0].text;
  EXPECT_EQ(out[0].finish_reason, "stop");
}

TEST(ForwardModel, RejectsBadInputBeforeWork) {
  Generator gen(model());
  GenerationRequest empty;
  EXPECT_THROW(gen.generate({empty}), Error);
  GenerationRequest bad_id;
  bad_id.prompt = {1, 999999};
  EXPECT_THROW(gen.generate({bad_id}), Error);
  GenerationRequest too_long;
  too_long.prompt.assign(size_t(model().config().n_ctx), 42);
  too_long.max_tokens = 1;
  EXPECT_THROW(gen.generate({too_long}), Error);
}

}  // namespace
}  // namespace t2::backbone
