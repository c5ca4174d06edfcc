// The subcommands of the `t2` program. Each lives in its own cmd_<name>.cpp and
// adds itself to the app; main.cpp lists them. A command's callback throws
// t2::Error for user-facing failures; main turns that into a message and exit 1.
#pragma once

#include <CLI/CLI.hpp>

namespace t2::cli {

void add_info_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_decompose_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_eval_mixed_command(CLI::App& app);
void add_fewshot_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_audit_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_client_commands(CLI::App& app);  // submit, jobs, status, cancel, experts, decisions

}  // namespace t2::cli
