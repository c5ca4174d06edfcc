// `t2 bench <name>`: benchmarks that run inside the t2 program. Each prints its
// peers' figures from the same run beside t2's and ends with one summary line.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "t2/error.h"
#if T2_SCHEDULER_SIM
#include "bench/scheduler/report.h"
#endif

namespace t2::cli {
namespace {

struct SchedulerBenchArgs {
  bool quick = false;
  std::uint64_t seed = 1;
};

void add_scheduler_bench(CLI::App& bench) {
  CLI::App* cmd = bench.add_subcommand(
      "scheduler", "Replay synthetic job mixes on 4 to 1,024 simulated ranks: round-robin, "
                   "FIFO and t2's planner side by side");
  auto args = std::make_shared<SchedulerBenchArgs>();
  cmd->add_flag("--quick", args->quick, "a run of a few seconds");
  cmd->add_option("--seed", args->seed, "seed of the job mixes and the noise");
  cmd->callback([args] {
#if T2_SCHEDULER_SIM
    scheduler::sim::BenchOptions options;
    options.quick = args->quick;
    options.seed = args->seed;
    scheduler::sim::run_bench(options, stdout);
#else
    fail("this t2 was built without the benchmarks; configure with -DT2_BENCH=ON");
#endif
  });
}

}  // namespace

void add_bench_command(CLI::App& app) {
  CLI::App* bench =
      app.add_subcommand("bench", "Benchmarks against peers measured in the same run");
  bench->require_subcommand(1);
  add_scheduler_bench(*bench);
}

}  // namespace t2::cli
