// Byte-level BPE as HF `tokenizers` runs SmolLM2's tokenizer.json: added tokens
// cut out first, then Digits(individual) + ByteLevel's GPT-2 split on each stretch
// between digits, then ranked merges on the bytes of each piece. Every step works
// on raw bytes; the GPT-2 byte alphabet only appears when reading the GGUF tables.
#include "backbone/tokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <optional>
#include <queue>
#include <shared_mutex>

#include "backbone/gguf.h"
#include "t2/error.h"

namespace t2::backbone {

namespace {

constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;
constexpr size_t kCacheMaxEntries = 1 << 16;
constexpr size_t kCacheMaxPieceBytes = 64;
constexpr const char* kSmolLmSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// ---- GPT-2 byte alphabet ----------------------------------------------------

// Bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF stand for themselves; the other 68 take
// U+0100.. in ascending order. cp_to_byte covers U+0000..U+0143.
struct ByteAlphabet {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<int16_t, 0x144> cp_to_byte{};

  ByteAlphabet() {
    cp_to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_cp[b] = self ? char32_t(b) : next++;
      cp_to_byte[byte_to_cp[b]] = int16_t(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet table;
  return table;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

constexpr char32_t kInvalid = 0xFFFFFFFF;

// Decodes one code point at text[pos] and advances pos. A malformed sequence
// yields kInvalid for its first byte only, so every byte is kept.
char32_t next_code_point(std::string_view text, size_t& pos) {
  auto byte = [&](size_t i) { return uint8_t(text[i]); };
  uint8_t b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
  char32_t cp = len == 4 ? b0 & 0x07 : len == 3 ? b0 & 0x0F : b0 & 0x1F;
  bool ok = len > 0 && b0 < 0xF5 && pos + len <= text.size();
  for (int i = 1; ok && i < len; ++i) {
    ok = (byte(pos + i) & 0xC0) == 0x80;
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  static constexpr char32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
  ok = ok && cp >= kMinForLen[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  if (!ok) {
    ++pos;
    return kInvalid;
  }
  pos += len;
  return cp;
}

// Text in the byte alphabet to raw bytes; nullopt if a character is outside it
// (such tokens, e.g. a control token with a literal space, stand for their UTF-8).
bool alphabet_to_bytes(std::string_view text, std::string& out) {
  out.clear();
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = next_code_point(text, pos);
    if (cp >= alphabet().cp_to_byte.size() || alphabet().cp_to_byte[cp] < 0) return false;
    out += char(alphabet().cp_to_byte[cp]);
  }
  return true;
}

// ---- character classes of the GPT-2 pattern ---------------------------------

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// \p{L}, \p{N} by general category; \s as Oniguruma's Unicode \s (White_Space).
CharClass classify(char32_t cp) {
  if (cp == kInvalid) return CharClass::kOther;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  uint32_t mask = U_GET_GC_MASK(UChar32(cp));
  if (mask & U_GC_L_MASK) return CharClass::kLetter;
  if (mask & U_GC_N_MASK) return CharClass::kNumber;
  if (u_isUWhiteSpace(UChar32(cp))) return CharClass::kSpace;
  return CharClass::kOther;
}

struct CodePoint {
  char32_t cp;
  CharClass cls;
  uint32_t offset;  // byte offset of the code point in the text
};

// Length of the GPT-2 pattern's match at c[i] within [i, end):
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// The lookahead sees only this stretch, as when the regex runs on a split piece.
size_t gpt2_match_end(const CodePoint* c, size_t i, size_t end) {
  if (c[i].cp == '\'' && i + 1 < end) {
    char32_t a = c[i + 1].cp;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < end) {
      char32_t b = c[i + 2].cp;
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        return i + 3;
      }
    }
  }

  // ` ?X+` for letters, numbers and "other": a space may lead any of them.
  size_t j = i + (c[i].cp == ' ' ? 1 : 0);
  if (j < end && c[j].cls != CharClass::kSpace) {
    CharClass run = c[j].cls;
    while (j < end && c[j].cls == run) ++j;
    return j;
  }

  // Whitespace: the whole run at the end of the stretch; before a non-space the
  // run gives up its last character (to lead the next word) if it has two.
  size_t k = i;
  while (k < end && c[k].cls == CharClass::kSpace) ++k;
  if (k < end && k - i >= 2) return k - 1;
  return k;
}

}  // namespace

// ---- implementation state ---------------------------------------------------

enum class PreTokenizer { kGpt2, kDigitsThenGpt2 };

struct Tokenizer::Impl {
  std::vector<std::string> bytes;  // raw bytes of each token
  std::vector<int32_t> types;
  std::unordered_map<std::string, int32_t> id_of_text;  // byte-alphabet text
  std::array<int32_t, 256> byte_token{};                // -1: byte not in vocab
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<uint64_t, Merge> merges;           // (left << 32 | right)
  std::array<std::vector<int32_t>, 256> added_by_first_byte;  // longest first
  PreTokenizer pre = PreTokenizer::kDigitsThenGpt2;
  int32_t bos = -1, eos = -1, pad = -1;
  std::string chat_template;
  std::string default_system;
  bool has_default_system = true;

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }

  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  int32_t match_added(std::string_view text, size_t pos, bool parse_special) const;
};

// Ranked merges over the bytes of one piece: the lowest-rank adjacent pair
// merges first, the leftmost on ties. Symbols form a linked list; the queue may
// hold stale pairs, which are skipped when their symbols changed.
void Tokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (char ch : piece) {
    // A byte without a token is dropped, as HF's BPE without unk does.
    int32_t id = byte_token[uint8_t(ch)];
    if (id < 0) continue;
    int32_t n = int32_t(symbols.size());
    symbols.push_back({id, n - 1, n + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank, left, left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    int32_t right = symbols[left].next;
    auto it = merges.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges.end()) {
      queue.push({it->second.rank, left, symbols[left].id, symbols[right].id});
    }
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    if (left.id != top.left_id || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (right.id != top.right_id) continue;

    left.id = merges.at(pair_key(top.left_id, top.right_id)).id;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.left;
    push(left.prev);
    push(top.left);
  }

  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

// BPE through a bounded cache shared by all threads (short pieces only).
void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() > kCacheMaxPieceBytes) {
    bpe(piece, out);
    return;
  }
  std::string key(piece);
  {
    std::shared_lock lock(cache_mutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  bpe(piece, out);
  std::vector<int32_t> ids(out.begin() + start, out.end());
  std::unique_lock lock(cache_mutex);
  if (cache.size() >= kCacheMaxEntries) cache.clear();
  cache.emplace(std::move(key), std::move(ids));
}

// Pre-tokenizes text free of added tokens and encodes each piece.
void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<CodePoint> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t offset = uint32_t(pos);
    char32_t cp = next_code_point(text, pos);
    cps.push_back({cp, classify(cp), offset});
  }
  auto byte_at = [&](size_t i) { return i < cps.size() ? cps[i].offset : text.size(); };
  auto emit = [&](size_t from, size_t to) {
    encode_piece(text.substr(byte_at(from), byte_at(to) - byte_at(from)), out);
  };
  auto split_gpt2 = [&](size_t from, size_t to) {
    for (size_t i = from; i < to;) {
      size_t end = gpt2_match_end(cps.data(), i, to);
      emit(i, end);
      i = end;
    }
  };

  if (pre == PreTokenizer::kGpt2) {
    split_gpt2(0, cps.size());
    return;
  }
  // Digits(individual): each \p{N} alone; the stretches between get the pattern.
  size_t stretch = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps[i].cls != CharClass::kNumber) continue;
    split_gpt2(stretch, i);
    emit(i, i + 1);
    stretch = i + 1;
  }
  split_gpt2(stretch, cps.size());
}

// The added token (control if parse_special, user-defined always) that starts
// at text[pos], longest first; -1 if none.
int32_t Tokenizer::Impl::match_added(std::string_view text, size_t pos,
                                     bool parse_special) const {
  for (int32_t id : added_by_first_byte[uint8_t(text[pos])]) {
    if (!parse_special && types[id] == kTypeControl) continue;
    if (text.substr(pos).starts_with(bytes[id])) return id;
  }
  return -1;
}

// ---- construction -----------------------------------------------------------

namespace {

PreTokenizer parse_pre(const std::string& name) {
  // llama.cpp gives these names the same two-step split as SmolLM2.
  for (const char* digits : {"smollm", "starcoder", "refact", "codeshell", "minerva"}) {
    if (name == digits) return PreTokenizer::kDigitsThenGpt2;
  }
  for (const char* plain : {"gpt2", "default", "mpt", "olmo", "jais"}) {
    if (name == plain) return PreTokenizer::kGpt2;
  }
  fail("tokenizer.ggml.pre is '{}', which t2 does not implement; supported: smollm "
       "(digits split, GPT-2 pattern) and gpt2 (GPT-2 pattern), with their llama.cpp "
       "aliases", name);
}

// The system message the template adds when none is given: the text between
// "<|im_start|>system" + newline and "<|im_end|>" inside one string literal.
std::optional<std::string> template_system_message(const std::string& tmpl) {
  const std::string head = "<|im_start|>system";
  size_t at = tmpl.find(head);
  if (at == std::string::npos) return std::nullopt;
  at += head.size();
  if (tmpl.compare(at, 1, "\n") == 0) {
    at += 1;
  } else if (tmpl.compare(at, 2, "\\n") == 0) {
    at += 2;
  } else {
    return std::nullopt;
  }
  size_t end = tmpl.find("<|im_end|>", at);
  if (end == std::string::npos) return std::nullopt;
  std::string text = tmpl.substr(at, end - at);
  // Anything jinja would evaluate means the message is not a plain literal.
  if (text.find_first_of("'\"{}+") != std::string::npos) return std::nullopt;
  return text;
}

int32_t checked_id(int32_t id, const char* what, size_t n_tokens) {
  if (id >= int32_t(n_tokens)) {
    fail("tokenizer {} id {} is outside the vocabulary of {} tokens", what, id, n_tokens);
  }
  return id;
}

}  // namespace

Tokenizer Tokenizer::from_vocab(TokenizerVocab vocab) {
  auto impl = std::make_shared<Impl>();
  const size_t n = vocab.tokens.size();
  if (n == 0) fail("tokenizer vocabulary is empty; expected tokenizer.ggml.tokens");
  if (!vocab.token_types.empty() && vocab.token_types.size() != n) {
    fail("tokenizer has {} tokens but {} token types; the GGUF tables disagree", n,
         vocab.token_types.size());
  }
  impl->pre = parse_pre(vocab.pre);
  impl->types = vocab.token_types.empty() ? std::vector<int32_t>(n, 1) : vocab.token_types;

  // Tokens: raw bytes, and the text index used by merges (first id wins).
  impl->bytes.resize(n);
  impl->id_of_text.reserve(n);
  for (size_t id = 0; id < n; ++id) {
    const std::string& text = vocab.tokens[id];
    if (!alphabet_to_bytes(text, impl->bytes[id])) impl->bytes[id] = text;
    impl->id_of_text.emplace(text, int32_t(id));
  }
  for (int b = 0; b < 256; ++b) {
    std::string text;
    append_utf8(text, alphabet().byte_to_cp[b]);
    auto it = impl->id_of_text.find(text);
    impl->byte_token[b] = it == impl->id_of_text.end() ? -1 : it->second;
  }

  // Merges: rank = index; the merged text must be a token.
  impl->merges.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& merge = vocab.merges[rank];
    size_t space = merge.find(' ', 1);
    if (space == std::string::npos) {
      fail("tokenizer merge {} '{}' is not 'left right'", rank, merge);
    }
    auto left = impl->id_of_text.find(merge.substr(0, space));
    auto right = impl->id_of_text.find(merge.substr(space + 1));
    auto merged = impl->id_of_text.find(merge.substr(0, space) + merge.substr(space + 1));
    auto end = impl->id_of_text.end();
    if (left == end || right == end || merged == end) {
      fail("tokenizer merge {} '{}' names a token missing from the vocabulary; the "
           "GGUF's tokens and merges disagree", rank, merge);
    }
    impl->merges.emplace(Impl::pair_key(left->second, right->second),
                         Impl::Merge{int32_t(rank), merged->second});
  }

  // Added tokens, matched in the text before pre-tokenization.
  for (size_t id = 0; id < n; ++id) {
    int32_t type = impl->types[id];
    if ((type == kTypeControl || type == kTypeUserDefined) && !impl->bytes[id].empty()) {
      impl->added_by_first_byte[uint8_t(impl->bytes[id][0])].push_back(int32_t(id));
    }
  }
  for (auto& ids : impl->added_by_first_byte) {
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return impl->bytes[a].size() > impl->bytes[b].size();
    });
  }

  impl->bos = checked_id(vocab.bos_id, "bos", n);
  impl->eos = checked_id(vocab.eos_id, "eos", n);
  impl->pad = checked_id(vocab.pad_id, "padding", n);

  // Chat: the template's own default system message; SmolLM2's when there is no
  // template; none when the template has no system literal.
  impl->chat_template = std::move(vocab.chat_template);
  if (impl->chat_template.empty()) {
    impl->default_system = kSmolLmSystem;
  } else if (auto text = template_system_message(impl->chat_template)) {
    impl->default_system = *text;
  } else {
    impl->has_default_system = false;
  }

  Tokenizer tokenizer;
  tokenizer.impl_ = std::move(impl);
  return tokenizer;
}

Tokenizer Tokenizer::from_gguf(const GgufFile& gguf) {
  std::string model = gguf.get_string("tokenizer.ggml.model", "");
  if (model != "gpt2") {
    fail("{}: tokenizer.ggml.model is '{}'; t2 reads only byte-level BPE ('gpt2'), as "
         "in SmolLM2 and Llama-3 style models", gguf.path(), model);
  }
  auto id_or_none = [&](const std::string& key) {
    return gguf.has(key) ? int32_t(gguf.get_uint(key)) : -1;
  };

  TokenizerVocab vocab;
  vocab.tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  if (gguf.has("tokenizer.ggml.token_type")) {
    for (int64_t type : gguf.get_int_array("tokenizer.ggml.token_type")) {
      vocab.token_types.push_back(int32_t(type));
    }
  }
  vocab.merges = gguf.get_string_array("tokenizer.ggml.merges");
  vocab.pre = gguf.get_string("tokenizer.ggml.pre", "default");
  vocab.bos_id = id_or_none("tokenizer.ggml.bos_token_id");
  vocab.eos_id = id_or_none("tokenizer.ggml.eos_token_id");
  vocab.pad_id = id_or_none("tokenizer.ggml.padding_token_id");
  vocab.chat_template = gguf.get_string("tokenizer.chat_template", "");
  try {
    return from_vocab(std::move(vocab));
  } catch (const Error& e) {
    fail("{}: {}", gguf.path(), e.what());
  }
}

// ---- encode / decode --------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  size_t plain = 0;  // start of the text not yet encoded
  for (size_t pos = 0; pos < text.size();) {
    int32_t added = impl_->match_added(text, pos, parse_special);
    if (added < 0) {
      ++pos;
      continue;
    }
    impl_->encode_text(text.substr(plain, pos - plain), ids);
    ids.push_back(added);
    pos += impl_->bytes[added].size();
    plain = pos;
  }
  impl_->encode_text(text.substr(plain), ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string text;
  for (int32_t id : ids) {
    if (skip_special && is_control(id)) continue;
    text += token_bytes(id);
  }
  return text;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    fail("token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  }
  return impl_->bytes[id];
}

int32_t Tokenizer::token_id(std::string_view text) const {
  auto it = impl_->id_of_text.find(std::string(text));
  return it == impl_->id_of_text.end() ? -1 : it->second;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->bytes.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->types[id] == kTypeControl;
}

std::vector<int32_t> Tokenizer::stop_ids() const {
  std::vector<int32_t> ids;
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  add(impl_->eos);
  add(token_id("<|im_end|>"));
  add(token_id("<|endoftext|>"));
  return ids;
}

// ---- chat -------------------------------------------------------------------

const std::string& Tokenizer::default_system_message() const {
  return impl_->default_system;
}

// ChatML as SmolLM2's template renders it:
//   {% if loop.first and messages[0]['role'] != 'system' %} default system {% endif %}
//   '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'  per message
//   '<|im_start|>assistant\n'                                 if add_generation_prompt
std::string Tokenizer::apply_chat_template(std::span<const ChatMessage> messages,
                                           bool add_generation_prompt) const {
  const std::string& tmpl = impl_->chat_template;
  if (!tmpl.empty() && tmpl.find("<|im_start|>") == std::string::npos) {
    fail("the model's chat template is not ChatML; t2 renders only ChatML templates "
         "(<|im_start|>role\\ncontent<|im_end|>)");
  }
  std::string text;
  if (!messages.empty() && messages[0].role != "system" && impl_->has_default_system) {
    text += "<|im_start|>system\n" + impl_->default_system + "<|im_end|>\n";
  }
  for (const ChatMessage& m : messages) {
    text += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
  return text;
}

}  // namespace t2::backbone
