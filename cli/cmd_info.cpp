// `t2 info MODEL`: architecture, sizes, tensor types and vocabulary of a GGUF file.
#include <fmt/format.h>

#include <map>

#include "backbone/config.h"
#include "backbone/gguf.h"
#include "commands.h"

namespace t2::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show a GGUF model's architecture, sizes and tensors");
  auto path = std::make_shared<std::string>();
  cmd->add_option("model", *path, "GGUF model file")->required();
  cmd->callback([path] {
    backbone::GgufFile f(*path);
    const auto c = backbone::ModelConfig::from_gguf(f);
    fmt::print("file          {} (GGUF v{}, {:.1f} MB)\n", f.path(), f.version(),
               double(f.file_size()) / 1e6);
    fmt::print("name          {}\n", c.name);
    fmt::print("architecture  {}\n", c.architecture);
    fmt::print("layers        {}\n", c.n_layer);
    fmt::print("embedding     {}\n", c.n_embd);
    fmt::print("heads         {} query, {} key/value, head dim {}\n", c.n_head, c.n_head_kv,
               c.head_dim);
    fmt::print("feed-forward  {}\n", c.n_ff);
    fmt::print("context       {}\n", c.n_ctx);
    fmt::print("rope          base {}, {} dims\n", c.rope_base, c.n_rot);
    fmt::print("rms epsilon   {}\n", c.rms_eps);
    fmt::print("vocabulary    {} tokens ({} BPE, pre-tokenizer {})\n", c.n_vocab,
               f.get_string("tokenizer.ggml.model", "?"), f.get_string("tokenizer.ggml.pre", "?"));
    fmt::print("output head   {}\n",
               f.find_tensor("output.weight") ? "separate" : "tied to token_embd");

    std::map<std::string, std::pair<int, int64_t>> by_type;
    int64_t params = 0;
    for (const auto& t : f.tensors()) {
      auto& [count, elements] = by_type[backbone::ggml_type_name(t.type)];
      ++count;
      elements += t.n_elements();
      params += t.n_elements();
    }
    fmt::print("tensors       {} ({:.1f}M parameters)\n", f.tensors().size(), double(params) / 1e6);
    for (const auto& [type, ce] : by_type) {
      fmt::print("  {:6} {:4} tensors {:8.2f}M elements\n", type, ce.first, double(ce.second) / 1e6);
    }
  });
}

}  // namespace t2::cli
