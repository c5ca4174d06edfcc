// A small reader and writer of the safetensors format: an 8-byte little-endian
// header length, a JSON header (dtype, shape, data_offsets per tensor and an
// optional `__metadata__` string map), then the data. The reader accepts a file
// only if every tensor lies in the data section, tensors tile it without holes or
// overlap, and dtype and shape agree with the byte count. Files are mapped
// read-only, so processes opening one file share its pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace t2::backbone::safetensors {

enum class Dtype { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };
const char* dtype_name(Dtype dtype);  // "F32", ...
int dtype_size(Dtype dtype);          // bytes per element

struct TensorView {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  // points into the file

  int64_t numel() const;
  // The values of an F32 tensor, copied (any alignment). Throws for other dtypes.
  std::vector<float> to_f32() const;
  // Zero-copy view of an F32 tensor; throws unless it is F32 and 4-byte aligned.
  std::span<const float> f32() const;
};

using Metadata = std::map<std::string, std::string>;

class File {
 public:
  // Maps `path` read-only and validates it; throws t2::Error naming the file.
  static File open(const std::string& path);
  // Validates `bytes` (kept alive by `owner`); `what` names it in errors.
  static File parse(std::shared_ptr<const void> owner, std::span<const std::byte> bytes,
                    const std::string& what);

  const std::string& path() const { return what_; }
  const Metadata& metadata() const { return metadata_; }
  const std::string* find_metadata(const std::string& key) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }  // by data offset
  const TensorView* find(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;   // throws when absent
  std::span<const std::byte> data() const { return data_; }  // the whole data section
  // Keeps the mapping alive for views that outlive this object.
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  std::string what_;
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> data_;
  Metadata metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

// One F32 tensor to write; `values` must hold product(shape) floats.
struct TensorOut {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> values;
};

// SHA-256 (hex) of what the data section of write(tensors) will hold, in order:
// the checksum a caller may put into the metadata before writing.
std::string data_sha256(std::span<const TensorOut> tensors);
// SHA-256 (hex) of bytes.
std::string sha256_hex(std::span<const std::byte> bytes);

// Writes tensors (in the given order) and metadata to `path` atomically: a temp
// file beside it, flushed to disk, then renamed over `path`. Throws t2::Error.
void write(const std::string& path, std::span<const TensorOut> tensors, const Metadata& metadata);

}  // namespace t2::backbone::safetensors
