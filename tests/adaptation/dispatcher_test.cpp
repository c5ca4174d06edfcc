// Dispatch and few-shot mixing: \boxed parsing and --adapt specs, CEM on a
// synthetic fitness with a known optimum, mixture-file validation (another
// model, another expert set, a changed expert file, bad weights), and both
// passes of prompt dispatch plus the log-likelihood fitness on a tiny model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "adaptation/cem.h"
#include "adaptation/dispatch_task.h"
#include "adaptation/dispatcher.h"
#include "adaptation/fewshot.h"
#include "adaptation/mixture.h"
#include "adaptation/registry.h"
#include "backbone/forward.h"
#include "backbone/kv_cache.h"
#include "backbone/svf_hook.h"
#include "t2/error.h"
#include "tests/backbone/tiny_gguf.h"

namespace t2::adaptation {
namespace {

std::string temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("t2_dispatch_" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Dispatch, ParsesFirstBoxedWord) {
  EXPECT_EQ(parse_boxed("Classification: \\boxed{Math}"), "math");
  EXPECT_EQ(parse_boxed("\\boxed{ code } then \\boxed{math}"), "code");
  EXPECT_EQ(parse_boxed("no box here"), "");
  EXPECT_EQ(parse_boxed("\\boxed{unclosed"), "");
  EXPECT_EQ(parse_boxed("\\boxed{}"), "");
}

TEST(Dispatch, ParsesAdaptSpecs) {
  EXPECT_EQ(parse_adapt("none").strategy, Strategy::kNone);
  EXPECT_EQ(parse_adapt("prompt").strategy, Strategy::kPrompt);
  EXPECT_EQ(parse_adapt("classifier").strategy, Strategy::kClassifier);
  EXPECT_EQ(parse_adapt("expert:gsm8k").argument, "gsm8k");
  EXPECT_EQ(parse_adapt("mix:a.json").strategy, Strategy::kMix);
  expect_error([] { parse_adapt("expert:"); }, "expected none, prompt");
  expect_error([] { parse_adapt("promt"); }, "expected none, prompt");
}

// f(x, y) = -(x - 0.3)^2 - (y - 0.8)^2 has its maximum 0 at (0.3, 0.8), inside [0, 1]^2.
TEST(Cem, FindsKnownOptimumAndNeverGetsWorse) {
  int calls = 0;
  auto fitness = [&](const std::vector<std::vector<float>>& pop) {
    ++calls;
    std::vector<double> f;
    for (const auto& p : pop) f.push_back(-std::pow(p[0] - 0.3, 2) - std::pow(p[1] - 0.8, 2));
    return f;
  };
  CemOptions o;
  o.generations = 30;
  const auto r = cem_search(2, fitness, o);
  EXPECT_EQ(calls, 30);  // one call per generation: the whole population at once
  EXPECT_EQ(r.evaluations, 30 * 32);
  EXPECT_NEAR(r.best[0], 0.3, 0.02);
  EXPECT_NEAR(r.best[1], 0.8, 0.02);
  for (size_t g = 1; g < r.best_per_generation.size(); ++g)
    EXPECT_GE(r.best_per_generation[g], r.best_per_generation[g - 1]);
}

// An optimum outside the box lands on the boundary (samples are clamped).
TEST(Cem, ClampsToBox) {
  auto fitness = [](const std::vector<std::vector<float>>& pop) {
    std::vector<double> f;
    for (const auto& p : pop) f.push_back(-std::pow(p[0] - 2.0, 2));
    return f;
  };
  const auto r = cem_search(1, fitness, {});
  EXPECT_FLOAT_EQ(r.best[0], 1.0f);
}

// A spike at the corner (0, 0) that samples around the initial mean 0.5 almost
// never hit: given as an initial point, generation 1 evaluates it and it wins.
TEST(Cem, InitialPointsAreEvaluatedFirst) {
  std::vector<std::vector<float>> first_generation;
  auto fitness = [&](const std::vector<std::vector<float>>& pop) {
    if (first_generation.empty()) first_generation = pop;
    std::vector<double> f;
    for (const auto& p : pop) f.push_back(p[0] == 0.0f && p[1] == 0.0f ? 1.0 : -p[0] - p[1] + 0.5);
    return f;
  };
  CemOptions o = cem_preset("small");
  o.initial_points = {{0.0f, 0.0f}, {0.7f, 3.0f}};  // the second is clamped into the box
  const auto r = cem_search(2, fitness, o);
  ASSERT_EQ(first_generation.size(), 8u);
  EXPECT_EQ(first_generation[0], (std::vector<float>{0.0f, 0.0f}));
  EXPECT_EQ(first_generation[1], (std::vector<float>{0.7f, 1.0f}));
  EXPECT_EQ(r.best, (std::vector<float>{0.0f, 0.0f}));
  EXPECT_DOUBLE_EQ(r.best_fitness, 1.0);
  ASSERT_EQ(r.initial_fitness.size(), 2u);
  EXPECT_DOUBLE_EQ(r.initial_fitness[0], 1.0);
  EXPECT_NEAR(r.initial_fitness[1], -0.7 - 1.0 + 0.5, 1e-6);

  o.initial_points = {{0.0f}};
  expect_error([&] { cem_search(2, fitness, o); }, "dimension");
  o.initial_points.assign(9, {0.0f, 0.0f});
  expect_error([&] { cem_search(2, fitness, o); }, "population");
}

TEST(Cem, PresetsAreTheMethodNotesReferenceAndASmallOne) {
  const auto ref = cem_preset("reference");  // docs/method.md §3
  EXPECT_EQ(ref.population, 32);
  EXPECT_EQ(ref.elites, 6);
  EXPECT_EQ(ref.generations, 50);
  EXPECT_DOUBLE_EQ(ref.init_std, 0.5);
  EXPECT_DOUBLE_EQ(ref.lo, 0.0);
  EXPECT_DOUBLE_EQ(ref.hi, 1.0);
  const auto small = cem_preset("small");
  EXPECT_EQ(small.population, 8);
  EXPECT_EQ(small.elites, 3);
  EXPECT_EQ(small.generations, 4);
  expect_error([] { cem_preset("huge"); }, "unknown");
}

TEST(Cem, RejectsBadSettings) {
  auto f = [](const std::vector<std::vector<float>>& p) { return std::vector<double>(p.size()); };
  CemOptions o;
  o.elites = 40;
  expect_error([&] { cem_search(2, f, o); }, "elites");
  expect_error([&] { cem_search(0, f, {}); }, "dimension");
}

struct TinySetup {
  std::shared_ptr<const backbone::Model> model;
  std::shared_ptr<const backbone::Svf> svf;
  std::string dir;
};

const TinySetup& tiny() {
  static TinySetup t = [] {
    TinySetup s;
    s.dir = temp_dir();
    test::TinyLlamaSpec spec;
    spec.n_ctx = 1024;  // room for the classification prompt (~280 byte tokens)
    test::write_tiny_llama(s.dir + "/tiny.gguf", spec);
    s.model = backbone::Model::load(s.dir + "/tiny.gguf");
    s.svf = backbone::Svf::open(*s.model, backbone::MatrixSet::kMlp, "");
    return s;
  }();
  return t;
}

Mixture sample_mixture(const TinySetup& t) {
  Mixture m;
  m.task = "arc_challenge";
  m.model_sha256 = t.svf->model_sha256();
  m.set = backbone::MatrixSet::kMlp;
  for (const char* name : {"math", "code"}) {
    const auto path = t.dir + "/" + name + ".safetensors";
    backbone::expert_save(path, backbone::expert_init(*t.svf, name, "gsm8k", 3), *t.svf);
    m.experts.push_back({name, path, backbone::file_sha256(path)});
  }
  m.alpha = {0.25f, 0.75f};
  return m;
}

void edit(const std::string& path, const std::function<void(nlohmann::json&)>& f) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(path));
  f(j);
  std::ofstream(path) << j.dump();
}

TEST(Mixture, RoundTripsAndRejectsMismatches) {
  const auto& t = tiny();
  const Mixture m = sample_mixture(t);
  const auto path = t.dir + "/mix.json";
  mixture_save(path, m);
  const auto back = mixture_load(path, *t.svf, {"code", "math"});
  EXPECT_EQ(back.alpha, m.alpha);
  EXPECT_EQ(back.experts.size(), 2u);

  expect_error([&] { mixture_load(path, *t.svf, {"math", "sst2"}); }, "registered");
  expect_error([&] { mixture_load(t.dir + "/nope.json", *t.svf); }, "cannot open");

  edit(path, [](auto& j) { j["model_sha256"] = "00ff"; });
  expect_error([&] { mixture_load(path, *t.svf); }, "made for model");
  mixture_save(path, m);
  edit(path, [](auto& j) { j["alpha"] = {0.5}; });
  expect_error([&] { mixture_load(path, *t.svf); }, "1 alphas for 2 experts");
  mixture_save(path, m);
  edit(path, [](auto& j) { j["alpha"] = {0.5, -1.0}; });
  expect_error([&] { mixture_load(path, *t.svf); }, ">= 0");
  mixture_save(path, m);
  edit(path, [](auto& j) { j.erase("experts"); });
  expect_error([&] { mixture_load(path, *t.svf); }, "missing or mistyped");

  mixture_save(path, m);
  backbone::expert_save(m.experts[0].path, backbone::expert_init(*t.svf, "math", "gsm8k", 9),
                        *t.svf);
  expect_error([&] { mixture_load(path, *t.svf); }, "changed since");
}

// A dispatcher over two random experts, "math" and "code", on the tiny model.
Dispatcher math_code_dispatcher(const TinySetup& t, DispatchOptions options) {
  auto math = std::make_shared<backbone::Expert>(
      backbone::expert_init(*t.svf, "math", "gsm8k", 1));
  auto code = std::make_shared<backbone::Expert>(
      backbone::expert_init(*t.svf, "code", "mbpp", 2));
  return Dispatcher(t.model, t.svf,
                    {{"math", "math", "word problems", math}, {"code", "code", "python", code}},
                    options);
}

TEST(Dispatch, PromptDispatchOnTinyModelReturnsDecisions) {
  const auto& t = tiny();
  Dispatcher d = math_code_dispatcher(t, {4, 8});
  EXPECT_EQ(d.categories(), (std::vector<std::string>{"math", "code", "other"}));
  // Unknown classes run the base weights, never the last expert used.
  EXPECT_EQ(d.decision_for_category(Strategy::kPrompt, "poetry").adapter, nullptr);
  EXPECT_NE(d.decision_for_category(Strategy::kPrompt, "math").adapter, nullptr);

  const std::vector<std::string> texts = {"1+1?", "write f()", "hello", "x", "y"};
  auto decisions = d.decide({Strategy::kPrompt, ""}, texts);
  ASSERT_EQ(decisions.size(), texts.size());
  for (const auto& dec : decisions) {
    EXPECT_EQ(dec.strategy, Strategy::kPrompt);
    EXPECT_GT(dec.pass1_seconds, 0.0);
  }
  // Pass 2 with a mix of decisions: base, math, code.
  decisions[0] = d.decision_for_category(Strategy::kPrompt, "math");
  decisions[1] = d.decision_for_category(Strategy::kPrompt, "code");
  std::vector<backbone::GenerationRequest> reqs(texts.size());
  for (auto& r : reqs) {
    r.prompt = {1, 40, 50, 60};
    r.max_tokens = 3;
    r.ignore_stops = true;
    r.sampling = {0.0f, 1.0f, 0};
  }
  const auto out = d.answer(reqs, decisions);
  ASSERT_EQ(out.size(), texts.size());
  for (const auto& o : out) EXPECT_EQ(o.tokens.size(), 3u);

  expect_error([&] { d.decide({Strategy::kPrompt, ""}, std::vector<std::string>{""}); },
               "empty");
  expect_error([&] { d.decide({Strategy::kExpert, "poetry"}, texts); }, "unknown expert");
  expect_error([&] { d.decide({Strategy::kPrompt, ""}, std::vector<std::string>{
                                                         std::string(2000, 'x')}); },
               "exceeds the context");
  expect_error([&] { d.decide({Strategy::kClassifier, ""}, texts); }, "classification expert");
}

// Pass 1's class probabilities, from the batched prompt-then-labels scoring with
// cache rewinds, equal a one-sequence-at-a-time reference: the whole text
// (prompt, answer prefix, label) run fresh, its label tokens' log-softmax summed
// (reference_scores), then normalized over the categories. Base weights for
// prompt dispatch, the classification expert's adapter for the classifier strategy.
std::vector<std::vector<double>> reference_scores(
    const TinySetup& t, const Dispatcher& d, std::span<const std::string> texts,
    std::shared_ptr<const backbone::Adapter> adapter) {
  const auto& tok = t.model->tokenizer();
  backbone::SvfHook hook(*t.model, t.svf);
  std::vector<std::vector<double>> out;
  for (const auto& text : texts) {
    const auto prompt = tok.encode(
        tok.apply_chat_template(d.classification_prompt(text), true) + kClassifyAnswerPrefix);
    std::vector<double> ll;
    for (const auto& c : d.categories()) {
      const auto label = tok.encode(c + "}");
      auto seq = prompt;
      seq.insert(seq.end(), label.begin(), label.end());
      backbone::KvCache cache(t.model->config(), int(seq.size()));
      backbone::Forward f(*t.model);
      std::vector<float> logits;
      std::vector<backbone::SequenceInput> in = {{&cache, seq, true}};
      if (adapter) hook.set_adapters({adapter});
      f.run(in, logits, adapter ? &hook : nullptr);
      const int vocab = tok.vocab_size();
      double sum_ll = 0.0;
      for (size_t a = 0; a < label.size(); ++a) {
        const float* row = logits.data() + int64_t(prompt.size() - 1 + a) * vocab;
        double z = 0.0;
        for (int v = 0; v < vocab; ++v) z += std::exp(double(row[v]));
        sum_ll += double(row[label[a]]) - std::log(z);
      }
      ll.push_back(sum_ll);
    }
    out.push_back(ll);
  }
  return out;
}

// softmax(scores - prior), by hand.
std::vector<double> normalized(std::vector<double> scores, const std::vector<double>& prior) {
  double z = 0.0;
  for (size_t c = 0; c < scores.size(); ++c) z += std::exp(scores[c] - prior[c]);
  for (size_t c = 0; c < scores.size(); ++c) scores[c] = std::exp(scores[c] - prior[c]) / z;
  return scores;
}

TEST(Dispatch, ClassProbabilitiesMatchOneSequenceReference) {
  const auto& t = tiny();
  auto classifier = std::make_shared<backbone::Expert>(
      backbone::expert_init(*t.svf, "dispatch", "dispatch", 7));
  const std::vector<std::string> texts = {"What is 12 times 7?", "write a sort function", "hi"};
  // Prompt dispatch without and with calibration (the prior: the scores of "N/A"),
  // then the classifier (never calibrated).
  for (const auto& [s, calibrate] : {std::pair{Strategy::kPrompt, false},
                                     std::pair{Strategy::kPrompt, true},
                                     std::pair{Strategy::kClassifier, true}}) {
    SCOPED_TRACE(std::string(strategy_name(s)) + (calibrate ? " calibrated" : ""));
    // Batches of 2: three requests make a full and a partial batch.
    Dispatcher d = math_code_dispatcher(t, {2, 8, calibrate});
    d.set_classifier(classifier);
    const auto decisions = d.decide({s, ""}, texts);
    const auto adapter =
        s == Strategy::kClassifier ? backbone::Adapter::from_expert(*t.svf, *classifier) : nullptr;
    const auto scores = reference_scores(t, d, texts, adapter);
    std::vector<double> prior(3, 0.0);
    if (s == Strategy::kPrompt && calibrate)
    {
      prior = reference_scores(t, d, std::vector<std::string>{"N/A"}, nullptr)[0];
      // The prior differs between categories, so calibration changes the answer.
      EXPECT_GT(std::abs(prior[1] - prior[0]) + std::abs(prior[2] - prior[0]), 1e-3);
    }
    std::vector<std::vector<double>> ref;
    for (const auto& sc : scores) ref.push_back(normalized(sc, prior));
    ASSERT_EQ(decisions.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto& probs = decisions[i].class_probabilities;
      ASSERT_EQ(probs.size(), 3u);
      double sum = 0.0;
      size_t arg = 0;
      for (size_t c = 0; c < probs.size(); ++c) {
        EXPECT_EQ(probs[c].first, d.categories()[c]);
        EXPECT_NEAR(probs[c].second, ref[i][c], 1e-4) << texts[i] << " / " << probs[c].first;
        sum += probs[c].second;
        if (probs[c].second > probs[arg].second) arg = c;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      EXPECT_EQ(decisions[i].category, d.categories()[arg]);
      EXPECT_EQ(decisions[i].first_pass_text,
                std::string(kClassifyAnswerPrefix) + d.categories()[arg] + "}");
      EXPECT_EQ(decisions[i].adapter == nullptr, d.categories()[arg] == "other");
    }
  }
}

// The population's fitness in one batch equals each member scored alone.
TEST(FewShot, BatchedFitnessMatchesOneByOne) {
  const auto& t = tiny();
  std::vector<std::shared_ptr<const backbone::Expert>> ex = {
      std::make_shared<backbone::Expert>(backbone::expert_init(*t.svf, "a", "gsm8k", 4)),
      std::make_shared<backbone::Expert>(backbone::expert_init(*t.svf, "b", "gsm8k", 5))};
  std::vector<Example> shots(3);
  for (int i = 0; i < 3; ++i) {
    shots[size_t(i)].id = std::to_string(i);
    shots[size_t(i)].messages = {{"user", "question " + std::to_string(i)}};
    shots[size_t(i)].reference = i == 1 ? "B" : "42";
  }
  ShotScorer s(t.model, t.svf, ex, shots);
  const std::vector<std::vector<float>> pop = {{0.f, 0.f}, {1.f, 0.f}, {0.3f, 0.9f}};
  const auto all = s.score(pop);
  ASSERT_EQ(all.size(), 3u);
  double max_err = 0.0;
  for (size_t m = 0; m < pop.size(); ++m) {
    const double one = s.score({pop[m]})[0];
    EXPECT_LT(one, 0.0);
    max_err = std::max(max_err, std::abs(one - all[m]));
  }
  std::printf("batched vs one-by-one fitness: max abs err %.3g\n", max_err);
  EXPECT_LT(max_err, 1e-3);

  // Independent reference for each member: every shot alone, logits of every
  // position, the answer's tokens read off by hand.
  const auto& tok = t.model->tokenizer();
  const int vocab = tok.vocab_size();
  for (size_t m = 0; m < pop.size(); ++m) {
    backbone::SvfHook hook(*t.model, t.svf, nullptr, {backbone::SvfPath::kFactored});
    hook.set_adapters({s.adapter(pop[m])});
    double fitness = 0.0;
    for (const auto& shot : shots) {
      const auto prompt = tok.encode(tok.apply_chat_template(shot.messages, true));
      const auto answer = tok.encode(shot.reference + "<|im_end|>");
      std::vector<int32_t> seq = prompt;
      seq.insert(seq.end(), answer.begin(), answer.end());
      backbone::KvCache cache(t.model->config(), int(seq.size()));
      std::vector<float> logits;
      backbone::SequenceInput in{&cache, seq, true};
      backbone::Forward(*t.model).run({&in, 1}, logits, &hook);
      double lp = 0.0;
      for (size_t a = 0; a < answer.size(); ++a) {
        const float* row = logits.data() + (prompt.size() - 1 + a) * size_t(vocab);
        double z = 0.0;
        for (int v = 0; v < vocab; ++v) z += std::exp(double(row[v]));
        lp += double(row[answer[a]]) - std::log(z);
      }
      fitness += lp / double(answer.size()) / double(shots.size());
    }
    EXPECT_NEAR(all[m], fitness, 1e-3) << "member " << m;
  }

  // The search scores the base weights (all alphas 0) first, then the caller's points.
  CemOptions o = cem_preset("small");
  o.generations = 1;
  o.initial_points = {pop[2]};
  const auto r = s.search(o);
  ASSERT_EQ(r.initial_fitness.size(), 2u);
  EXPECT_NEAR(r.initial_fitness[0], s.score({{0.f, 0.f}})[0], 1e-6);
  EXPECT_NEAR(r.initial_fitness[1], all[2], 1e-3);
  EXPECT_GE(r.best_fitness, r.initial_fitness[0]);
}

TaskPaths source_tasks() { return {std::string(T2_SOURCE_DIR) + "/configs/tasks", ""}; }

// The dispatch task's prompts are the Dispatcher's own, its answers the exact
// category, train from even and validation from odd indices, classes interleaved.
TEST(DispatchTask, UsesTheDispatchersPromptAndTheTasksSplits) {
  const auto& t = tiny();
  const Task gsm = Task::load("gsm8k", source_tasks());
  const Task arc = Task::load("arc_easy", source_tasks());
  auto e = std::make_shared<backbone::Expert>(backbone::expert_init(*t.svf, "m", "gsm8k", 1));
  Dispatcher d(t.model, t.svf, {{"gsm8k", " Math", "word problems", e},
                                {"arc_easy", "reasoning", "science quiz", e}});
  const DispatchSource sources[] = {{&gsm, "Math"}, {&arc, "reasoning"}};
  const Task task = dispatch_task(d.dispatch_categories(), sources, 3);
  EXPECT_EQ(task.name(), "dispatch");
  EXPECT_EQ(task.answer_kind(), AnswerKind::kBoxed);
  EXPECT_EQ(task.max_new_tokens(), DispatchOptions{}.classify_max_tokens);

  const auto train = task.examples(Split::kTrain);
  const auto val = task.examples(Split::kValidation);
  ASSERT_EQ(train.size(), 6u);
  ASSERT_EQ(val.size(), 6u);
  const auto gsm_train = gsm.examples(Split::kTrain);
  const auto arc_val = arc.examples(Split::kValidation);
  for (size_t i = 0; i < train.size(); ++i) {
    EXPECT_EQ(train[i].reference, i % 2 == 0 ? "math" : "reasoning");
    EXPECT_EQ(train[i].index % 2, 0) << train[i].id;
    EXPECT_EQ(val[i].index % 2, 1) << val[i].id;
  }
  // Literally the prompt the Dispatcher sends in pass 1 for the same request.
  const auto want = d.classification_prompt(dispatch_request_text(gsm_train[1]));
  ASSERT_EQ(train[2].messages.size(), want.size());
  EXPECT_EQ(train[2].messages[0].content, want[0].content);
  EXPECT_EQ(val[1].messages[0].content,
            d.classification_prompt(dispatch_request_text(arc_val[0]))[0].content);

  // The answer starts as pass 1 scores it, after "Classification: \\boxed{"; the
  // reward reads the first boxed word, as the Dispatcher parses it.
  for (const auto& ex : train) EXPECT_EQ(ex.answer_prefix, kClassifyAnswerPrefix);
  const auto& tok = t.model->tokenizer();
  EXPECT_EQ(prompt_ids(tok, train[0]),
            tok.encode(tok.apply_chat_template(train[0].messages, true) + kClassifyAnswerPrefix));
  EXPECT_TRUE(task.score(train[0], " Math }").correct);
  EXPECT_TRUE(task.score(train[0], "math} because it adds").correct);
  EXPECT_FALSE(task.score(train[0], "reasoning}").correct);
  EXPECT_FALSE(task.score(train[0], "math").correct);  // never closed

  EXPECT_EQ(classifier_categories({{"task_metadata", task.metadata()}}), d.dispatch_categories());

  const DispatchSource bad[] = {{&gsm, "poetry"}};
  expect_error([&] { dispatch_task(d.dispatch_categories(), bad); }, "no category");
  const DispatchCategory twice[] = {{"math", "a"}, {"Math", "b"}};
  expect_error([&] { dispatch_task(twice, sources); }, "given twice");
}

// A classifier trained for other categories (or another order) is refused.
TEST(Dispatch, RefusesAClassifierOfOtherCategories) {
  const auto& t = tiny();
  auto e = std::make_shared<backbone::Expert>(backbone::expert_init(*t.svf, "m", "gsm8k", 1));
  Dispatcher d(t.model, t.svf, {{"m", "math", "word problems", e}, {"c", "code", "python", e}});
  auto cls = std::make_shared<backbone::Expert>(backbone::expert_init(*t.svf, "cls", "dispatch", 2));
  cls->training["task_metadata"]["dispatch_categories"] = {
      {{"name", "code"}, {"description", "python"}}, {{"name", "math"}, {"description", "word problems"}}};
  expect_error([&] { d.set_classifier(cls); }, "trained for categories [code, math]");
  cls->training["task_metadata"]["dispatch_categories"] = {
      {{"name", "math"}, {"description", "word problems"}}, {{"name", "code"}, {"description", "python"}}};
  d.set_classifier(cls);
  const auto decisions = d.decide({Strategy::kClassifier, ""}, std::vector<std::string>{"2+2?"});
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0].strategy, Strategy::kClassifier);
}

// Registered experts vs a mixture file: unknown names, another expert set,
// another file under the same name, another model.
TEST(Dispatch, BadExpertsAndMixturesGiveClearErrors) {
  const auto& t = tiny();
  const std::string dir = t.dir + "/reg";
  std::filesystem::create_directories(dir);
  const TaskPaths paths = source_tasks();
  for (const auto& [name, task, seed] : {std::tuple{"math", "gsm8k", 1}, {"code", "mbpp", 2},
                                         {"other_math", "gsm8k", 3}})
    backbone::expert_save(dir + "/" + name + ".safetensors",
                          backbone::expert_init(*t.svf, name, task, uint64_t(seed)), *t.svf);
  expect_error([&] { load_experts({"math", "poetry"}, dir, *t.svf, paths); },
               "unknown expert 'poetry'");
  const auto experts = load_experts({"math", "code"}, dir, *t.svf, paths);
  EXPECT_EQ(experts[1].registered.category, "code");

  Mixture m;
  m.task = "arc_challenge";
  m.model_sha256 = t.svf->model_sha256();
  for (const auto& e : experts)
    m.experts.push_back({e.registered.name, e.path, backbone::file_sha256(e.path)});
  m.alpha = {0.4f, 0.6f};
  const std::string mix = dir + "/mix.json";
  mixture_save(mix, m);
  const auto w = mixture_weights(mix, *t.svf, experts);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_FLOAT_EQ(w[1].alpha, 0.6f);
  Dispatcher d(t.model, t.svf, registered(experts));
  d.set_mixture(w);
  EXPECT_EQ(d.decide({Strategy::kMix, mix}, std::vector<std::string>{"q"})[0].mixture.size(), 2u);

  // Another expert set.
  expect_error([&] { mixture_weights(mix, *t.svf, {experts[0]}); }, "are registered");
  // Same name, another file.
  auto swapped = experts;
  swapped[0].path = dir + "/other_math.safetensors";
  expect_error([&] { mixture_weights(mix, *t.svf, swapped); }, "is another file");
  // Another model.
  edit(mix, [](auto& j) { j["model_sha256"] = "abcdef0123456789"; });
  expect_error([&] { mixture_weights(mix, *t.svf, experts); }, "made for model");
}

}  // namespace
}  // namespace t2::adaptation
