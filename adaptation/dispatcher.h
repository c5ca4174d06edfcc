// adaptation::Dispatcher — two-pass inference (docs/method.md §3): pass 1 decides
// each request's adaptation (prompt dispatch, a classification expert, or a fixed
// expert or mixture), pass 2 answers with it. Both passes are batched; pass 2
// runs one batch per distinct adaptation so every group takes its cheapest path.
// "other" and anything unparsable always run the base weights.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "adaptation/answer.h"
#include "adaptation/dispatch_prompt.h"
#include "backbone/expert.h"
#include "backbone/generator.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"
#include "backbone/tokenizer.h"

namespace t2::adaptation {

enum class Strategy { kNone, kPrompt, kClassifier, kExpert, kMix };
const char* strategy_name(Strategy s);

// What to run with: "none" | "prompt" | "classifier" | "expert:NAME" | "mix:FILE".
struct AdaptSpec {
  Strategy strategy = Strategy::kNone;
  std::string argument;  // expert name or mixture file
};
AdaptSpec parse_adapt(std::string_view text);  // throws on anything else

// One registered expert: its dispatch category and one-line description come
// from the task config it was trained on.
struct RegisteredExpert {
  std::string name, category, description;
  std::shared_ptr<const backbone::Expert> expert;
};

// One term of the expert mixture a decision chose.
struct MixtureWeight {
  std::string expert;
  float alpha = 1.0f;
  std::vector<float> slot_alpha;  // empty: the same alpha for every matrix
};

struct Decision {
  Strategy strategy = Strategy::kNone;
  std::string category = "other";  // chosen class ("other": base weights)
  std::string first_pass_text;     // pass-1 answer (prompt / classifier)
  // Pass 1's probability of each category ("other" last), summing to 1.
  std::vector<std::pair<std::string, float>> class_probabilities;
  std::vector<MixtureWeight> mixture;  // empty: base weights
  std::shared_ptr<const backbone::Adapter> adapter;  // null: base weights
  double pass1_seconds = 0.0;  // this request's share of its pass-1 batch
  double pass2_seconds = 0.0;  // this request's share of its pass-2 group
};

struct DispatchOptions {
  int batch_size = 16;         // requests per pass-1 batch
  int classify_max_tokens = kClassifyMaxTokens;  // pass-1 room kept in the context
  // Prompt strategy: contextual calibration (Zhao et al., 2021). A small model
  // prefers some category names whatever the request says; each category's
  // log-likelihood for the request has its log-likelihood for the content-free
  // request "N/A" subtracted before the softmax.
  bool calibrate = true;
};

class Dispatcher {
 public:
  Dispatcher(std::shared_ptr<const backbone::Model> model,
             std::shared_ptr<const backbone::Svf> svf, std::vector<RegisteredExpert> experts,
             DispatchOptions options = {});

  // The expert used for pass 1 of the classifier strategy. Throws when its
  // metadata records other categories than these experts' (dispatch_task.h).
  void set_classifier(std::shared_ptr<const backbone::Expert> classifier);
  // A fixed mixture (strategy kMix): every request runs with it.
  void set_mixture(std::vector<MixtureWeight> mixture);

  // Categories in registration order, plus "other" last.
  std::vector<std::string> categories() const;
  // Categories with their descriptions, in registration order ("other" implied).
  std::vector<DispatchCategory> dispatch_categories() const;
  // The classification prompt of pass 1 for one request's text
  // (classification_messages of dispatch_categories()).
  std::vector<backbone::ChatMessage> classification_prompt(std::string_view request) const;
  // A category name (possibly unknown) to the decision it implies.
  Decision decision_for_category(Strategy s, const std::string& category) const;

  // Pass 1 over all requests (batched). `requests` are the user texts.
  std::vector<Decision> decide(const AdaptSpec& spec, std::span<const std::string> requests);
  // Pass 2: generates each request with its decision's adapter, one batch per
  // distinct adapter; fills pass2_seconds.
  std::vector<backbone::GenerationResult> answer(
      std::span<const backbone::GenerationRequest> requests, std::span<Decision> decisions);

  const std::vector<RegisteredExpert>& experts() const { return experts_; }
  const RegisteredExpert& expert(const std::string& name) const;  // throws when unknown
  const backbone::SvfHook::Stats& hook_stats() const { return hook_.stats(); }
  // Token counts and speed of the last generator batch (the last pass-2 group).
  const backbone::GenerationStats& last_stats() const { return generator_.last_stats(); }

 private:
  std::shared_ptr<const backbone::Adapter> adapter_of(std::span<const MixtureWeight> mix);
  std::vector<Decision> classify(Strategy s, std::span<const std::string> requests);
  // Per category: the log-likelihood of "NAME}" after the classification prompts
  // of `requests`, with the hook's adapters as set (null: base weights).
  std::vector<std::vector<double>> score_categories(backbone::LinearHook* hook,
                                                    std::span<const std::string> requests,
                                                    size_t index_offset) const;

  std::shared_ptr<const backbone::Model> model_;
  std::shared_ptr<const backbone::Svf> svf_;
  std::vector<RegisteredExpert> experts_;
  DispatchOptions options_;
  std::shared_ptr<const backbone::Expert> classifier_;
  std::vector<MixtureWeight> mixture_;
  std::vector<std::shared_ptr<const backbone::Adapter>> expert_adapters_;
  std::shared_ptr<const backbone::Adapter> classifier_adapter_, mixture_adapter_;
  std::vector<double> prompt_prior_;  // calibration: scores of "N/A", computed once
  backbone::SvfHook hook_;
  backbone::Generator generator_;
};

}  // namespace t2::adaptation
