// `t2 generate`: one completion on the default backbone. Only the completion
// goes to stdout; load time and speed figures go to stderr.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>

#include "backbone/generator.h"
#include "backbone/model.h"
#include "commands.h"
#include "t2/error.h"

namespace t2::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  bool raw = false;
  int max_tokens = 256;
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

void run_generate(const GenerateArgs& a) {
  if (a.prompt.empty()) fail("--prompt is empty; give the text to complete");
  auto t0 = std::chrono::steady_clock::now();
  auto model = backbone::Model::load(a.model);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto& tok = model->tokenizer();
  backbone::GenerationRequest req;
  if (a.raw) {
    req.prompt = tok.encode(a.prompt);
  } else {
    std::vector<backbone::ChatMessage> chat{{"user", a.prompt}};
    req.prompt = tok.encode(tok.apply_chat_template(chat, true));
  }
  req.max_tokens = a.max_tokens;
  req.sampling = {a.temperature, a.top_p, a.seed};

  backbone::Generator gen(*model);
  const auto results = gen.generate({req});
  fmt::print("{}\n", results[0].text);
  std::fflush(stdout);

  const auto& s = gen.last_stats();
  fmt::print(stderr,
             "t2 generate: load {:.2f} s | prompt {} tokens, {:.1f} tok/s | {} new tokens, "
             "{:.1f} tok/s | finish: {} | {} threads\n",
             load_s, s.prompt_tokens, double(s.prompt_tokens) / s.prefill_seconds,
             s.generated_tokens, double(s.generated_tokens) / std::max(1e-9, s.decode_seconds),
             results[0].finish_reason, omp_get_max_threads());
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
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace t2::cli
