// Running SVF experts in the forward pass. An Adapter is what one sequence runs
// with: an expert mixture reduced to one z per slot. SvfHook (a LinearHook) gives
// every batch sequence its own Adapter and, per linear call, runs each row group
// on the cheapest of three exact paths; all give W' x up to f32 rounding:
//   dense        y = W x, for rows without an adapter (the plain weight);
//   materialized y = W' x with W' = W + U diag(s*(z*c - 1)) V^T, c = sum(s)/sum(s*z),
//                built once per (adapter, slot) and kept in an LRU cache under a
//                byte budget (the same as U diag(s*z*c) V^T, but exactly W for uniform z);
//   factored     y = U (s * z_row * c_row * (V^T x)): all adapted rows in two GEMMs
//                whatever mixture each row carries.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backbone/expert.h"
#include "backbone/forward.h"
#include "backbone/svf.h"

namespace t2::backbone {

// One expert of a mixture: its weight alpha (>= 0), optionally times a weight
// per slot (empty, or n_slots values >= 0).
struct AdapterTerm {
  const Expert* expert = nullptr;
  float alpha = 1.0f;
  std::vector<float> slot_alpha;
};

// z per slot for one sequence, with the rescale and diagonal precomputed.
// Mixtures mix z after the sigmoid: z' = sum_k alpha_k z_k per slot (the
// reference code mixes the raw p; docs/method.md §1 says why t2 does not). A
// slot whose mixed z is all zero (every alpha 0) runs the base weight, the limit
// of a uniform z. Immutable and shareable; id() identifies it in caches. It
// keeps a pointer to its Svf, which must outlive it.
class Adapter {
 public:
  static std::shared_ptr<const Adapter> from_expert(const Svf& svf, const Expert& expert);
  static std::shared_ptr<const Adapter> mixture(const Svf& svf, std::span<const AdapterTerm> terms,
                                                std::string name = "mixture");
  // z given directly (total_rank values, finite, >= 0), e.g. uniform z in tests.
  static std::shared_ptr<const Adapter> from_z(const Svf& svf, std::vector<float> z,
                                               std::string name = "z");

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  std::span<const float> z(int slot) const;
  float scale(int slot) const { return scale_[size_t(slot)]; }  // sum(s) / sum(s*z)
  std::span<const float> diag(int slot) const;                  // s * z * scale

  // Rows this adapter has run through `slot`: how hot it is (see SvfHook).
  int64_t rows_seen(int slot) const { return rows_seen_[size_t(slot)].load(); }
  void add_rows_seen(int slot, int64_t rows) const { rows_seen_[size_t(slot)] += rows; }

  Adapter(const Svf& svf, std::vector<float> z, std::string name);  // use the factories

 private:
  const Svf* svf_;
  uint64_t id_;
  std::string name_;
  std::vector<float> z_, diag_, scale_;
  mutable std::vector<std::atomic<int64_t>> rows_seen_;
};

// Materialized W' per (adapter, slot), least recently used evicted first, never
// more than budget_bytes in total. Safe to share between hooks and threads.
class MaterializedCache {
 public:
  explicit MaterializedCache(int64_t budget_bytes = int64_t(1) << 30) : budget_(budget_bytes) {}

  using Weight = std::shared_ptr<const std::vector<float>>;  // [out x in]
  // The cached W', or nullptr.
  Weight find(const Adapter& a, int slot);
  // The cached W', else builds it and caches it if it fits the budget.
  Weight get(const Svf& svf, const Model& model, const Adapter& a, int slot);
  // Builds W' = W + U diag(s*(z*c - 1)) V^T (no caching).
  static std::vector<float> build(const Svf& svf, const Model& model, const Adapter& a, int slot);

  int64_t bytes() const;
  int64_t budget() const { return budget_; }
  int64_t builds() const { return builds_; }
  int64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    Weight w;
    std::list<std::pair<uint64_t, int>>::iterator lru;
  };
  struct KeyHash {
    size_t operator()(const std::pair<uint64_t, int>& k) const {
      return std::hash<uint64_t>()(k.first * 1000003u + uint64_t(k.second));
    }
  };
  mutable std::mutex mutex_;
  int64_t budget_, bytes_ = 0, builds_ = 0, evictions_ = 0;
  std::list<std::pair<uint64_t, int>> lru_;  // front = most recent
  std::unordered_map<std::pair<uint64_t, int>, Entry, KeyHash> entries_;
};

// LIMITATION: materialized W' is f32, so a decode batch of <= 8 rows that runs
// one hot expert reads 6x the bytes of the quantized base kernel and is slower
// than the base model; storing W' as Q8_0 for cpu::qmatmul would lift it.
enum class SvfPath { kAuto, kMaterialized, kFactored };

struct SvfHookOptions {
  // kAuto per call and slot: rows without an adapter run dense; an adapter's
  // group runs materialized when it is at least half of the adapted rows and its
  // W' is cached, or it is hot (has run >= hot_rows rows through this slot;
  // building W' costs about `rank` rows of dense work, so the default is the
  // slot's rank); everything else runs in one factored pass. Forcing a path
  // applies it to every adapted row (for tests and benchmarks).
  SvfPath path = SvfPath::kAuto;
  int64_t hot_rows = -1;       // -1: the slot's rank
  int quantized_rows_max = 8;  // dense rows up to this count read quantized weights
};

class SvfHook : public LinearHook {
 public:
  SvfHook(const Model& model, std::shared_ptr<const Svf> svf,
          std::shared_ptr<MaterializedCache> cache = nullptr, SvfHookOptions options = {});

  // The adapter of each request (nullptr: base weights). Forward's batch
  // sequence i runs requests[i] unless begin_batch says otherwise.
  void set_adapters(std::vector<std::shared_ptr<const Adapter>> adapters);
  // Which request each batch sequence of the next forward calls is (Generator
  // calls it before every run; empty: sequence i is request i).
  void begin_batch(std::span<const int> request_of_sequence) override;
  void set_options(const SvfHookOptions& options) { options_ = options; }

  bool apply(int layer, MatrixKind kind, const Linear& base, const float* x, int64_t n,
             std::span<const int32_t> row_seq, float* y) override;

  struct Stats {
    int64_t dense_rows = 0, materialized_rows = 0, factored_rows = 0;
    int64_t factored_calls = 0;  // GEMM pairs run by the factored path
  };
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  MaterializedCache& cache() { return *cache_; }

 private:
  void run_dense(const Linear& base, const float* x, int64_t n, float* y) const;
  void run_factored(int slot, const float* x, int64_t n,
                    std::span<const Adapter* const> row_adapter, float* y);

  const Model& model_;
  std::shared_ptr<const Svf> svf_;
  std::shared_ptr<MaterializedCache> cache_;
  SvfHookOptions options_;
  std::vector<std::shared_ptr<const Adapter>> adapters_;
  std::vector<int> request_of_sequence_;
  Stats stats_;
  // Workspace, reused across calls.
  std::vector<float> xg_, yg_, t_;
  std::vector<const Adapter*> row_adapter_, group_adapter_;
  std::vector<int64_t> rows_;
};

}  // namespace t2::backbone
