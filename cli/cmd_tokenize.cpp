// `t2 tokenize MODEL TEXT [--chat]`: prints the ids of TEXT under the model's
// tokenizer on one line, space-separated. --chat first wraps TEXT as one user
// message in the chat template, ending with the assistant's generation prompt.
#include <cstdio>
#include <memory>
#include <string>

#include "backbone/gguf.h"
#include "backbone/tokenizer.h"
#include "commands.h"

namespace t2::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool chat = false;
  bool no_special = false;
};

void run_tokenize(const TokenizeOptions& opts) {
  backbone::GgufFile gguf(opts.model);
  backbone::Tokenizer tokenizer = backbone::Tokenizer::from_gguf(gguf);

  std::string text = opts.text;
  if (opts.chat) {
    backbone::ChatMessage user{"user", opts.text};
    text = tokenizer.apply_chat_template({&user, 1}, /*add_generation_prompt=*/true);
  }
  // The template's own markers are control tokens: --chat always parses them.
  bool parse_special = !opts.no_special;

  std::string line;
  for (int32_t id : tokenizer.encode(text, parse_special)) {
    if (!line.empty()) line += ' ';
    line += std::to_string(id);
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("MODEL", opts->model, "GGUF model file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("TEXT", opts->text, "Text to encode")->required();
  CLI::Option* chat = cmd->add_flag(
      "--chat", opts->chat,
      "Wrap TEXT as a user message in the chat template, with the generation prompt");
  cmd->add_flag("--no-special", opts->no_special,
                "Encode control tokens written in TEXT (e.g. <|im_start|>) as plain text")
      ->excludes(chat);
  cmd->callback([opts] { run_tokenize(*opts); });
}

}  // namespace t2::cli
