// GGUF reader: maps a model file read-only, parses its metadata and tensor table
// with every count, length and offset checked against the file, and hands out
// typed metadata and tensor views. Any malformation throws t2::Error naming the
// file and the field; a GgufFile that constructed is internally consistent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "backbone/ggml_type.h"

namespace t2::backbone {

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Integers keep their sign in the variant they land in;
// arrays hold their elements (and the element type, even when empty).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType element_type = GgufValueType::kU8;  // for arrays
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // fastest-varying first, as stored
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;         // relative to the data section
  const std::byte* data = nullptr;
  uint64_t n_bytes = 0;

  int64_t n_elements() const;
  // Rows and columns of a 2-D matrix in PyTorch order: [dims[1], dims[0]].
  int64_t rows() const { return dims.size() > 1 ? dims[1] : 1; }
  int64_t cols() const { return dims[0]; }
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws t2::Error on any problem.
  explicit GgufFile(const std::string& path);
  // Parses an in-memory image (used by the fuzz test); `bytes` must outlive this.
  GgufFile(std::span<const std::byte> bytes, std::string label);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }

  // Metadata.
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: accept any integer width (and sign where the value fits);
  // throw t2::Error naming the key when absent or of the wrong type.
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // Same, with a default when the key is absent (still throws on a wrong type).
  uint64_t get_uint(const std::string& key, uint64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  // Tensors.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  const TensorInfo& tensor(const std::string& name) const;  // throws if missing

  // Dequantizes a whole tensor to f32 (row-major, fastest dim last in memory as
  // stored, i.e. element i of the file is element i of the result).
  std::vector<float> dequantize(const TensorInfo& t) const;

 private:
  void parse();

  std::string path_;
  const std::byte* base_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace t2::backbone
