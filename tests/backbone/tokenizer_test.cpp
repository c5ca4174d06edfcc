// Tokenizer unit tests: ranked BPE, both pre-tokenizers, added tokens and ChatML
// on a hand-made vocabulary whose expected ids are worked out by hand. The real
// model against HF's ids is tokenizer_model_test.cpp.
#include "backbone/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "t2/error.h"

namespace t2::backbone {
namespace {

// Ids 0..255: the 256 bytes, each as its byte-alphabet character, so the id of
// an unmerged byte is the byte itself. Then merged tokens and one control token.
TokenizerVocab tiny_vocab(const std::string& pre) {
  TokenizerVocab v;
  // Bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF are themselves; the rest U+0100...
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    char32_t cp = self ? char32_t(b) : next++;
    std::string text;
    if (cp < 0x80) {
      text += char(cp);
    } else {
      text += char(0xC0 | (cp >> 6));
      text += char(0x80 | (cp & 0x3F));
    }
    v.tokens.push_back(text);
  }
  // 256 bc, 257 ab, 258 abc, 259 Ġab, 260 ĠĠ, 261 Ġ1, 262 's, 263 <|endoftext|>
  for (const char* t : {"bc", "ab", "abc", "\xC4\xA0" "ab", "\xC4\xA0\xC4\xA0",
                        "\xC4\xA0" "1", "'s", "<|endoftext|>"}) {
    v.tokens.push_back(t);
  }
  v.token_types.assign(v.tokens.size(), 1);
  v.token_types[263] = 3;
  v.merges = {"b c", "a b", "a bc", "\xC4\xA0 ab", "\xC4\xA0 \xC4\xA0", "\xC4\xA0 1", "' s"};
  v.pre = pre;
  v.bos_id = 263;
  v.eos_id = 263;
  v.pad_id = 263;
  return v;
}

using Ids = std::vector<int32_t>;

TEST(Tokenizer, RankedMergesOnTinyVocab) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab("smollm"));
  EXPECT_EQ(tok.vocab_size(), 264);
  // b c (rank 0) before a b (rank 1), then a bc (rank 2).
  EXPECT_EQ(tok.encode("abc"), (Ids{258}));
  // Two equal-rank pairs: both merge, left first.
  EXPECT_EQ(tok.encode("abab"), (Ids{257, 257}));
  // "aab": the only pair with a rank is the right one.
  EXPECT_EQ(tok.encode("aab"), (Ids{97, 257}));
  // " abc": Ġ a b c -> Ġ a bc -> Ġ abc; "Ġ abc" is no merge.
  EXPECT_EQ(tok.encode(" abc"), (Ids{' ', 258}));
  EXPECT_EQ(tok.encode(" ab"), (Ids{259}));
  EXPECT_EQ(tok.encode("it's"), (Ids{'i', 't', 262}));
  // Contractions are case-sensitive: "'S" is punctuation then a letter.
  EXPECT_EQ(tok.encode("it'S"), (Ids{'i', 't', '\'', 'S'}));
  EXPECT_EQ(tok.encode(""), Ids{});
  // Multi-byte characters fall back to their bytes.
  EXPECT_EQ(tok.encode("\xC3\xA9"), (Ids{0xC3, 0xA9}));
}

TEST(Tokenizer, SmollmSplitsDigitsBeforeThePattern) {
  Tokenizer smollm = Tokenizer::from_vocab(tiny_vocab("smollm"));
  Tokenizer gpt2 = Tokenizer::from_vocab(tiny_vocab("gpt2"));
  const int32_t space = ' ';
  // smollm: "a  " | "1" -> "a" "  " "1"; the two spaces merge (ĠĠ).
  EXPECT_EQ(smollm.encode("a  1"), (Ids{'a', 260, '1'}));
  // gpt2: "a" " " " 1" -> the space before the digit leads it (Ġ1).
  EXPECT_EQ(gpt2.encode("a  1"), (Ids{'a', space, 261}));
  // Every digit alone under smollm; one ?\p{N}+ piece under gpt2.
  EXPECT_EQ(smollm.encode(" 12"), (Ids{space, '1', '2'}));
  EXPECT_EQ(gpt2.encode(" 12"), (Ids{261, '2'}));
  // Whitespace run before a word gives up its last space; at the end it stays.
  EXPECT_EQ(smollm.encode("a   ab"), (Ids{'a', 260, 259}));
  EXPECT_EQ(smollm.encode("a\t\n"), (Ids{'a', '\t', '\n'}));
}

TEST(Tokenizer, ControlTokensAndDecode) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab("smollm"));
  EXPECT_EQ(tok.encode("ab<|endoftext|>c"), (Ids{257, 263, 'c'}));
  Ids plain = tok.encode("<|endoftext|>", false);
  EXPECT_EQ(plain, (Ids{'<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>'}));
  EXPECT_TRUE(tok.is_control(263));
  EXPECT_FALSE(tok.is_control('a'));
  Ids ids = tok.encode("x abc<|endoftext|>\xC3\xA9\n");
  EXPECT_EQ(tok.decode(ids), "x abc<|endoftext|>\xC3\xA9\n");
  EXPECT_EQ(tok.decode(ids, true), "x abc\xC3\xA9\n");
  EXPECT_THROW(tok.decode(Ids{264}), Error);
}

TEST(Tokenizer, RejectsBadTables) {
  EXPECT_THROW(Tokenizer::from_vocab(tiny_vocab("llama3")), Error);
  TokenizerVocab missing_merge = tiny_vocab("smollm");
  missing_merge.merges.push_back("c c");  // "cc" is no token
  EXPECT_THROW(Tokenizer::from_vocab(missing_merge), Error);
  TokenizerVocab short_types = tiny_vocab("smollm");
  short_types.token_types.pop_back();
  EXPECT_THROW(Tokenizer::from_vocab(short_types), Error);
}

TEST(Tokenizer, ChatMlWithDefaultSystem) {
  Tokenizer tok = Tokenizer::from_vocab(tiny_vocab("smollm"));
  std::vector<ChatMessage> user = {{"user", "Hi"}};
  EXPECT_EQ(tok.apply_chat_template(user),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  std::vector<ChatMessage> with_system = {{"system", "S"}, {"user", "U"}};
  EXPECT_EQ(tok.apply_chat_template(with_system, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
}

TEST(Tokenizer, DefaultSystemMessageComesFromTheTemplate) {
  TokenizerVocab v = tiny_vocab("smollm");
  v.chat_template = "{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{{'<|im_start|>'}}";
  Tokenizer custom = Tokenizer::from_vocab(v);
  EXPECT_EQ(custom.default_system_message(), "Be brief.");
  std::vector<ChatMessage> user = {{"user", "Q"}};
  EXPECT_EQ(custom.apply_chat_template(user, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n");

  v.chat_template = "{% for m in messages %}{{'<|im_start|>' + m['role']}}{% endfor %}";
  Tokenizer bare = Tokenizer::from_vocab(v);
  EXPECT_EQ(bare.apply_chat_template(user, false), "<|im_start|>user\nQ<|im_end|>\n");
  // No messages: only the generation prompt, as the template renders it.
  EXPECT_EQ(bare.apply_chat_template({}, true), "<|im_start|>assistant\n");

  v.chat_template = "{{ bos_token }}[INST] {{ content }} [/INST]";
  EXPECT_THROW(Tokenizer::from_vocab(v).apply_chat_template(user), Error);
}

}  // namespace
}  // namespace t2::backbone
