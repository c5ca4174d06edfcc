// `t2 generate`: one completion on the default backbone, optionally two-pass
// adapted (--adapt: the Dispatcher decides an expert or mixture, then answers
// with it). Only the completion goes to stdout; the decision, load time and
// speed figures go to stderr.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>

#include "adapt_session.h"
#include "backbone/generator.h"
#include "backbone/model.h"
#include "commands.h"
#include "t2/error.h"

namespace t2::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  std::string adapt = "none";
  AdaptArgs common;
  bool raw = false;
  int max_tokens = 256;
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

backbone::GenerationRequest make_request(const GenerateArgs& a, const backbone::Model& model) {
  const auto& tok = model.tokenizer();
  backbone::GenerationRequest req;
  if (a.raw) {
    req.prompt = tok.encode(a.prompt);
  } else {
    std::vector<backbone::ChatMessage> chat{{"user", a.prompt}};
    req.prompt = tok.encode(tok.apply_chat_template(chat, true));
  }
  req.max_tokens = a.max_tokens;
  req.sampling = {a.temperature, a.top_p, a.seed};
  const int64_t n_ctx = model.config().n_ctx;
  if (int64_t(req.prompt.size()) + req.max_tokens > n_ctx)
    fail("the prompt is {} tokens and --max-tokens {}, past the context of {} tokens; shorten "
         "the prompt or lower --max-tokens", req.prompt.size(), req.max_tokens, n_ctx);
  return req;
}

void print_speed(double load_s, const backbone::GenerationStats& s, const std::string& finish) {
  fmt::print(stderr,
             "t2 generate: load {:.2f} s | prompt {} tokens, {:.1f} tok/s | {} new tokens, "
             "{:.1f} tok/s | finish: {} | {} threads\n",
             load_s, s.prompt_tokens, double(s.prompt_tokens) / std::max(1e-9, s.prefill_seconds),
             s.generated_tokens, double(s.generated_tokens) / std::max(1e-9, s.decode_seconds),
             finish, omp_get_max_threads());
}

// The experts to register: --experts, else the one --adapt expert:NAME names.
// A mixture with no --experts registers the files it records.
std::vector<std::string> expert_specs(const GenerateArgs& a, const adaptation::AdaptSpec& spec) {
  auto specs = split_list(a.common.experts);
  if (specs.empty() && spec.strategy == adaptation::Strategy::kExpert) specs = {spec.argument};
  return specs;
}

void print_decision(const adaptation::Decision& d) {
  fmt::print(stderr, "decision: strategy {} | class {}", adaptation::strategy_name(d.strategy),
             d.category);
  if (d.mixture.empty()) fmt::print(stderr, " | base weights");
  for (const auto& m : d.mixture)
    fmt::print(stderr, " | {} alpha {:.3f}{}", m.expert, m.alpha,
               m.slot_alpha.empty() ? "" : " (per matrix)");
  fmt::print(stderr, " | pass 1 {:.3f} s, pass 2 {:.3f} s", d.pass1_seconds, d.pass2_seconds);
  if (d.pass2_seconds > 0 && d.pass1_seconds > 0)
    fmt::print(stderr, " ({:.1f} %)", 100.0 * d.pass1_seconds / d.pass2_seconds);
  fmt::print(stderr, "\n");
  if (!d.first_pass_text.empty()) fmt::print(stderr, "pass 1 said: {}\n", d.first_pass_text);
  if (!d.class_probabilities.empty()) {
    fmt::print(stderr, "pass 1 class probabilities:");
    for (const auto& [name, p] : d.class_probabilities) fmt::print(stderr, " {} {:.3f}", name, p);
    fmt::print(stderr, "\n");
  }
}

void run_adapted(const GenerateArgs& a, const adaptation::AdaptSpec& spec) {
  auto t0 = std::chrono::steady_clock::now();
  auto specs = expert_specs(a, spec);
  if (specs.empty() && spec.strategy == adaptation::Strategy::kMix) {
    // The mixture names its expert files; register those.
    auto model = backbone::Model::load(a.model);
    auto svf = backbone::Svf::open(*model, backbone::parse_matrix_set(a.common.matrix_set),
                                   a.common.cache_dir.empty() ? backbone::default_cache_dir()
                                                              : a.common.cache_dir);
    for (const auto& e : adaptation::mixture_load(spec.argument, *svf).experts)
      specs.push_back(e.path);
  }
  AdaptSession session = open_adapt_session(a.model, a.common, specs);
  prepare_strategy(session, spec, a.common);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::vector<backbone::GenerationRequest> reqs = {make_request(a, *session.model)};
  auto decisions = session.dispatcher->decide(spec, std::vector<std::string>{a.prompt});
  const auto results = session.dispatcher->answer(reqs, decisions);
  fmt::print("{}\n", results[0].text);
  std::fflush(stdout);
  print_decision(decisions[0]);
  print_speed(load_s, session.dispatcher->last_stats(), results[0].finish_reason);
}

void run_generate(const GenerateArgs& a) {
  if (a.prompt.empty()) fail("--prompt is empty; give the text to complete");
  const auto spec = adaptation::parse_adapt(a.adapt);
  if (spec.strategy != adaptation::Strategy::kNone) return run_adapted(a, spec);

  auto t0 = std::chrono::steady_clock::now();
  auto model = backbone::Model::load(a.model);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  backbone::Generator gen(*model);
  const auto results = gen.generate({make_request(a, *model)});
  fmt::print("{}\n", results[0].text);
  std::fflush(stdout);
  print_speed(load_s, gen.last_stats(), results[0].finish_reason);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Complete a prompt with the backbone");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "GGUF model file")->required();
  cmd->add_option("--prompt", a->prompt, "Prompt text (a user message unless --raw)")->required();
  cmd->add_flag("--raw", a->raw, "Use the prompt as-is, without the chat template");
  cmd->add_option("--max-tokens", a->max_tokens, "Most new tokens")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", a->temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", a->top_p, "Nucleus mass in (0, 1]")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_option("--adapt", a->adapt,
                  "none, prompt, classifier, expert:NAME or mix:FILE (two-pass adaptation)")
      ->capture_default_str();
  cmd->add_option("--experts", a->common.experts,
                  "Comma-separated expert names or files (default: the one expert:NAME names, "
                  "or the mixture's)");
  add_adapt_options(cmd, a->common);
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace t2::cli
