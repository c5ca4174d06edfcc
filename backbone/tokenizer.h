// Byte-level BPE tokenizer read from a GGUF vocabulary (`tokenizer.ggml.*`):
// special tokens cut out first, the `smollm` pre-tokenizer (digits split, GPT-2
// pattern), byte-to-unicode mapping, ranked merges. encode(decode(ids)) == ids
// is not promised (BPE is not bijective), decode(encode(text)) == text is.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace t2::backbone {

class GgufFile;

// The tables a tokenizer is built from, as GGUF stores them: token text in the
// GPT-2 byte alphabet, token types (1 normal, 3 control, 4 user-defined, ...),
// merges "left right" in rank order. from_gguf fills it; tests build tiny ones.
struct TokenizerVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;  // empty: all normal
  std::vector<std::string> merges;
  std::string pre = "smollm";        // pre-tokenizer: "smollm" or "gpt2" (and aliases)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  std::string chat_template;         // empty: ChatML with SmolLM2's system message
};

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Reads vocabulary, token types, merges and special ids from the GGUF file.
  // Throws t2::Error if the model is not byte-level BPE or the tables disagree.
  static Tokenizer from_gguf(const GgufFile& gguf);
  // Same checks, from tables already in memory.
  static Tokenizer from_vocab(TokenizerVocab vocab);

  // Text to ids. With parse_special, control tokens written in the text (e.g.
  // "<|im_start|>") become their ids; otherwise they are encoded as plain text.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // Ids to UTF-8 text (bytes of each token concatenated; special tokens included
  // as their text unless skip_special).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The bytes one token stands for.
  std::string token_bytes(int32_t id) const;

  // The id of a token's exact text (byte alphabet), or -1.
  int32_t token_id(std::string_view text) const;
  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  bool is_control(int32_t id) const;
  // Ids that end a generation: eos, and <|endoftext|> / <|im_end|> when present.
  std::vector<int32_t> stop_ids() const;

  // ChatML rendering as the model's template does it: a default system message
  // when none is given; add_generation_prompt ends with "<|im_start|>assistant\n".
  std::string apply_chat_template(std::span<const ChatMessage> messages,
                                  bool add_generation_prompt = true) const;
  // The system message added when the conversation has none.
  const std::string& default_system_message() const;

  // Implementation state (filled by from_gguf; see tokenizer.cpp).
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace t2::backbone
