// Two-pass dispatch: pass 1 scores the categories in batches, pass 2 groups the
// requests by adapter so each group runs as one generator batch.
#include "adaptation/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "adaptation/closed_answers.h"
#include "adaptation/dispatch_task.h"
#include "t2/error.h"
#include "t2/log.h"

namespace t2::adaptation {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kNone: return "none";
    case Strategy::kPrompt: return "prompt";
    case Strategy::kClassifier: return "classifier";
    case Strategy::kExpert: return "expert";
    case Strategy::kMix: return "mix";
  }
  return "?";
}

AdaptSpec parse_adapt(std::string_view text) {
  if (text == "none" || text.empty()) return {Strategy::kNone, ""};
  if (text == "prompt") return {Strategy::kPrompt, ""};
  if (text == "classifier") return {Strategy::kClassifier, ""};
  auto arg = [&](std::string_view prefix) { return std::string(text.substr(prefix.size())); };
  if (text.starts_with("expert:") && text.size() > 7) return {Strategy::kExpert, arg("expert:")};
  if (text.starts_with("mix:") && text.size() > 4) return {Strategy::kMix, arg("mix:")};
  fail("--adapt '{}': expected none, prompt, classifier, expert:NAME or mix:FILE", text);
}

Dispatcher::Dispatcher(std::shared_ptr<const backbone::Model> model,
                       std::shared_ptr<const backbone::Svf> svf,
                       std::vector<RegisteredExpert> experts, DispatchOptions options)
    : model_(std::move(model)), svf_(std::move(svf)), experts_(std::move(experts)),
      options_(options), hook_(*model_, svf_), generator_(*model_) {
  if (options_.batch_size < 1) fail("dispatch batch size should be >= 1, found {}",
                                    options_.batch_size);
  std::map<std::string, std::string> seen;  // category -> expert
  for (auto& e : experts_) {
    e.category = dispatch_label(e.category);
    if (e.category.empty() || e.category == "other")
      fail("expert {}: category '{}' is reserved or empty; give its task a category",
           e.name, e.category);
    if (auto it = seen.find(e.category); it != seen.end())
      fail("experts {} and {} both claim category '{}'; register one expert per category",
           it->second, e.name, e.category);
    seen[e.category] = e.name;
    expert_adapters_.push_back(backbone::Adapter::from_expert(*svf_, *e.expert));
  }
}

void Dispatcher::set_classifier(std::shared_ptr<const backbone::Expert> classifier) {
  // A classifier answers in the categories it was trained on: the same list,
  // order and descriptions (its prompt) as these experts give, or it is refused.
  const auto trained = classifier_categories(classifier->training);
  const auto ours = dispatch_categories();
  auto names = [](const std::vector<DispatchCategory>& v) {
    std::string s;
    for (const auto& c : v) s += (s.empty() ? "" : ", ") + c.name;
    return s;
  };
  if (trained.empty()) {
    log::get("adapt")->warn("classifier {} records no dispatch categories (not trained with "
                            "`t2 train --task dispatch`); using it as given", classifier->name);
  } else if (trained != ours) {
    fail("classifier {} was trained for categories [{}] but the registered experts give [{}] "
         "(order and descriptions count: they make the prompt); train it again with "
         "`t2 train --task dispatch --experts ...` listing these experts in this order",
         classifier->name, names(trained), names(ours));
  }
  classifier_ = std::move(classifier);
  classifier_adapter_ = backbone::Adapter::from_expert(*svf_, *classifier_);
}

void Dispatcher::set_mixture(std::vector<MixtureWeight> mixture) {
  mixture_ = std::move(mixture);
  mixture_adapter_ = adapter_of(mixture_);
}

const RegisteredExpert& Dispatcher::expert(const std::string& name) const {
  for (const auto& e : experts_)
    if (e.name == name) return e;
  std::string known;
  for (const auto& e : experts_) known += (known.empty() ? "" : ", ") + e.name;
  fail("unknown expert '{}'; registered: {}", name, known.empty() ? "(none)" : known);
}

std::shared_ptr<const backbone::Adapter> Dispatcher::adapter_of(
    std::span<const MixtureWeight> mix) {
  std::vector<backbone::AdapterTerm> terms;
  for (const auto& m : mix) terms.push_back({expert(m.expert).expert.get(), m.alpha,
                                             m.slot_alpha});
  return backbone::Adapter::mixture(*svf_, terms, "mix");
}

std::vector<std::string> Dispatcher::categories() const {
  std::vector<std::string> out;
  for (const auto& e : experts_) out.push_back(e.category);
  out.push_back("other");
  return out;
}

std::vector<DispatchCategory> Dispatcher::dispatch_categories() const {
  std::vector<DispatchCategory> out;
  for (const auto& e : experts_) out.push_back({e.category, e.description});
  return out;
}

std::vector<backbone::ChatMessage> Dispatcher::classification_prompt(
    std::string_view request) const {
  return classification_messages(dispatch_categories(), request);
}

Decision Dispatcher::decision_for_category(Strategy s, const std::string& category) const {
  Decision d;
  d.strategy = s;
  for (size_t i = 0; i < experts_.size(); ++i) {
    if (experts_[i].category != category) continue;
    d.category = category;
    d.mixture = {{experts_[i].name, 1.0f, {}}};
    d.adapter = expert_adapters_[i];
    return d;
  }
  d.category = "other";  // unknown classes run the base weights, never the last expert
  return d;
}

std::vector<Decision> Dispatcher::classify(Strategy s, std::span<const std::string> requests) {
  if (s == Strategy::kClassifier && !classifier_adapter_)
    fail("--adapt classifier needs a classification expert (--classifier FILE, trained "
         "with `t2 train --task dispatch`)");
  // Pass 1 is constrained to the answer format: the assistant's turn starts with
  // "Classification: \boxed{" and each category's "NAME}" is scored; the class
  // probabilities are the softmax of those log-likelihoods (for prompt dispatch,
  // calibrated: see DispatchOptions::calibrate). Free text from a small
  // model rarely keeps the format, so a label it never writes would send every
  // request to "other".
  const auto names = categories();
  backbone::LinearHook* hook = s == Strategy::kClassifier ? &hook_ : nullptr;
  const bool calibrate = s == Strategy::kPrompt && options_.calibrate;
  if (calibrate && prompt_prior_.empty()) {
    const std::string content_free[] = {"N/A"};
    prompt_prior_ = score_categories(nullptr, content_free, 0)[0];
  }
  std::vector<Decision> out;
  for (size_t first = 0; first < requests.size(); first += size_t(options_.batch_size)) {
    const size_t last = std::min(requests.size(), first + size_t(options_.batch_size));
    const size_t n = last - first;
    const auto t0 = std::chrono::steady_clock::now();
    if (hook) hook_.set_adapters(std::vector(n, classifier_adapter_));
    auto score = score_categories(hook, requests.subspan(first, n), first);
    const double share = seconds_since(t0) / double(n);
    for (size_t i = 0; i < n; ++i) {
      if (calibrate)
        for (size_t c = 0; c < names.size(); ++c) score[i][c] -= prompt_prior_[c];
      const auto pi = softmax(score[i]);
      const size_t arg = size_t(std::max_element(pi.begin(), pi.end()) - pi.begin());
      std::vector<std::pair<std::string, float>> probs;
      for (size_t c = 0; c < names.size(); ++c) probs.emplace_back(names[c], float(pi[c]));
      Decision d = decision_for_category(s, names[arg]);
      d.first_pass_text = std::string(kClassifyAnswerPrefix) + names[arg] + "}";
      d.class_probabilities = std::move(probs);
      d.pass1_seconds = share;
      out.push_back(std::move(d));
    }
  }
  return out;
}

std::vector<std::vector<double>> Dispatcher::score_categories(
    backbone::LinearHook* hook, std::span<const std::string> requests,
    size_t index_offset) const {
  const auto& tok = model_->tokenizer();
  std::vector<std::vector<int32_t>> labels;  // per category: "NAME}" tokens
  for (const auto& c : categories()) labels.push_back(tok.encode(c + "}"));
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < requests.size(); ++i) {
    prompts.push_back(tok.encode(tok.apply_chat_template(classification_prompt(requests[i]), true) +
                                 kClassifyAnswerPrefix));
    if (int64_t(prompts.back().size()) + options_.classify_max_tokens > model_->config().n_ctx)
      fail("request {}: its pass-1 classification prompt is {} tokens, with {} more it "
           "exceeds the context of {}; shorten the request", index_offset + i,
           prompts.back().size(), options_.classify_max_tokens, model_->config().n_ctx);
  }
  return completion_logprobs(*model_, hook, prompts, labels);
}

std::vector<Decision> Dispatcher::decide(const AdaptSpec& spec,
                                         std::span<const std::string> requests) {
  for (size_t i = 0; i < requests.size(); ++i)
    if (requests[i].empty()) fail("request {} is empty; every request needs a prompt", i);
  if (spec.strategy == Strategy::kPrompt || spec.strategy == Strategy::kClassifier)
    return classify(spec.strategy, requests);

  Decision fixed;
  fixed.strategy = spec.strategy;
  if (spec.strategy == Strategy::kExpert) {
    const auto& e = expert(spec.argument);
    fixed = decision_for_category(spec.strategy, e.category);
  } else if (spec.strategy == Strategy::kMix) {
    if (!mixture_adapter_) fail("--adapt mix: no mixture loaded (set_mixture)");
    fixed.category = "mix";
    fixed.mixture = mixture_;
    fixed.adapter = mixture_adapter_;
  }
  return std::vector<Decision>(requests.size(), fixed);
}

std::vector<backbone::GenerationResult> Dispatcher::answer(
    std::span<const backbone::GenerationRequest> requests, std::span<Decision> decisions) {
  if (requests.size() != decisions.size())
    fail("answer: {} requests but {} decisions", requests.size(), decisions.size());
  // Group by adapter (null = base); each group is one batch with one adapter for
  // all its sequences, so SvfHook picks materialized (hot) or factored per group.
  std::map<uint64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < requests.size(); ++i)
    groups[decisions[i].adapter ? decisions[i].adapter->id() : 0].push_back(i);

  std::vector<backbone::GenerationResult> out(requests.size());
  for (const auto& [id, members] : groups) {
    const auto adapter = decisions[members.front()].adapter;
    for (size_t first = 0; first < members.size(); first += size_t(options_.batch_size)) {
      const size_t last = std::min(members.size(), first + size_t(options_.batch_size));
      std::vector<backbone::GenerationRequest> batch;
      for (size_t k = first; k < last; ++k) batch.push_back(requests[members[k]]);
      if (adapter) hook_.set_adapters(std::vector(batch.size(), adapter));
      const auto t0 = std::chrono::steady_clock::now();
      auto results = generator_.generate(batch, adapter ? &hook_ : nullptr);
      const double share = seconds_since(t0) / double(last - first);
      for (size_t k = first; k < last; ++k) {
        out[members[k]] = std::move(results[k - first]);
        decisions[members[k]].pass2_seconds = share;
      }
    }
  }
  return out;
}

}  // namespace t2::adaptation
