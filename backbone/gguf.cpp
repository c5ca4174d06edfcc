// GGUF parsing with every read bounds-checked (see gguf.h). The cursor never
// reads past the end; counts are checked against the bytes left before any
// allocation, so a hostile header cannot make us allocate or loop unboundedly.
#include "backbone/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "t2/error.h"

namespace t2::backbone {
namespace {

constexpr uint64_t kMaxTensorName = 64;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;

// Sequential reader over the file image; every read checks the bounds.
class Cursor {
 public:
  Cursor(const std::byte* base, uint64_t size, const std::string& label)
      : base_(base), size_(size), label_(label) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > left()) {
      fail("{}: truncated file: {} needs {} bytes at offset {}, only {} left", label_, what, n,
           pos_, left());
    }
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
    pos_ += n;
    return s;
  }

  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += n;
  }

 private:
  const std::byte* base_;
  uint64_t size_;
  const std::string& label_;
  uint64_t pos_ = 0;
};

uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    default: return 0;
  }
}

bool valid_value_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& cur, GgufValueType type, const std::string& key,
                     const std::string& label, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::kU8: v.value = uint64_t(cur.read<uint8_t>(key.c_str())); break;
    case GgufValueType::kU16: v.value = uint64_t(cur.read<uint16_t>(key.c_str())); break;
    case GgufValueType::kU32: v.value = uint64_t(cur.read<uint32_t>(key.c_str())); break;
    case GgufValueType::kU64: v.value = cur.read<uint64_t>(key.c_str()); break;
    case GgufValueType::kI8: v.value = int64_t(cur.read<int8_t>(key.c_str())); break;
    case GgufValueType::kI16: v.value = int64_t(cur.read<int16_t>(key.c_str())); break;
    case GgufValueType::kI32: v.value = int64_t(cur.read<int32_t>(key.c_str())); break;
    case GgufValueType::kI64: v.value = cur.read<int64_t>(key.c_str()); break;
    case GgufValueType::kF32: v.value = double(cur.read<float>(key.c_str())); break;
    case GgufValueType::kF64: v.value = cur.read<double>(key.c_str()); break;
    case GgufValueType::kBool: {
      const uint8_t b = cur.read<uint8_t>(key.c_str());
      if (b > 1) fail("{}: metadata '{}': bool byte is {}, expected 0 or 1", label, key, b);
      v.value = b == 1;
      break;
    }
    case GgufValueType::kString: v.value = cur.read_string(key.c_str()); break;
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth) {
        fail("{}: metadata '{}': arrays nested deeper than {}", label, key, kMaxArrayDepth);
      }
      const uint32_t et = cur.read<uint32_t>(key.c_str());
      if (!valid_value_type(et)) {
        fail("{}: metadata '{}': unknown array element type {}", label, key, et);
      }
      const uint64_t count = cur.read<uint64_t>(key.c_str());
      const auto etype = static_cast<GgufValueType>(et);
      // Every element takes at least one byte (strings eight): bound the count by
      // what is left before reserving anything.
      const uint64_t min_elem = etype == GgufValueType::kString  ? 8
                                : etype == GgufValueType::kArray ? 12
                                                                 : scalar_size(etype);
      if (count > cur.left() / min_elem) {
        fail("{}: metadata '{}': array of {} elements does not fit in the {} bytes left", label,
             key, count, cur.left());
      }
      v.element_type = etype;
      std::vector<GgufValue> items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        items.push_back(read_value(cur, etype, key, label, depth + 1));
      }
      v.value = std::move(items);
      break;
    }
  }
  return v;
}

const char* kind_of(const GgufValue& v) { return gguf_value_type_name(v.type); }

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static const char* names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(type);
  return i <= 12 ? names[i] : "unknown";
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open model file: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  size_ = uint64_t(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    fail("{}: empty file, expected a GGUF model", path);
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) fail("{}: mmap failed: {}", path, std::strerror(errno));
  base_ = static_cast<const std::byte*>(p);
  mapped_ = true;
  try {
    parse();
  } catch (...) {
    ::munmap(const_cast<std::byte*>(base_), size_);
    throw;
  }
}

GgufFile::GgufFile(std::span<const std::byte> bytes, std::string label)
    : path_(std::move(label)), base_(bytes.data()), size_(bytes.size()) {
  parse();
}

GgufFile::~GgufFile() {
  if (mapped_) ::munmap(const_cast<std::byte*>(base_), size_);
}

void GgufFile::parse() {
  Cursor cur(base_, size_, path_);
  const uint32_t magic = cur.read<uint32_t>("magic");
  if (magic != 0x46554747u) {  // "GGUF" little-endian
    fail("{}: not a GGUF file: magic is 0x{:08x}, expected 0x46554747 ('GGUF')", path_, magic);
  }
  version_ = cur.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    fail("{}: GGUF version {} is not supported (expected 2 or 3)", path_, version_);
  }
  const uint64_t n_tensors = cur.read<uint64_t>("tensor count");
  const uint64_t n_kv = cur.read<uint64_t>("metadata count");
  // A metadata entry takes at least 8+4+1 bytes, a tensor info at least 8+4+8+4+8.
  if (n_kv > cur.left() / 13) fail("{}: metadata count {} exceeds the file", path_, n_kv);
  if (n_tensors > cur.left() / 32) fail("{}: tensor count {} exceeds the file", path_, n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = cur.read_string("metadata key");
    const uint32_t t = cur.read<uint32_t>("metadata type");
    if (!valid_value_type(t)) fail("{}: metadata '{}': unknown value type {}", path_, key, t);
    GgufValue v = read_value(cur, static_cast<GgufValueType>(t), key, path_, 0);
    if (metadata_.count(key)) fail("{}: metadata key '{}' appears twice", path_, key);
    metadata_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    const auto* u = std::get_if<uint64_t>(&a->value);
    if (!u || *u == 0 || (*u & (*u - 1)) != 0 || *u > (1u << 20)) {
      fail("{}: general.alignment must be a power of two, got {}", path_, kind_of(*a));
    }
    alignment_ = *u;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = cur.read_string("tensor name");
    if (t.name.size() > kMaxTensorName) {
      fail("{}: tensor name of {} bytes exceeds {}", path_, t.name.size(), kMaxTensorName);
    }
    const uint32_t n_dims = cur.read<uint32_t>("tensor dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      fail("{}: tensor '{}' has {} dims, expected 1..{}", path_, t.name, n_dims, kMaxDims);
    }
    int64_t n = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = cur.read<uint64_t>("tensor dim");
      if (dim == 0 || dim > (uint64_t(1) << 40) ||
          uint64_t(n) > uint64_t(std::numeric_limits<int64_t>::max()) / dim) {
        fail("{}: tensor '{}' dim {} is {}, out of range", path_, t.name, d, dim);
      }
      t.dims.push_back(int64_t(dim));
      n *= int64_t(dim);
    }
    const uint32_t type = cur.read<uint32_t>("tensor type");
    const auto info = ggml_type_info(type);
    if (!info) fail("{}: tensor '{}' has unknown or unsupported ggml type {}", path_, t.name, type);
    t.type = static_cast<GgmlType>(type);
    if (t.dims[0] % info->block_elements != 0) {
      fail("{}: tensor '{}' row of {} elements is not a multiple of the {} block size {}", path_,
           t.name, t.dims[0], info->name, info->block_elements);
    }
    // Bound the block count by the file before multiplying: 2^62 f32 elements
    // would otherwise wrap to 0 bytes and pass the data check below.
    const uint64_t blocks = uint64_t(n / info->block_elements);
    if (blocks > size_ / uint64_t(info->block_bytes)) {
      fail("{}: tensor '{}' of {} {} elements needs more bytes than the {}-byte file holds",
           path_, t.name, n, info->name, size_);
    }
    t.n_bytes = blocks * uint64_t(info->block_bytes);
    t.offset = cur.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0) {
      fail("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path_, t.name,
           t.offset, alignment_);
    }
    if (tensor_index_.count(t.name)) fail("{}: tensor '{}' appears twice", path_, t.name);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  const uint64_t data_start = (cur.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (TensorInfo& t : tensors_) {
    if (data_start > size_ || t.offset > size_ - data_start ||
        t.n_bytes > size_ - data_start - t.offset) {
      fail("{}: tensor '{}' data ({} bytes at data offset {}) lies outside the {}-byte file",
           path_, t.name, t.n_bytes, t.offset, size_);
    }
    t.data = base_ + data_start + t.offset;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) fail("{}: metadata key '{}' is missing", f.path(), key);
  return *v;
}

}  // namespace

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.value); i && *i >= 0) return uint64_t(*i);
  fail("{}: metadata '{}' is {}, expected a non-negative integer", path_, key, kind_of(v));
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.value);
      u && *u <= uint64_t(std::numeric_limits<int64_t>::max())) {
    return int64_t(*u);
  }
  fail("{}: metadata '{}' is {}, expected an integer", path_, key, kind_of(v));
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return double(*u);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return double(*i);
  fail("{}: metadata '{}' is {}, expected a number", path_, key, kind_of(v));
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (const auto* b = std::get_if<bool>(&v.value)) return *b;
  fail("{}: metadata '{}' is {}, expected bool", path_, key, kind_of(v));
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
  fail("{}: metadata '{}' is {}, expected string", path_, key, kind_of(v));
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  const auto* items = std::get_if<std::vector<GgufValue>>(&v.value);
  if (!items || v.element_type != GgufValueType::kString) {
    fail("{}: metadata '{}' is {}, expected an array of strings", path_, key, kind_of(v));
  }
  std::vector<std::string> out;
  out.reserve(items->size());
  for (const GgufValue& e : *items) out.push_back(std::get<std::string>(e.value));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  const auto* items = std::get_if<std::vector<GgufValue>>(&v.value);
  if (!items) fail("{}: metadata '{}' is {}, expected an integer array", path_, key, kind_of(v));
  std::vector<int64_t> out;
  out.reserve(items->size());
  for (const GgufValue& e : *items) {
    if (const auto* i = std::get_if<int64_t>(&e.value)) {
      out.push_back(*i);
    } else if (const auto* u = std::get_if<uint64_t>(&e.value)) {
      out.push_back(int64_t(*u));
    } else {
      fail("{}: metadata '{}' holds {}, expected integers", path_, key, kind_of(e));
    }
  }
  return out;
}

uint64_t GgufFile::get_uint(const std::string& key, uint64_t fallback) const {
  return has(key) ? get_uint(key) : fallback;
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

const TensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& GgufFile::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) fail("{}: tensor '{}' is missing", path_, name);
  return *t;
}

std::vector<float> GgufFile::dequantize(const TensorInfo& t) const {
  std::vector<float> out(size_t(t.n_elements()));
  backbone::dequantize(t.type, t.data, out.data(), t.n_elements());
  return out;
}

}  // namespace t2::backbone
