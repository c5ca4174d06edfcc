// Tokenizer against the real model: every string of tests/reference/
// tokenizer_reference.jsonl (ids made by HF tokenizers from the same GGUF, see
// make_tokenizer_reference.py) must give identical ids, decode back to its text,
// and render chats exactly as the GGUF's jinja template does.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <thread>

#include "backbone/gguf.h"
#include "backbone/tokenizer.h"

namespace t2::backbone {
namespace {

using Ids = std::vector<int32_t>;

const Tokenizer& model_tokenizer() {
  static const GgufFile gguf(T2_MODEL_PATH);
  static const Tokenizer tok = Tokenizer::from_gguf(gguf);
  return tok;
}

std::vector<nlohmann::json> reference_cases() {
  std::ifstream in(T2_SOURCE_DIR "/tests/reference/tokenizer_reference.jsonl");
  EXPECT_TRUE(in) << "missing tests/reference/tokenizer_reference.jsonl; run "
                     "tests/reference/make_tokenizer_reference.py";
  std::vector<nlohmann::json> cases;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) cases.push_back(nlohmann::json::parse(line));
  }
  return cases;
}

std::string ids_text(const Ids& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

TEST(TokenizerModel, TablesAndSpecialIds) {
  const Tokenizer& tok = model_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 2);
  EXPECT_TRUE(tok.is_control(0));
  EXPECT_EQ(tok.token_bytes(1), "<|im_start|>");
  EXPECT_EQ(tok.stop_ids(), (Ids{2, 0}));
  EXPECT_EQ(tok.default_system_message(),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

TEST(TokenizerModel, MatchesHfReference) {
  const Tokenizer& tok = model_tokenizer();
  size_t n_text = 0, n_chat = 0, mismatched = 0, not_round_trip = 0;
  for (const auto& c : reference_cases()) {
    std::string text = c["text"];
    Ids expected = c["ids"].get<Ids>();
    if (c.contains("chat")) {
      std::vector<ChatMessage> messages;
      for (const auto& m : c["chat"]) messages.push_back({m["role"], m["content"]});
      EXPECT_EQ(tok.apply_chat_template(messages, c["add_generation_prompt"]), text);
      ++n_chat;
    } else {
      ++n_text;
    }
    bool parse_special = c.value("parse_special", true);
    Ids ids = tok.encode(text, parse_special);
    if (ids != expected) {
      if (++mismatched <= 10) {
        ADD_FAILURE() << "text " << nlohmann::json(text).dump() << "\n  ours " << ids_text(ids)
                      << "\n  hf   " << ids_text(expected);
      }
    }
    // Bytes without a token (e.g. 0x04) are dropped, as by HF; those cannot round-trip.
    if (c.value("round_trip", true) && tok.decode(ids) != text) ++not_round_trip;
  }
  std::printf("reference: %zu texts, %zu chats, %zu mismatched, %zu not round-tripping\n",
              n_text, n_chat, mismatched, not_round_trip);
  EXPECT_GE(n_text, 1000u);
  EXPECT_GE(n_chat, 1u);
  EXPECT_EQ(mismatched, 0u);
  EXPECT_EQ(not_round_trip, 0u);
}

// encode() is const and shares its piece cache between threads.
TEST(TokenizerModel, SameIdsFromManyThreads) {
  const Tokenizer& tok = model_tokenizer();
  std::vector<nlohmann::json> cases = reference_cases();
  std::vector<size_t> wrong(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < wrong.size(); ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < 3 * cases.size(); ++i) {
        const auto& c = cases[(i + t * 97) % cases.size()];
        Ids ids = tok.encode(c["text"].get<std::string>(), c.value("parse_special", true));
        if (ids != c["ids"].get<Ids>()) ++wrong[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < wrong.size(); ++t) EXPECT_EQ(wrong[t], 0u) << "thread " << t;
}

TEST(TokenizerModel, RoundTripsAMegabyteOfRealText) {
  const Tokenizer& tok = model_tokenizer();
  std::string corpus;
  std::ifstream in(T2_DATA_DIR "/gsm8k/train.jsonl");
  for (std::string line; corpus.size() < (1u << 20) && std::getline(in, line);) {
    corpus += line + "\n";
  }
  if (corpus.size() < (1u << 20)) {
    for (const auto& c : reference_cases()) corpus += c["text"].get<std::string>();
    while (corpus.size() < (1u << 20)) corpus += corpus;
  }
  Ids ids = tok.encode(corpus);
  EXPECT_GT(ids.size(), corpus.size() / 8);  // BPE on English: roughly 4 bytes per token
  EXPECT_EQ(tok.decode(ids), corpus);
}

}  // namespace
}  // namespace t2::backbone
