// `t2 decompose --model MODEL [--matrices mlp|attn|all] [--cache DIR]`: computes
// (or checks) the SVF cache of a model ahead of serving, and says where it is.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>

#include "backbone/model.h"
#include "backbone/svf.h"
#include "commands.h"

namespace t2::cli {

namespace {

struct DecomposeArgs {
  std::string model;
  std::string matrices = "mlp";
  std::string cache;
};

void run_decompose(const DecomposeArgs& a) {
  const auto set = backbone::parse_matrix_set(a.matrices);
  const std::string cache = a.cache.empty() ? backbone::default_cache_dir() : a.cache;
  auto t0 = std::chrono::steady_clock::now();
  auto model = backbone::Model::load(a.model);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  t0 = std::chrono::steady_clock::now();
  auto svf = backbone::Svf::open(*model, set, cache);
  const double svf_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int64_t floats = 0;
  for (int s = 0; s < svf->n_slots(); ++s) {
    const auto& f = svf->factors(s);
    floats += int64_t(f.out) * f.rank + f.rank + int64_t(f.rank) * f.in;
  }
  fmt::print("model        {} (sha256 {})\n", model->path(), svf->model_sha256());
  fmt::print("matrices     {}: {} slots, {} singular values per expert\n",
             backbone::matrix_set_name(set), svf->n_slots(), svf->total_rank());
  fmt::print("factors      {:.1f} MB, {} in {:.2f} s (model load {:.2f} s)\n",
             double(floats) * 4 / 1e6, svf->loaded_from_cache() ? "checked and mapped" : "computed",
             svf_s, load_s);
  fmt::print("cache        {}\n", svf->cache_path().empty() ? "(not written)" : svf->cache_path());
}

}  // namespace

void add_decompose_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "decompose", "SVD of a model's adapted matrices into the SVF cache (computed once)");
  auto args = std::make_shared<DecomposeArgs>();
  cmd->add_option("--model", args->model, "GGUF model file")->required();
  cmd->add_option("--matrices", args->matrices, "adapted matrices: mlp, attn or all")
      ->capture_default_str();
  cmd->add_option("--cache", args->cache, "cache folder (default $T2_CACHE or ~/.cache/t2)");
  cmd->callback([args] { run_decompose(*args); });
}

}  // namespace t2::cli
