// scheduler_bench: the scheduler simulator on its own (also `t2 bench scheduler`).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "bench/scheduler/report.h"

int main(int argc, char** argv) {
  CLI::App app{"Replays synthetic job mixes: round-robin, FIFO and t2's planner side by side"};
  t2::scheduler::sim::BenchOptions options;
  app.add_flag("--quick", options.quick, "a run of a few seconds");
  app.add_option("--seed", options.seed, "seed of the job mix and the noise");
  CLI11_PARSE(app, argc, argv);
  try {
    t2::scheduler::sim::run_bench(options, stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scheduler_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
