// A GGUF writer for tests: well-formed tiny Llama models with seeded random
// weights, and a lower-level writer that puts any bytes anywhere so tests can
// craft malformed files. Written to be read by backbone::GgufFile and Model.
//
// Tiny model, one call (in tests/backbone/CMakeLists.txt: LIBS t2_backbone t2_tiny_gguf;
// #include "tests/backbone/tiny_gguf.h"):
//
//   t2::test::TinyLlamaSpec spec;               // 2 layers, embd 64, 4/2 heads, ff 128
//   spec.matrix_type = GgmlType::kQ4_1;         // attn_* and ffn_* (and output)
//   auto tiny = t2::test::write_tiny_llama(dir + "/tiny.gguf", spec);
//   auto model = Model::load(dir + "/tiny.gguf");
//   // tiny.tensors["blk.0.attn_q.weight"] holds exactly what the file stores, as
//   // f32 in file order (row-major [out x in]), after quantization.
//
// Vocabulary (kTinyVocab = 267 tokens): ids 0 <|endoftext|>, 1 <|im_start|>,
// 2 <|im_end|> (control), then the 256 bytes in GPT-2's byte alphabet (byte b
// is id 3 + b), then one token per merge in tiny_llama_merges() order. bos 1,
// eos 2, pre "smollm", a ChatML template whose system message is
// kTinySystemMessage.
//
// Malformed files: build a GgufWriter (or take tiny_llama_writer()), change
// fields, metadata values, tensor offsets or counts, then bytes() or write().
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backbone/ggml_type.h"
#include "backbone/gguf.h"

namespace t2::test {

using backbone::GgmlType;
using backbone::GgufValueType;

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32

// ---- metadata values ---------------------------------------------------------

// One encoded metadata value: the u32 type id and the bytes that follow it. The
// type is a plain integer so that tests can write ids the reader does not know.
struct MetaValue {
  uint32_t type = 0;
  std::vector<std::byte> bytes;
};

MetaValue meta_u8(uint8_t v);
MetaValue meta_i8(int8_t v);
MetaValue meta_u16(uint16_t v);
MetaValue meta_i16(int16_t v);
MetaValue meta_u32(uint32_t v);
MetaValue meta_i32(int32_t v);
MetaValue meta_u64(uint64_t v);
MetaValue meta_i64(int64_t v);
MetaValue meta_f32(float v);
MetaValue meta_f64(double v);
MetaValue meta_bool(bool v);
MetaValue meta_string(std::string_view s);
// An array: element type, count, then each item's bytes (items' own types are
// not written, so items whose type differs from `element_type` make a lie).
MetaValue meta_array(uint32_t element_type, const std::vector<MetaValue>& items);
MetaValue meta_string_array(const std::vector<std::string>& items);
MetaValue meta_i32_array(const std::vector<int32_t>& items);
MetaValue meta_f32_array(const std::vector<float>& items);

// ---- the writer --------------------------------------------------------------

struct TensorEntry {
  std::string name;
  std::vector<uint64_t> dims;          // fastest-varying first, as GGUF stores them
  uint32_t type = 0;                   // ggml type id
  std::vector<std::byte> data;         // placed at the next aligned data offset
  std::optional<uint64_t> offset;      // written instead of the offset it was placed at
  std::optional<uint32_t> n_dims;      // written instead of dims.size()
};

// Where things landed in the last bytes() call, as file offsets.
struct GgufLayout {
  uint64_t metadata_start = 0;       // first metadata entry (after the 24-byte header)
  uint64_t tensor_info_start = 0;    // first tensor info
  uint64_t data_start = 0;           // data section (aligned)
  std::vector<uint64_t> tensor_at;   // each tensor's data, relative to data_start
  uint64_t size = 0;
};

class GgufWriter {
 public:
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;    // written instead of tensors.size()
  std::optional<uint64_t> metadata_count;  // written instead of metadata.size()
  uint64_t alignment = 32;                 // layout only; set_alignment also writes the key
  std::vector<std::pair<std::string, MetaValue>> metadata;
  std::deque<TensorEntry> tensors;         // a deque: references stay valid on add

  void add(std::string key, MetaValue value);
  // Sets the layout alignment and writes `general.alignment` as u32.
  void set_alignment(uint32_t alignment);
  TensorEntry& add_tensor(std::string name, std::vector<uint64_t> dims, uint32_t type,
                          std::vector<std::byte> data);
  TensorEntry& add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type,
                          std::vector<std::byte> data);
  // F32 convenience: data is the floats.
  TensorEntry& add_f32(std::string name, std::vector<uint64_t> dims,
                       const std::vector<float>& values);

  std::vector<std::byte> bytes(GgufLayout* layout = nullptr) const;
  void write(const std::string& path) const;
};

// Writes `bytes` to `path` (throws std::runtime_error on failure).
void write_file(const std::string& path, std::span<const std::byte> bytes);

// ---- quantizers ----------------------------------------------------------------

// Quantizes `x` (a multiple of the block size) to `type`: F32, F16, BF16, Q8_0,
// Q4_0, Q4_1, with the plain reference algorithms of ggml. `stored`, if given,
// receives the values the blocks stand for (decoded here, not by t2).
std::vector<std::byte> quantize(GgmlType type, std::span<const float> x,
                                std::vector<float>* stored = nullptr);

// ---- tiny Llama ----------------------------------------------------------------

constexpr int kTinyVocab = 3 + 256 + 8;
constexpr const char* kTinySystemMessage = "You are a tiny test model.";

struct TinyLlamaSpec {
  uint64_t seed = 1;
  int n_layer = 2;
  int n_embd = 64;
  int n_head = 4;
  int n_head_kv = 2;
  int n_ff = 128;
  int n_ctx = 256;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = true;                  // false: write a separate output.weight
  GgmlType matrix_type = GgmlType::kF32;    // attn_q/k/v/output, ffn_gate/up/down, output
  GgmlType embd_type = GgmlType::kF32;      // token_embd (norms are always F32)
  // Per tensor, by full name ("blk.0.attn_q.weight"): wins over the two above.
  std::map<std::string, GgmlType> tensor_type;
  // To break a model on purpose: tensors left out, and dims written instead
  // (random data of the new shape is written).
  std::set<std::string> omit;
  std::map<std::string, std::vector<uint64_t>> tensor_dims;
};

// What was written: each tensor's values as the file holds them (after
// quantization), in file order, so a Linear [out x in] is row-major.
struct TinyLlama {
  std::map<std::string, std::vector<float>> tensors;
  const std::vector<float>& operator[](const std::string& name) const;
};

// The 267 token texts (GPT-2 byte alphabet), the merges, the chat template.
std::vector<std::string> tiny_llama_tokens();
std::vector<std::string> tiny_llama_merges();
std::string tiny_llama_chat_template();

// The model as a writer, to tweak before writing; `out` gets the tensor values.
GgufWriter tiny_llama_writer(const TinyLlamaSpec& spec = {}, TinyLlama* out = nullptr);
TinyLlama write_tiny_llama(const std::string& path, const TinyLlamaSpec& spec = {});

}  // namespace t2::test
