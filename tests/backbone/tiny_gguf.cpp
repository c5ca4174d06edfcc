// GGUF writer for tests (see tiny_gguf.h). Byte layout follows docs/gguf.md;
// nothing here validates, so tests can write exactly the malformation they want.
#include "tests/backbone/tiny_gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace t2::test {
namespace {

void put_bytes(std::vector<std::byte>& out, const void* p, size_t n) {
  if (n == 0) return;
  const size_t at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, p, n);
}

template <typename T>
void put(std::vector<std::byte>& out, T v) {
  put_bytes(out, &v, sizeof(T));
}

void put_string(std::vector<std::byte>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

template <typename T>
MetaValue scalar(GgufValueType type, T v) {
  MetaValue m{uint32_t(type), {}};
  put(m.bytes, v);
  return m;
}

uint64_t align_up(uint64_t x, uint64_t a) {
  if (a <= 1) return x;
  return (x + a - 1) / a * a;
}

// splitmix64: a tiny, portable generator, so that files are the same everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float uniform() { return float(double(next() >> 40) * 0x1p-23 - 1.0); }

 private:
  uint64_t s_;
};

// A seed per tensor, so leaving one out or reshaping it leaves the others alone.
uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (char c : name) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
  return h;
}

float load_f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return backbone::f16_to_f32(h);
}

void store_f16(std::vector<std::byte>& out, float v) { put(out, backbone::f32_to_f16(v)); }

// Reference quantizers of ggml (quantize_row_*_ref): one block of 32 each.
void quantize_q8_0(const float* x, std::vector<std::byte>& out, float* y) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const size_t at = out.size();
  store_f16(out, d);
  const float dq = load_f16(out.data() + at);
  for (int j = 0; j < 32; ++j) {
    const auto q = int8_t(std::lround(x[j] * id));
    put(out, q);
    y[j] = dq * float(q);
  }
}

void quantize_q4_0(const float* x, std::vector<std::byte>& out, float* y) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const size_t at = out.size();
  store_f16(out, d);
  const float dq = load_f16(out.data() + at);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, int(int8_t(x[j] * id + 8.5f)));
    const int q1 = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
    put(out, uint8_t(q0 | (q1 << 4)));
    y[j] = dq * float(q0 - 8);
    y[j + 16] = dq * float(q1 - 8);
  }
}

void quantize_q4_1(const float* x, std::vector<std::byte>& out, float* y) {
  float min = x[0], max = x[0];
  for (int j = 1; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const size_t at = out.size();
  store_f16(out, d);
  store_f16(out, min);
  const float dq = load_f16(out.data() + at), mq = load_f16(out.data() + at + 2);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, int(int8_t((x[j] - min) * id + 0.5f)));
    const int q1 = std::min(15, int(int8_t((x[j + 16] - min) * id + 0.5f)));
    put(out, uint8_t(q0 | (q1 << 4)));
    y[j] = dq * float(q0) + mq;
    y[j + 16] = dq * float(q1) + mq;
  }
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 64);  // quiet NaN
  return uint16_t((uint64_t(u) + 0x7fff + ((u >> 16) & 1)) >> 16);     // nearest even
}

}  // namespace

// ---- metadata values -----------------------------------------------------------

MetaValue meta_u8(uint8_t v) { return scalar(GgufValueType::kU8, v); }
MetaValue meta_i8(int8_t v) { return scalar(GgufValueType::kI8, v); }
MetaValue meta_u16(uint16_t v) { return scalar(GgufValueType::kU16, v); }
MetaValue meta_i16(int16_t v) { return scalar(GgufValueType::kI16, v); }
MetaValue meta_u32(uint32_t v) { return scalar(GgufValueType::kU32, v); }
MetaValue meta_i32(int32_t v) { return scalar(GgufValueType::kI32, v); }
MetaValue meta_u64(uint64_t v) { return scalar(GgufValueType::kU64, v); }
MetaValue meta_i64(int64_t v) { return scalar(GgufValueType::kI64, v); }
MetaValue meta_f32(float v) { return scalar(GgufValueType::kF32, v); }
MetaValue meta_f64(double v) { return scalar(GgufValueType::kF64, v); }
MetaValue meta_bool(bool v) { return scalar(GgufValueType::kBool, uint8_t(v ? 1 : 0)); }

MetaValue meta_string(std::string_view s) {
  MetaValue m{uint32_t(GgufValueType::kString), {}};
  put_string(m.bytes, s);
  return m;
}

MetaValue meta_array(uint32_t element_type, const std::vector<MetaValue>& items) {
  MetaValue m{uint32_t(GgufValueType::kArray), {}};
  put(m.bytes, element_type);
  put<uint64_t>(m.bytes, items.size());
  for (const MetaValue& item : items) put_bytes(m.bytes, item.bytes.data(), item.bytes.size());
  return m;
}

MetaValue meta_string_array(const std::vector<std::string>& items) {
  std::vector<MetaValue> values;
  for (const std::string& s : items) values.push_back(meta_string(s));
  return meta_array(uint32_t(GgufValueType::kString), values);
}

MetaValue meta_i32_array(const std::vector<int32_t>& items) {
  std::vector<MetaValue> values;
  for (int32_t v : items) values.push_back(meta_i32(v));
  return meta_array(uint32_t(GgufValueType::kI32), values);
}

MetaValue meta_f32_array(const std::vector<float>& items) {
  std::vector<MetaValue> values;
  for (float v : items) values.push_back(meta_f32(v));
  return meta_array(uint32_t(GgufValueType::kF32), values);
}

// ---- the writer ------------------------------------------------------------------

void GgufWriter::add(std::string key, MetaValue value) {
  metadata.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_alignment(uint32_t a) {
  alignment = a;
  add("general.alignment", meta_u32(a));
}

TensorEntry& GgufWriter::add_tensor(std::string name, std::vector<uint64_t> dims, uint32_t type,
                                    std::vector<std::byte> data) {
  tensors.push_back({std::move(name), std::move(dims), type, std::move(data), {}, {}});
  return tensors.back();
}

TensorEntry& GgufWriter::add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type,
                                    std::vector<std::byte> data) {
  return add_tensor(std::move(name), std::move(dims), uint32_t(type), std::move(data));
}

TensorEntry& GgufWriter::add_f32(std::string name, std::vector<uint64_t> dims,
                                 const std::vector<float>& values) {
  std::vector<std::byte> data(values.size() * 4);
  std::memcpy(data.data(), values.data(), data.size());
  return add_tensor(std::move(name), std::move(dims), GgmlType::kF32, std::move(data));
}

std::vector<std::byte> GgufWriter::bytes(GgufLayout* layout) const {
  GgufLayout l;
  std::vector<std::byte> out;
  put(out, magic);
  put(out, version);
  put<uint64_t>(out, tensor_count.value_or(tensors.size()));
  put<uint64_t>(out, metadata_count.value_or(metadata.size()));

  l.metadata_start = out.size();
  for (const auto& [key, value] : metadata) {
    put_string(out, key);
    put(out, value.type);
    put_bytes(out, value.bytes.data(), value.bytes.size());
  }

  // Data placement first: each tensor at the next aligned offset.
  uint64_t at = 0;
  for (const TensorEntry& t : tensors) {
    at = align_up(at, alignment);
    l.tensor_at.push_back(at);
    at += t.data.size();
  }

  l.tensor_info_start = out.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorEntry& t = tensors[i];
    put_string(out, t.name);
    put<uint32_t>(out, t.n_dims.value_or(uint32_t(t.dims.size())));
    for (uint64_t d : t.dims) put(out, d);
    put(out, t.type);
    put<uint64_t>(out, t.offset.value_or(l.tensor_at[i]));
  }

  l.data_start = align_up(out.size(), alignment);
  out.resize(l.data_start);
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.resize(l.data_start + l.tensor_at[i]);
    put_bytes(out, tensors[i].data.data(), tensors[i].data.size());
  }
  l.size = out.size();
  if (layout) *layout = std::move(l);
  return out;
}

void GgufWriter::write(const std::string& path) const { write_file(path, bytes()); }

void write_file(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// ---- quantizers --------------------------------------------------------------------

std::vector<std::byte> quantize(GgmlType type, std::span<const float> x,
                                std::vector<float>* stored) {
  std::vector<std::byte> out;
  std::vector<float> y(x.size());
  using QuantFn = void (*)(const float*, std::vector<std::byte>&, float*);
  QuantFn block = nullptr;
  switch (type) {
    case GgmlType::kF32:
      put_bytes(out, x.data(), x.size() * 4);
      y.assign(x.begin(), x.end());
      break;
    case GgmlType::kF16:
      for (size_t i = 0; i < x.size(); ++i) {
        store_f16(out, x[i]);
        y[i] = load_f16(out.data() + 2 * i);
      }
      break;
    case GgmlType::kBF16:
      for (size_t i = 0; i < x.size(); ++i) {
        const uint16_t b = f32_to_bf16(x[i]);
        put(out, b);
        const uint32_t bits = uint32_t(b) << 16;
        std::memcpy(&y[i], &bits, 4);
      }
      break;
    case GgmlType::kQ8_0: block = quantize_q8_0; break;
    case GgmlType::kQ4_0: block = quantize_q4_0; break;
    case GgmlType::kQ4_1: block = quantize_q4_1; break;
    default:
      throw std::invalid_argument(std::string("tiny_gguf: no quantizer for ") +
                                  backbone::ggml_type_name(type));
  }
  if (block) {
    if (x.size() % 32 != 0) throw std::invalid_argument("tiny_gguf: size not a multiple of 32");
    for (size_t b = 0; b < x.size(); b += 32) block(x.data() + b, out, y.data() + b);
  }
  if (stored) *stored = std::move(y);
  return out;
}

// ---- tiny Llama ----------------------------------------------------------------------

const std::vector<float>& TinyLlama::operator[](const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw std::out_of_range("TinyLlama has no tensor " + name);
  return it->second;
}

std::vector<std::string> tiny_llama_tokens() {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  // GPT-2's byte alphabet: printable bytes stand for themselves, the other 68
  // take U+0100 upwards in byte order (space is U+0120 'Ġ').
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const char32_t cp = self ? char32_t(b) : next++;
    std::string text;
    if (cp < 0x80) {
      text += char(cp);
    } else {
      text += char(0xC0 | (cp >> 6));
      text += char(0x80 | (cp & 0x3F));
    }
    tokens.push_back(text);
  }
  for (const std::string& merge : tiny_llama_merges()) {
    std::string merged = merge;
    merged.erase(merged.find(' '), 1);
    tokens.push_back(merged);
  }
  return tokens;
}

std::vector<std::string> tiny_llama_merges() {
  return {"\xC4\xA0 t", "h e", "i n", "\xC4\xA0 a", "e r", "\xC4\xA0t he", "o n", "\xC4\xA0 s"};
}

std::string tiny_llama_chat_template() {
  return std::string(
             "{% for message in messages %}{% if loop.first and messages[0]['role'] != "
             "'system' %}{{ '<|im_start|>system\n") +
         kTinySystemMessage +
         "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
         "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
}

GgufWriter tiny_llama_writer(const TinyLlamaSpec& s, TinyLlama* out) {
  GgufWriter w;
  const int head_dim = s.n_embd / s.n_head;
  w.add("general.architecture", meta_string("llama"));
  w.add("general.name", meta_string("tiny-llama"));
  w.add("llama.block_count", meta_u32(uint32_t(s.n_layer)));
  w.add("llama.context_length", meta_u32(uint32_t(s.n_ctx)));
  w.add("llama.embedding_length", meta_u32(uint32_t(s.n_embd)));
  w.add("llama.feed_forward_length", meta_u32(uint32_t(s.n_ff)));
  w.add("llama.attention.head_count", meta_u32(uint32_t(s.n_head)));
  w.add("llama.attention.head_count_kv", meta_u32(uint32_t(s.n_head_kv)));
  w.add("llama.rope.freq_base", meta_f32(s.rope_base));
  w.add("llama.attention.layer_norm_rms_epsilon", meta_f32(s.rms_eps));
  w.add("llama.rope.dimension_count", meta_u32(uint32_t(head_dim)));
  w.add("llama.vocab_size", meta_u32(kTinyVocab));

  std::vector<int32_t> token_types(kTinyVocab, 1);
  token_types[0] = token_types[1] = token_types[2] = 3;
  w.add("tokenizer.ggml.model", meta_string("gpt2"));
  w.add("tokenizer.ggml.pre", meta_string("smollm"));
  w.add("tokenizer.ggml.tokens", meta_string_array(tiny_llama_tokens()));
  w.add("tokenizer.ggml.token_type", meta_i32_array(token_types));
  w.add("tokenizer.ggml.merges", meta_string_array(tiny_llama_merges()));
  w.add("tokenizer.ggml.bos_token_id", meta_u32(1));
  w.add("tokenizer.ggml.eos_token_id", meta_u32(2));
  w.add("tokenizer.ggml.padding_token_id", meta_u32(2));
  w.add("tokenizer.ggml.add_bos_token", meta_bool(false));
  w.add("tokenizer.chat_template", meta_string(tiny_llama_chat_template()));

  // Weights: matrices U(-1,1)/sqrt(in), norms 1 +- 0.2, embeddings U(-1,1).
  TinyLlama values;
  enum class Kind { kEmbed, kNorm, kMatrix };
  auto tensor = [&](const std::string& name, std::vector<uint64_t> dims, Kind kind,
                    GgmlType type) {
    if (s.omit.count(name)) return;
    if (auto it = s.tensor_dims.find(name); it != s.tensor_dims.end()) dims = it->second;
    if (auto it = s.tensor_type.find(name); it != s.tensor_type.end()) type = it->second;
    uint64_t n = 1;
    for (uint64_t d : dims) n *= d;
    Rng rng(tensor_seed(s.seed, name));
    std::vector<float> x(n);
    const float scale = kind == Kind::kMatrix ? 1.0f / std::sqrt(float(dims[0])) : 1.0f;
    for (float& v : x) {
      v = kind == Kind::kNorm ? 1.0f + 0.2f * rng.uniform() : scale * rng.uniform();
    }
    std::vector<float> stored;
    w.add_tensor(name, std::move(dims), type, quantize(type, x, &stored));
    values.tensors[name] = std::move(stored);
  };

  const auto embd = uint64_t(s.n_embd), ff = uint64_t(s.n_ff), vocab = uint64_t(kTinyVocab);
  const auto q_dim = uint64_t(s.n_head * head_dim), kv_dim = uint64_t(s.n_head_kv * head_dim);
  tensor("token_embd.weight", {embd, vocab}, Kind::kEmbed, s.embd_type);
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    tensor(b + "attn_norm.weight", {embd}, Kind::kNorm, GgmlType::kF32);
    tensor(b + "attn_q.weight", {embd, q_dim}, Kind::kMatrix, s.matrix_type);
    tensor(b + "attn_k.weight", {embd, kv_dim}, Kind::kMatrix, s.matrix_type);
    tensor(b + "attn_v.weight", {embd, kv_dim}, Kind::kMatrix, s.matrix_type);
    tensor(b + "attn_output.weight", {q_dim, embd}, Kind::kMatrix, s.matrix_type);
    tensor(b + "ffn_norm.weight", {embd}, Kind::kNorm, GgmlType::kF32);
    tensor(b + "ffn_gate.weight", {embd, ff}, Kind::kMatrix, s.matrix_type);
    tensor(b + "ffn_up.weight", {embd, ff}, Kind::kMatrix, s.matrix_type);
    tensor(b + "ffn_down.weight", {ff, embd}, Kind::kMatrix, s.matrix_type);
  }
  tensor("output_norm.weight", {embd}, Kind::kNorm, GgmlType::kF32);
  if (!s.tied_output) tensor("output.weight", {embd, vocab}, Kind::kMatrix, s.matrix_type);

  if (out) *out = std::move(values);
  return w;
}

TinyLlama write_tiny_llama(const std::string& path, const TinyLlamaSpec& spec) {
  TinyLlama values;
  tiny_llama_writer(spec, &values).write(path);
  return values;
}

}  // namespace t2::test
