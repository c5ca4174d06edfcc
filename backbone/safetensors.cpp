// safetensors reading (strict validation, read-only mapping) and atomic writing.
// The checks follow the format's own rules: offsets relative to the data section,
// tensors tiling it exactly, byte counts equal to numel * dtype size.
#include "backbone/safetensors.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "t2/error.h"

namespace t2::backbone::safetensors {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the format's own limit (100 MB)

struct DtypeInfo {
  Dtype dtype;
  const char* name;
  int size;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 1}, {Dtype::kU8, "U8", 1},   {Dtype::kI8, "I8", 1},
    {Dtype::kI16, "I16", 2},   {Dtype::kU16, "U16", 2}, {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2}, {Dtype::kI32, "I32", 4}, {Dtype::kU32, "U32", 4},
    {Dtype::kF32, "F32", 4},   {Dtype::kF64, "F64", 8}, {Dtype::kI64, "I64", 8},
    {Dtype::kU64, "U64", 8},
};

const DtypeInfo& info(Dtype d) {
  for (const DtypeInfo& i : kDtypes) {
    if (i.dtype == d) return i;
  }
  fail("safetensors: unknown dtype {}", int(d));
}

// A read-only private mapping of a whole file, unmapped with the last owner.
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

// Lists keys seen twice in any JSON object: the parser keeps the last silently.
struct DuplicateKeys {
  std::vector<std::set<std::string>> open;
  std::string first;

  bool operator()(int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) open.emplace_back();
    if (event == E::object_end && !open.empty()) open.pop_back();
    if (event == E::key && !open.empty() && !open.back().insert(parsed.get<std::string>()).second &&
        first.empty()) {
      first = parsed.get<std::string>();
    }
    return true;
  }
};

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what,
                      const std::string& name) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > INT64_MAX / d) fail("{}: tensor '{}' has a shape too large", what, name);
    n *= d;
  }
  return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses one tensor entry of the header: {"dtype", "shape", "data_offsets"}.
TensorView parse_entry(const std::string& what, const std::string& name, const nlohmann::json& e,
                       std::span<const std::byte> data, std::pair<uint64_t, uint64_t>* range) {
  if (name.empty()) fail("{}: a tensor has an empty name", what);
  if (!e.is_object()) fail("{}: entry '{}' is not an object", what, name);
  for (const auto& [key, value] : e.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail("{}: tensor '{}' has an unknown field '{}'", what, name, key);
    }
  }
  if (!e.contains("dtype") || !e["dtype"].is_string()) {
    fail("{}: tensor '{}' has no string 'dtype'", what, name);
  }
  TensorView t;
  t.name = name;
  const std::string dt = e["dtype"];
  const DtypeInfo* di = nullptr;
  for (const DtypeInfo& i : kDtypes) {
    if (dt == i.name) di = &i;
  }
  if (!di) fail("{}: tensor '{}' has unknown dtype '{}'", what, name, dt);
  t.dtype = di->dtype;

  if (!e.contains("shape") || !e["shape"].is_array()) {
    fail("{}: tensor '{}' has no 'shape' array", what, name);
  }
  for (const auto& d : e["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      fail("{}: tensor '{}' has a shape entry {} that is not a non-negative integer", what, name,
           d.dump());
    }
    t.shape.push_back(d.get<int64_t>());
  }
  const auto& off = e.contains("data_offsets") ? e["data_offsets"] : nlohmann::json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    fail("{}: tensor '{}' needs 'data_offsets' [begin, end] of non-negative integers", what, name);
  }
  const uint64_t begin = off[0], end = off[1];
  if (begin > end || end > data.size()) {
    fail(
        "{}: tensor '{}' data_offsets [{}, {}] outside the data section of {} bytes "
        "(file truncated?)",
        what, name, begin, end, data.size());
  }
  const int64_t numel = checked_numel(t.shape, what, name);
  if (numel > int64_t(UINT64_MAX / 16) || uint64_t(numel) * uint64_t(di->size) != end - begin) {
    fail("{}: tensor '{}' is {} {} ({} bytes) but data_offsets span {} bytes", what, name, dt,
         shape_text(t.shape), numel * di->size, end - begin);
  }
  t.bytes = data.subspan(begin, end - begin);
  *range = {begin, end};
  return t;
}

}  // namespace

const char* dtype_name(Dtype dtype) { return info(dtype).name; }
int dtype_size(Dtype dtype) { return info(dtype).size; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> TensorView::to_f32() const {
  if (dtype != Dtype::kF32) fail("tensor '{}' is {}, expected F32", name, dtype_name(dtype));
  std::vector<float> v(static_cast<size_t>(numel()));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

std::span<const float> TensorView::f32() const {
  if (dtype != Dtype::kF32) fail("tensor '{}' is {}, expected F32", name, dtype_name(dtype));
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) != 0) {
    fail("tensor '{}' is not 4-byte aligned in its file; use to_f32()", name);
  }
  return {reinterpret_cast<const float*>(bytes.data()), size_t(numel())};
}

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  auto map = std::make_shared<Mapping>();
  map->size = size_t(st.st_size);
  if (map->size > 0) {
    void* addr = mmap(nullptr, map->size, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("{}: cannot map {} bytes: {}", path, map->size, std::strerror(err));
    }
    map->addr = addr;
  }
  ::close(fd);
  const auto* bytes = static_cast<const std::byte*>(map->addr);
  return parse(map, {bytes, map->size}, path);
}

File File::parse(std::shared_ptr<const void> owner, std::span<const std::byte> bytes,
                 const std::string& what) {
  File f;
  f.what_ = what;
  f.owner_ = std::move(owner);
  if (bytes.size() < 8) {
    fail("{}: {} bytes, shorter than the 8-byte header length (truncated or not safetensors)", what,
         bytes.size());
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(bytes[size_t(i)]);
  if (n > kMaxHeader)
    fail("{}: header length {} exceeds the 100 MB limit (not safetensors?)", what, n);
  if (n > bytes.size() - 8) {
    fail("{}: header of {} bytes runs past the end of the {}-byte file (truncated?)", what, n,
         bytes.size());
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), size_t(n));
  if (text.empty() || text[0] != '{') fail("{}: header does not start with '{{'", what);

  DuplicateKeys dups;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, std::ref(dups));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON: {}", what, e.what());
  }
  if (!dups.first.empty()) fail("{}: header has the key '{}' twice", what, dups.first);
  if (!header.is_object()) fail("{}: header is not a JSON object", what);
  f.data_ = bytes.subspan(size_t(8 + n));

  std::vector<std::pair<std::pair<uint64_t, uint64_t>, size_t>> ranges;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail("{}: __metadata__ is not an object", what);
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail("{}: __metadata__ '{}' is not a string", what, mk);
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    std::pair<uint64_t, uint64_t> range;
    f.tensors_.push_back(parse_entry(what, key, value, f.data_, &range));
    ranges.push_back({range, f.tensors_.size() - 1});
  }

  // Tensors must tile the data section: sorted by offset, each begins where the
  // previous one ended, and the last ends at the end of the file.
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  std::string prev = "the header";
  for (const auto& [range, i] : ranges) {
    const std::string& name = f.tensors_[i].name;
    if (range.first < at) {
      fail("{}: tensor '{}' at [{}, {}) overlaps {}", what, name, range.first, range.second, prev);
    }
    if (range.first > at) {
      fail("{}: {} unreferenced bytes between {} and tensor '{}'", what, range.first - at, prev,
           name);
    }
    at = range.second;
    prev = "tensor '" + name + "'";
  }
  if (at != f.data_.size()) {
    fail("{}: data section is {} bytes but tensors cover {} (truncated or trailing bytes)", what,
         f.data_.size(), at);
  }

  std::vector<TensorView> sorted;
  for (const auto& r : ranges) sorted.push_back(std::move(f.tensors_[r.second]));
  f.tensors_ = std::move(sorted);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const std::string* File::find_metadata(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const TensorView* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& File::tensor(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail("{}: no tensor '{}'", what_, name);
  return *t;
}

namespace {

std::string hex(const unsigned char* md, unsigned len) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += kHex[md[i] >> 4];
    s += kHex[md[i] & 15];
  }
  return s;
}

// Writes all of `data` to fd, retrying short writes.
void write_all(int fd, const void* data, size_t n, const std::string& what) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("{}: write failed: {}", what, std::strerror(errno));
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

std::string sha256_hex(std::span<const std::byte> bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    fail("sha256: OpenSSL EVP_Digest failed");
  }
  return hex(md, len);
}

std::string data_sha256(std::span<const TensorOut> tensors) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    fail("sha256: OpenSSL init failed");
  }
  for (const TensorOut& t : tensors) {
    EVP_DigestUpdate(ctx.get(), t.values.data(), t.values.size_bytes());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return hex(md, len);
}

void write(const std::string& path, std::span<const TensorOut> tensors, const Metadata& metadata) {
  // Header: metadata first, then tensors in order with consecutive offsets.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t at = 0;
  std::set<std::string> names;
  for (const TensorOut& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second) {
      fail("{}: tensor name '{}' is empty, reserved or repeated", path, t.name);
    }
    if (checked_numel(t.shape, path, t.name) != int64_t(t.values.size())) {
      fail("{}: tensor '{}' has shape {} but {} values", path, t.name, shape_text(t.shape),
           t.values.size());
    }
    const uint64_t end = at + t.values.size_bytes();
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {at, end}}};
    at = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned

  // Temp file beside the target (same file system), then rename over it.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = fmt::format("{}.tmp.{}.{}", path, getpid(), counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: cannot create: {}", tmp, std::strerror(errno));
  bool closed = false;
  try {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i)
      len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const TensorOut& t : tensors) write_all(fd, t.values.data(), t.values.size_bytes(), tmp);
    if (fsync(fd) != 0) fail("{}: fsync failed: {}", tmp, std::strerror(errno));
    closed = true;
    if (::close(fd) != 0) fail("{}: close failed: {}", tmp, std::strerror(errno));
  } catch (...) {
    if (!closed) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("{}: cannot rename {} over it: {}", path, tmp, std::strerror(err));
  }
  // Make the rename itself durable.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace t2::backbone::safetensors
