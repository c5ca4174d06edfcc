// SVF factors (see svf.h): LAPACK sgesdd per adapted matrix, cached as one
// safetensors file per (model hash, matrix set). A cache is used only after its
// metadata, shapes, data checksum and values check out; anything else is logged
// and rebuilt. Slots run layer-major: slot = layer * kinds + kind index.
#include "backbone/svf.h"

#include <fcntl.h>
#include <omp.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backbone/safetensors.h"
#include "t2/error.h"
#include "t2/log.h"

extern "C" void sgesdd_(const char* jobz, const int* m, const int* n, float* a, const int* lda,
                        float* s, float* u, const int* ldu, float* vt, const int* ldvt, float* work,
                        const int* lwork, int* iwork, int* info, size_t jobz_len);

namespace t2::backbone {

namespace fs = std::filesystem;

constexpr const char* kCacheFormat = "t2-svf-cache";
constexpr const char* kCacheVersion = "1";

struct Svf::Impl {
  MatrixSet set = MatrixSet::kMlp;
  std::string model_sha256;
  std::string cache_path;
  bool from_cache = false;
  int n_layer = 0;
  std::vector<MatrixKind> kinds;
  int kind_index[kMatrixKinds] = {-1, -1, -1, -1, -1, -1, -1};
  std::vector<SvdFactors> factors;  // per slot
  std::vector<int64_t> offsets;     // per slot, into a full z vector
  int64_t total_rank = 0;
  std::shared_ptr<const void> storage;  // the mapping or the owned floats
};

MatrixSet parse_matrix_set(const std::string& name) {
  if (name == "mlp") return MatrixSet::kMlp;
  if (name == "attn") return MatrixSet::kAttention;
  if (name == "all") return MatrixSet::kAll;
  fail("unknown matrix set '{}': expected mlp, attn or all", name);
}

const char* matrix_set_name(MatrixSet set) {
  switch (set) {
    case MatrixSet::kMlp:
      return "mlp";
    case MatrixSet::kAttention:
      return "attn";
    case MatrixSet::kAll:
      return "all";
  }
  return "unknown";
}

std::vector<MatrixKind> matrix_kinds(MatrixSet set) {
  std::vector<MatrixKind> kinds;
  for (int k = 0; k < kMatrixKinds; ++k) {
    const auto kind = MatrixKind(k);
    const bool mlp =
        kind == MatrixKind::kGate || kind == MatrixKind::kUp || kind == MatrixKind::kDown;
    if (set == MatrixSet::kAll || (set == MatrixSet::kMlp) == mlp) kinds.push_back(kind);
  }
  return kinds;
}

std::string default_cache_dir() {
  if (const char* env = std::getenv("T2_CACHE"); env && *env) return env;
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::string(home) + "/.cache/t2";
  }
  return ".t2-cache";
}

namespace {

std::string hex(const unsigned char* md, unsigned len) {
  std::string s;
  for (unsigned i = 0; i < len; ++i) s += fmt::format("{:02x}", md[i]);
  return s;
}

std::string hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open to hash it", path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    fail("sha256: OpenSSL init failed");
  }
  std::vector<char> buf(size_t(1) << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
  }
  if (in.bad()) fail("{}: read error while hashing", path);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return hex(md, len);
}

// Replaces `path` with `text` through a temp file and rename.
void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) fail("{}: cannot write", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("{}: cannot rename into place", path);
  }
}

// An exclusive advisory lock held for the object's life (released by close).
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0 && flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

std::string tensor_base(int layer, MatrixKind kind) {
  return fmt::format("blk.{}.{}", layer, matrix_kind_name(kind));
}

// The slot table of `model` for `set`, without factors.
std::shared_ptr<Svf::Impl> make_layout(const Model& model, MatrixSet set, const std::string& sha) {
  auto impl = std::make_shared<Svf::Impl>();
  impl->set = set;
  impl->model_sha256 = sha;
  impl->n_layer = model.config().n_layer;
  impl->kinds = matrix_kinds(set);
  for (size_t k = 0; k < impl->kinds.size(); ++k) impl->kind_index[int(impl->kinds[k])] = int(k);
  for (int l = 0; l < impl->n_layer; ++l) {
    for (MatrixKind kind : impl->kinds) {
      const Linear& lin = model.layer(l).matrix(kind);
      SvdFactors f;
      f.out = lin.out;
      f.in = lin.in;
      f.rank = std::min(lin.out, lin.in);
      impl->offsets.push_back(impl->total_rank);
      impl->total_rank += f.rank;
      impl->factors.push_back(f);
    }
  }
  return impl;
}

// Floats per slot in the owned buffer and the cache: u, s, vt back to back.
int64_t slot_floats(const SvdFactors& f) {
  return int64_t(f.out) * f.rank + f.rank + int64_t(f.rank) * f.in;
}

// W [out x in] row-major is W^T column-major, whose SVD V S U^T hands back
// U_lapack = V (in x r col-major = Vt r x in row-major) and VT_lapack = U^T
// (r x out col-major = U out x r row-major).
void decompose(const Linear& lin, float* u, float* s, float* vt) {
  std::vector<float> a(lin.w, lin.w + lin.size());
  const int m = lin.in, n = lin.out, r = std::min(m, n);
  int lwork = -1, info = 0;
  std::vector<int> iwork(size_t(8) * size_t(r));
  float query = 0.0f;
  sgesdd_("S", &m, &n, a.data(), &m, s, vt, &m, u, &r, &query, &lwork, iwork.data(), &info, 1);
  if (info != 0) fail("svf: sgesdd workspace query failed (info {})", info);
  lwork = int(query) + 1;
  std::vector<float> work(static_cast<size_t>(lwork));
  sgesdd_("S", &m, &n, a.data(), &m, s, vt, &m, u, &r, work.data(), &lwork, iwork.data(), &info, 1);
  if (info != 0) {
    fail("svf: sgesdd failed on a {} x {} matrix (info {}: {})", lin.out, lin.in, info,
         info > 0 ? "did not converge" : "bad argument");
  }
}

// Computes every slot's factors into one owned buffer.
void compute(const Model& model, Svf::Impl& impl, SvdThreading threading) {
  auto log = t2::log::get("backbone");
  const int n_kinds = int(impl.kinds.size());
  const int n_slots = int(impl.factors.size());
  std::vector<int64_t> start(size_t(n_slots) + 1, 0);
  for (int i = 0; i < n_slots; ++i)
    start[size_t(i) + 1] = start[size_t(i)] + slot_floats(impl.factors[size_t(i)]);
  auto buffer = std::make_shared<std::vector<float>>(size_t(start.back()));

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::atomic<int>> left(size_t(impl.n_layer));
  for (auto& l : left) l = n_kinds;
  std::atomic<int> layers_done{0};
  std::atomic<bool> failed{false};
  std::string error;

  auto run_slot = [&](int i) {
    SvdFactors& f = impl.factors[size_t(i)];
    const int layer = i / n_kinds;
    float* p = buffer->data() + start[size_t(i)];
    try {
      decompose(model.layer(layer).matrix(impl.kinds[size_t(i % n_kinds)]), p,
                p + int64_t(f.out) * f.rank, p + int64_t(f.out) * f.rank + f.rank);
    } catch (const Error& e) {
#pragma omp critical(t2_svf_error)
      if (!failed.exchange(true)) error = e.what();
      return;
    }
    if (--left[size_t(layer)] == 0) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log->info("svf: layer {:2} decomposed ({} matrices); {}/{} layers, {:.1f} s", layer, n_kinds,
                ++layers_done, impl.n_layer, secs);
    }
  };
  if (threading == SvdThreading::kOverMatrices) {
    // Inside a parallel region the OpenMP build of OpenBLAS runs single-threaded.
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n_slots; ++i) run_slot(i);
  } else {
    for (int i = 0; i < n_slots; ++i) run_slot(i);
  }
  if (failed) fail("{}", error);

  for (int i = 0; i < n_slots; ++i) {
    SvdFactors& f = impl.factors[size_t(i)];
    const float* p = buffer->data() + start[size_t(i)];
    f.u = p;
    f.s = p + int64_t(f.out) * f.rank;
    f.vt = f.s + f.rank;
    f.s_sum = 0.0;
    for (int j = 0; j < f.rank; ++j) f.s_sum += f.s[j];
  }
  impl.storage = buffer;
}

// Binds `impl`'s factors to a mapped cache file after checking everything.
// t2 only ever replaces a cache by rename, so a mapping stays valid for its
// life; a file edited or truncated in place under a running process is not.
// Returns the reason it is unusable, or "" when it was bound.
std::string bind_cache(Svf::Impl& impl, const std::string& path, bool verify_data) {
  safetensors::File file;
  try {
    file = safetensors::File::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  auto meta = [&](const char* key) {
    const std::string* v = file.find_metadata(key);
    return v ? *v : std::string("(missing)");
  };
  if (meta("format") != kCacheFormat || meta("format_version") != kCacheVersion) {
    return fmt::format("format '{}' version '{}', expected '{}' version '{}'", meta("format"),
                       meta("format_version"), kCacheFormat, kCacheVersion);
  }
  if (meta("model_sha256") != impl.model_sha256) {
    return fmt::format("made for model sha256 {}, this model is {}", meta("model_sha256"),
                       impl.model_sha256);
  }
  if (meta("matrix_set") != matrix_set_name(impl.set)) {
    return fmt::format("matrix set '{}', expected '{}'", meta("matrix_set"),
                       matrix_set_name(impl.set));
  }
  if (file.tensors().size() != 3 * impl.factors.size()) {
    return fmt::format("{} tensors, expected {}", file.tensors().size(), 3 * impl.factors.size());
  }

  const int n_kinds = int(impl.kinds.size());
  for (size_t i = 0; i < impl.factors.size(); ++i) {
    SvdFactors& f = impl.factors[i];
    const std::string base = tensor_base(int(i) / n_kinds, impl.kinds[i % size_t(n_kinds)]);
    const std::pair<const char*, std::vector<int64_t>> want[3] = {
        {".u", {f.out, f.rank}}, {".s", {f.rank}}, {".vt", {f.rank, f.in}}};
    const float* ptr[3] = {};
    for (int k = 0; k < 3; ++k) {
      const safetensors::TensorView* t = file.find(base + want[k].first);
      if (!t) return fmt::format("no tensor '{}{}'", base, want[k].first);
      if (t->dtype != safetensors::Dtype::kF32 || t->shape != want[k].second) {
        return fmt::format("tensor '{}' is {} of the wrong shape", t->name,
                           safetensors::dtype_name(t->dtype));
      }
      try {
        ptr[k] = t->f32().data();
      } catch (const Error& e) {
        return e.what();
      }
    }
    f.u = ptr[0];
    f.s = ptr[1];
    f.vt = ptr[2];
  }

  if (verify_data) {
    if (safetensors::sha256_hex(file.data()) != meta("data_sha256")) {
      return "the data does not match its recorded sha256 (corrupt)";
    }
    // Values: finite factors, singular values non-negative and descending.
    const auto* all = reinterpret_cast<const float*>(file.data().data());
    const int64_t n = int64_t(file.data().size() / sizeof(float));
    int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static)
    for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(all[i]);
    if (bad) return fmt::format("{} values are not finite", bad);
    for (const SvdFactors& f : impl.factors) {
      for (int j = 0; j < f.rank; ++j) {
        if (f.s[j] < 0 || (j > 0 && f.s[j] > f.s[j - 1])) {
          return "singular values are negative or not descending";
        }
      }
    }
  }
  for (SvdFactors& f : impl.factors) {
    f.s_sum = 0.0;
    for (int j = 0; j < f.rank; ++j) f.s_sum += f.s[j];
  }
  impl.storage = file.owner();
  impl.cache_path = path;
  return "";
}

void write_cache(const Svf::Impl& impl, const std::string& path) {
  std::vector<safetensors::TensorOut> tensors;
  const int n_kinds = int(impl.kinds.size());
  for (size_t i = 0; i < impl.factors.size(); ++i) {
    const SvdFactors& f = impl.factors[i];
    const std::string base = tensor_base(int(i) / n_kinds, impl.kinds[i % size_t(n_kinds)]);
    tensors.push_back({base + ".u", {f.out, f.rank}, {f.u, size_t(int64_t(f.out) * f.rank)}});
    tensors.push_back({base + ".s", {f.rank}, {f.s, size_t(f.rank)}});
    tensors.push_back({base + ".vt", {f.rank, f.in}, {f.vt, size_t(int64_t(f.rank) * f.in)}});
  }
  safetensors::Metadata meta = {
      {"format", kCacheFormat},
      {"format_version", kCacheVersion},
      {"model_sha256", impl.model_sha256},
      {"matrix_set", matrix_set_name(impl.set)},
      {"n_layer", std::to_string(impl.n_layer)},
      {"data_sha256", safetensors::data_sha256(tensors)},
  };
  safetensors::write(path, tensors, meta);
}

std::shared_ptr<const Svf> wrap(std::shared_ptr<Svf::Impl> impl) {
  auto svf = std::make_shared<Svf>();
  svf->impl_ = std::move(impl);
  return svf;
}

}  // namespace

std::string file_sha256(const std::string& path, const std::string& cache_dir) {
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) fail("{}: cannot stat: {}", path, std::strerror(errno));
  const int64_t mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const std::string key = abs.string();

  nlohmann::json known = nlohmann::json::object();
  const std::string memo = cache_dir.empty() ? "" : cache_dir + "/model-sha256.json";
  if (!memo.empty()) {
    std::ifstream in(memo);
    if (in) known = nlohmann::json::parse(in, nullptr, false);
    if (!known.is_object()) known = nlohmann::json::object();
    const auto it = known.find(key);
    if (it != known.end() && it->is_object() && it->value("size", int64_t(-1)) == st.st_size &&
        it->value("mtime_ns", int64_t(-1)) == mtime_ns && it->contains("sha256") &&
        (*it)["sha256"].is_string() && (*it)["sha256"].get<std::string>().size() == 64) {
      return (*it)["sha256"];
    }
  }
  const std::string sha = hash_file(path);
  if (!memo.empty()) {
    try {
      fs::create_directories(cache_dir);
      known[key] = {{"size", int64_t(st.st_size)}, {"mtime_ns", mtime_ns}, {"sha256", sha}};
      write_text_atomic(memo, known.dump(1));
    } catch (const std::exception& e) {
      t2::log::get("backbone")
          ->warn("svf: cannot remember the model hash in {}: {}", memo, e.what());
    }
  }
  return sha;
}

std::shared_ptr<const Svf> Svf::build(const Model& model, MatrixSet set, SvdThreading threading) {
  auto impl = make_layout(model, set, file_sha256(model.path()));
  compute(model, *impl, threading);
  return wrap(impl);
}

std::shared_ptr<const Svf> Svf::open(const Model& model, MatrixSet set,
                                     const std::string& cache_dir, SvdThreading threading) {
  auto log = t2::log::get("backbone");
  if (cache_dir.empty()) return build(model, set, threading);
  const std::string sha = file_sha256(model.path(), cache_dir);
  const std::string dir = cache_dir + "/" + sha;
  const std::string path = dir + "/svf-" + matrix_set_name(set) + ".safetensors";

  // Fast path: a valid cache, no lock needed (it only ever appears by rename).
  std::string why = "absent";
  if (fs::exists(path)) {
    auto impl = make_layout(model, set, sha);
    why = bind_cache(*impl, path, true);
    if (why.empty()) {
      impl->from_cache = true;
      log->info("svf: {} factors of {} slots mapped from {}", matrix_set_name(set),
                impl->factors.size(), path);
      return wrap(impl);
    }
  }

  // Slow path, one process at a time: re-check (another may have just built it),
  // else compute and write.
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create the SVF cache folder: {}", dir, ec.message());
  FileLock lock(path + ".lock");
  if (why != "absent" || fs::exists(path)) {
    auto impl = make_layout(model, set, sha);
    const std::string again = bind_cache(*impl, path, true);
    if (again.empty()) {
      impl->from_cache = true;
      return wrap(impl);
    }
    log->warn("svf: cache {} is unusable ({}); rebuilding it", path, again);
  }

  auto impl = make_layout(model, set, sha);
  const auto t0 = std::chrono::steady_clock::now();
  log->info("svf: decomposing {} matrices ({}) of {} on {} threads", impl->factors.size(),
            matrix_set_name(set), model.path(), omp_get_max_threads());
  compute(model, *impl, threading);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  try {
    write_cache(*impl, path);
  } catch (const Error& e) {
    log->warn("svf: cannot write the cache ({}); keeping the factors in memory", e.what());
    return wrap(impl);
  }
  // Serve from the mapping, so ranks on this node share one copy of the pages.
  auto mapped = make_layout(model, set, sha);
  const std::string reread = bind_cache(*mapped, path, false);
  log->info("svf: {} matrices decomposed in {:.1f} s, cached at {}", impl->factors.size(), secs,
            path);
  if (!reread.empty()) {
    log->warn("svf: cannot map the cache just written ({}); keeping it in memory", reread);
    return wrap(impl);
  }
  return wrap(mapped);
}

MatrixSet Svf::matrix_set() const { return impl_->set; }
const std::string& Svf::model_sha256() const { return impl_->model_sha256; }
const std::string& Svf::cache_path() const { return impl_->cache_path; }
bool Svf::loaded_from_cache() const { return impl_->from_cache; }
int Svf::n_slots() const { return int(impl_->factors.size()); }

int Svf::slot(int layer, MatrixKind kind) const {
  const int k = impl_->kind_index[int(kind)];
  if (k < 0 || layer < 0 || layer >= impl_->n_layer) return -1;
  return layer * int(impl_->kinds.size()) + k;
}

int Svf::layer_of(int slot) const { return slot / int(impl_->kinds.size()); }
MatrixKind Svf::kind_of(int slot) const { return impl_->kinds[size_t(slot) % impl_->kinds.size()]; }
const SvdFactors& Svf::factors(int slot) const { return impl_->factors[size_t(slot)]; }
int64_t Svf::offset(int slot) const { return impl_->offsets[size_t(slot)]; }
int64_t Svf::total_rank() const { return impl_->total_rank; }

}  // namespace t2::backbone
