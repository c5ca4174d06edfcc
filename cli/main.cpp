// Entry point of the `t2` program: registers the subcommands and is the edge
// where t2::Error becomes a one-line message on stderr and exit status 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.h"
#include "t2/error.h"

int main(int argc, char** argv) {
  CLI::App app{"t2 — self-adaptive LLM service (Transformer² on a shared backbone)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "t2 0.1");

  t2::cli::add_info_command(app);
  t2::cli::add_tokenize_command(app);
  t2::cli::add_generate_command(app);
  t2::cli::add_decompose_command(app);
  t2::cli::add_eval_command(app);
  t2::cli::add_eval_mixed_command(app);
  t2::cli::add_fewshot_command(app);
  t2::cli::add_train_command(app);
  t2::cli::add_bench_command(app);
  t2::cli::add_audit_command(app);
  t2::cli::add_serve_command(app);
  t2::cli::add_client_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const t2::Error& e) {
    std::fprintf(stderr, "t2: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "t2: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
