// Singular Value Fine-tuning factors (docs/method.md §1): every adapted matrix
// W [out x in] of the backbone decomposed once as W = U diag(s) V^T (f32, LAPACK)
// and cached on disk keyed by the model file's SHA-256 and the matrix set. An
// expert is one vector z per adapted matrix ("slot"); the adapted weight is
// W' = U diag(s*z) V^T * sum(s)/sum(s*z), so z = 1 gives back W.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backbone/model.h"

namespace t2::backbone {

enum class MatrixSet { kMlp, kAttention, kAll };
MatrixSet parse_matrix_set(const std::string& name);  // "mlp", "attn", "all"; throws
const char* matrix_set_name(MatrixSet set);
std::vector<MatrixKind> matrix_kinds(MatrixSet set);  // in MatrixKind order

struct SvdFactors {
  int out = 0, in = 0, rank = 0;  // rank = min(out, in)
  const float* u = nullptr;       // [out x rank], row-major
  const float* s = nullptr;       // [rank], descending
  const float* vt = nullptr;      // [rank x in], row-major
  double s_sum = 0.0;             // sum(s), for the rescale
};

// How the decomposition uses the cores: one matrix per thread with a
// single-threaded LAPACK call each (default, faster here: see svf_bench), or one
// matrix at a time with LAPACK's own threads.
enum class SvdThreading { kOverMatrices, kInsideLapack };

// $T2_CACHE, else $HOME/.cache/t2 (else ./.t2-cache when HOME is unset).
std::string default_cache_dir();

// SHA-256 (hex) of a file, streamed. With a cache_dir, remembered there in
// model-sha256.json keyed by (absolute path, size, mtime), so the next call on
// an unchanged file does not read it again.
std::string file_sha256(const std::string& path, const std::string& cache_dir = "");

class Svf {
 public:
  // The decomposition of `model`'s matrices in `set`: loaded (memory-mapped) from
  // cache_dir when a valid cache exists, else computed (both cores, a progress
  // line per layer) and written atomically. A stale or corrupt cache is rebuilt.
  // The cache is cache_dir/<model sha256>/svf-<set>.safetensors; its metadata holds
  // the model hash, the set, a format version and the SHA-256 of the data, all
  // checked on open together with shapes and finite values. An empty cache_dir
  // computes without caching.
  static std::shared_ptr<const Svf> open(const Model& model, MatrixSet set,
                                         const std::string& cache_dir,
                                         SvdThreading threading = SvdThreading::kOverMatrices);
  // Computes the decomposition in memory (no cache), e.g. to measure it.
  static std::shared_ptr<const Svf> build(const Model& model, MatrixSet set,
                                          SvdThreading threading = SvdThreading::kOverMatrices);

  const std::string& cache_path() const;  // empty when not backed by a cache file
  bool loaded_from_cache() const;         // false when computed by this call

  MatrixSet matrix_set() const;
  const std::string& model_sha256() const;
  int n_slots() const;                         // n_layer * kinds
  int slot(int layer, MatrixKind kind) const;  // -1 when that matrix is not adapted
  int layer_of(int slot) const;
  MatrixKind kind_of(int slot) const;
  const SvdFactors& factors(int slot) const;
  // z vectors of all slots are stored concatenated; slot i starts at offset(i).
  int64_t offset(int slot) const;
  int64_t total_rank() const;  // sum of ranks = length of a full z or p vector

  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace t2::backbone
