// One inference shard (see shard.h): each request's prompt, then the shard's
// adaptation through adaptation::Dispatcher — pass 1 decides (prompt dispatch
// for t2-auto, fixed for base or one expert), pass 2 answers in one batch per
// distinct adapter — then scores for task examples.
#include "worker/shard.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::worker {

using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Request {
  uint32_t i = 0;
  std::vector<int32_t> ids;
  std::string question;  // what the first pass classifies
  const adaptation::Task* task = nullptr;
  const adaptation::Example* example = nullptr;
  int max_tokens = 128;
  std::string error;
};

std::vector<backbone::ChatMessage> chat_messages(const json& list) {
  std::vector<backbone::ChatMessage> out;
  for (const auto& m : list)
    out.push_back({m.value("role", std::string("user")), m.value("content", std::string())});
  return out;
}

std::string strategy_label(adaptation::Strategy s) {
  return s == adaptation::Strategy::kNone ? "base" : adaptation::strategy_name(s);
}

json decision_json(const adaptation::Decision& d) {
  json experts = json::array();
  for (const auto& m : d.mixture) experts.push_back({{"name", m.expert}, {"weight", m.alpha}});
  json out = {{"strategy", strategy_label(d.strategy)}, {"experts", experts},
              {"second_pass_ms", 1000 * d.pass2_seconds}};
  if (d.strategy == adaptation::Strategy::kPrompt ||
      d.strategy == adaptation::Strategy::kClassifier) {
    json probs = json::object();
    for (const auto& [name, p] : d.class_probabilities) probs[name] = p;
    out["first_pass"] = {{"category", d.category},
                         {"output", d.first_pass_text.substr(0, 200)},
                         {"probabilities", probs}};
    out["first_pass_ms"] = 1000 * d.pass1_seconds;
  } else {
    out["first_pass"] = nullptr;
  }
  return out;
}

}  // namespace

json run_shard(Context& ctx, const json& body, const std::function<void(int64_t)>& progress) {
  const auto t_start = std::chrono::steady_clock::now();
  const uint64_t placement = body.value("placement", uint64_t(0));
  const auto& tok = ctx.model().tokenizer();
  const int n_ctx = ctx.model().config().n_ctx;
  const std::string model = body.value("model", std::string("base"));
  const int max_tokens = body.value("max_tokens", 128);
  const bool chat = body.value("chat", true);
  backbone::SamplingParams sampling;
  sampling.temperature = float(body.value("temperature", 0.0));
  sampling.seed = body.value("seed", uint64_t(0));

  // 1. Each request's prompt ids.
  std::vector<Request> requests;
  for (const auto& item : body.at("items")) {
    Request r;
    r.i = item.at("i").get<uint32_t>();
    r.max_tokens = max_tokens;
    std::vector<backbone::ChatMessage> messages;
    if (item.contains("example")) {
      const std::string task = item.at("task").get<std::string>();
      r.task = &ctx.task(task);
      const auto& examples = ctx.examples(task, adaptation::parse_split(item.at("split").get<std::string>()));
      const int64_t index = item.at("example").get<int64_t>();
      if (index < 0 || index >= int64_t(examples.size()))
        fail("task {} has no example {} in split {}", task, index, item.at("split").dump());
      r.example = &examples[size_t(index)];
      messages = r.example->messages;
      if (max_tokens <= 0) r.max_tokens = r.task->max_new_tokens();
    } else if (item.contains("messages")) {
      messages = chat_messages(item["messages"]);
    } else {
      messages = {{"user", item.value("prompt", std::string())}};
    }
    r.question = messages.empty() ? "" : messages.back().content;
    const bool raw = !chat && item.contains("prompt");
    r.ids = raw         ? tok.encode(item["prompt"].get<std::string>())
            : r.example ? adaptation::prompt_ids(tok, *r.example)
                        : tok.encode(tok.apply_chat_template(messages, true));
    if (r.max_tokens <= 0) r.max_tokens = 128;
    if (r.question.empty()) r.error = "empty prompt";
    else if (int(r.ids.size()) + 1 >= n_ctx)
      r.error = fmt::format("prompt of {} tokens leaves no room in the {} token context",
                            r.ids.size(), n_ctx);
    else
      r.max_tokens = std::min(r.max_tokens, n_ctx - int(r.ids.size()) - 1);
    requests.push_back(std::move(r));
  }
  if (ctx.cancelled(placement)) return nullptr;

  // 2. Both passes over the requests that can run.
  std::vector<std::string> names;
  for (const auto& e : body.value("experts", json::array())) names.push_back(e.at("name"));
  adaptation::Dispatcher& dispatcher = ctx.dispatcher(names);
  adaptation::AdaptSpec spec;
  if (model == "t2-auto") spec.strategy = adaptation::Strategy::kPrompt;
  else if (model != "base") spec = {adaptation::Strategy::kExpert, model};

  std::vector<Request*> runnable;
  std::vector<std::string> texts;
  std::vector<backbone::GenerationRequest> gen;
  for (auto& r : requests) {
    if (!r.error.empty()) continue;
    runnable.push_back(&r);
    texts.push_back(r.question);
    backbone::GenerationRequest g;
    g.prompt = r.ids;
    g.max_tokens = r.max_tokens;
    g.sampling = sampling;
    g.sampling.seed = sampling.seed + r.i;
    gen.push_back(std::move(g));
  }
  std::vector<adaptation::Decision> decisions;
  std::vector<backbone::GenerationResult> results;
  if (!runnable.empty()) {
    decisions = dispatcher.decide(spec, texts);
    if (ctx.cancelled(placement)) return nullptr;
    results = dispatcher.answer(gen, decisions);
  }
  progress(int64_t(runnable.size()));

  // 3. Scores and the result.
  json items = json::array();
  int64_t output_tokens = 0, prompt_tokens = 0;
  size_t k = 0;
  for (auto& r : requests) {
    json item = {{"i", r.i}};
    if (!r.error.empty()) {
      item["error"] = r.error;
      item["text"] = "";
      item["finish"] = "error";
      item["decision"] = {{"strategy", model == "t2-auto" ? "prompt"
                                       : model == "base"  ? "base" : "expert"},
                          {"experts", json::array()}, {"first_pass", nullptr}};
      items.push_back(std::move(item));
      continue;
    }
    const auto& out = results[k];
    item["decision"] = decision_json(decisions[k]);
    ++k;
    item["text"] = out.text;
    item["finish"] = out.finish_reason;
    item["prompt_tokens"] = int64_t(r.ids.size());
    item["completion_tokens"] = int64_t(out.tokens.size());
    output_tokens += int64_t(out.tokens.size());
    prompt_tokens += int64_t(r.ids.size());
    if (r.example) {
      const adaptation::Score s = r.task->score(*r.example, out.text);
      item["correct"] = s.correct;
      item["extracted"] = s.extracted;
      item["reward"] = s.reward;
      item["reference"] = r.example->reference;
      item["task"] = r.task->name();
    }
    items.push_back(std::move(item));
  }
  return {{"placement", placement}, {"items", items}, {"seconds", seconds_since(t_start)},
          {"output_tokens", output_tokens}, {"prompt_tokens", prompt_tokens}};
}

}  // namespace t2::worker
