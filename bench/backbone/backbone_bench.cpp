// t2's side of the backbone benchmark: reads prompts as token ids (written by
// bench/backbone/bench_vs_llamacpp.py so that both engines see the same ids) and
// prints one JSON line: prefill tok/s, single-sequence decode tok/s, the wall
// time of 16 concurrent prompts (batched), and peak resident memory.
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <omp.h>

#include "backbone/generator.h"
#include "backbone/model.h"

using namespace t2::backbone;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: backbone_bench MODEL PROMPTS.json [repeats]\n");
    return 2;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  std::ifstream in(argv[2]);
  const auto spec = nlohmann::json::parse(in);
  const auto model = Model::load(argv[1]);

  // Prefill: the whole prompt in one forward pass; best of `repeats`.
  const auto prefill_ids = spec["prefill"].get<std::vector<int32_t>>();
  Forward fwd(*model);
  std::vector<float> logits;
  double prefill_best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    KvCache cache(model->config(), int(prefill_ids.size()));
    SequenceInput s{&cache, prefill_ids, false};
    const double t0 = now();
    fwd.run({&s, 1}, logits);
    prefill_best = std::min(prefill_best, now() - t0);
  }

  // Decode: one sequence, fixed number of new tokens (no early stop).
  const int decode_tokens = spec["decode_tokens"];
  GenerationRequest one;
  one.prompt = spec["decode_prompt"].get<std::vector<int32_t>>();
  one.max_tokens = decode_tokens;
  one.ignore_stops = true;
  Generator gen(*model);
  double decode_best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    gen.generate({one});
    decode_best = std::min(decode_best, gen.last_stats().decode_seconds /
                                            double(gen.last_stats().generated_tokens - 1));
  }

  // 16 concurrent prompts of 64 new tokens each, batched.
  std::vector<GenerationRequest> many;
  for (const auto& p : spec["batch_prompts"]) {
    GenerationRequest r;
    r.prompt = p.get<std::vector<int32_t>>();
    r.max_tokens = spec["batch_new_tokens"];
    r.ignore_stops = true;
    many.push_back(r);
  }
  double batch_best = 1e30;
  int64_t batch_tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now();
    auto out = gen.generate(many);
    batch_best = std::min(batch_best, now() - t0);
    batch_tokens = gen.last_stats().generated_tokens;
  }

  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::json result = {
      {"engine", "t2"},
      {"threads", omp_get_max_threads()},
      {"prefill_tokens", prefill_ids.size()},
      {"prefill_tok_s", double(prefill_ids.size()) / prefill_best},
      {"decode_tok_s", 1.0 / decode_best},
      {"batch_seconds", batch_best},
      {"batch_tok_s", double(batch_tokens) / batch_best},
      {"peak_rss_mb", double(ru.ru_maxrss) / 1024.0},
  };
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
