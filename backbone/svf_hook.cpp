// Adapters, the materialized-weight cache and the per-call path choice of SvfHook
// (see svf_hook.h). Shapes: x [n x in], y [n x out], U [out x r], V^T [r x in].
#include "backbone/svf_hook.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backbone/cpu/ops.h"
#include "backbone/cpu/qmatmul.h"
#include "t2/error.h"

namespace t2::backbone {
namespace {

std::atomic<uint64_t> next_adapter_id{1};

void check_expert(const Svf& svf, const Expert& e) {
  if (e.base_model_sha256 != svf.model_sha256() || e.set != svf.matrix_set() ||
      int64_t(e.p.size()) != svf.total_rank()) {
    fail(
        "expert '{}' ({} values, set {}, model {}...) does not fit the SVF factors ({} values, "
        "set {}, model {}...)",
        e.name, e.p.size(), matrix_set_name(e.set), e.base_model_sha256.substr(0, 12),
        svf.total_rank(), matrix_set_name(svf.matrix_set()), svf.model_sha256().substr(0, 12));
  }
}

}  // namespace

// ---- Adapter ---------------------------------------------------------------

Adapter::Adapter(const Svf& svf, std::vector<float> z, std::string name)
    : svf_(&svf),
      id_(next_adapter_id++),
      name_(std::move(name)),
      z_(std::move(z)),
      rows_seen_(size_t(svf.n_slots())) {
  if (int64_t(z_.size()) != svf.total_rank()) {
    fail("adapter '{}': z has {} values, expected {}", name_, z_.size(), svf.total_rank());
  }
  diag_.resize(z_.size());
  scale_.resize(size_t(svf.n_slots()));
  for (int slot = 0; slot < svf.n_slots(); ++slot) {
    const SvdFactors& f = svf.factors(slot);
    float* z = z_.data() + svf.offset(slot);
    double sz = 0.0;
    for (int j = 0; j < f.rank; ++j) {
      if (!std::isfinite(z[j]) || z[j] < 0.0f) {
        fail("adapter '{}': slot {} z[{}] = {}; z must be finite and >= 0", name_, slot, j, z[j]);
      }
      sz += double(f.s[j]) * z[j];
    }
    if (!(sz > 0.0)) {
      std::fill(z, z + f.rank, 1.0f);  // all-zero z: the uniform limit, W itself
      sz = f.s_sum;
    }
    const double c = sz > 0.0 ? f.s_sum / sz : 1.0;
    scale_[size_t(slot)] = float(c);
    float* d = diag_.data() + svf.offset(slot);
    for (int j = 0; j < f.rank; ++j) d[j] = float(double(f.s[j]) * z[j] * c);
  }
}

std::span<const float> Adapter::z(int slot) const {
  return {z_.data() + svf_->offset(slot), size_t(svf_->factors(slot).rank)};
}

std::span<const float> Adapter::diag(int slot) const {
  return {diag_.data() + svf_->offset(slot), size_t(svf_->factors(slot).rank)};
}

std::shared_ptr<const Adapter> Adapter::from_expert(const Svf& svf, const Expert& expert) {
  check_expert(svf, expert);
  return std::make_shared<const Adapter>(svf, expert.z(), expert.name);
}

std::shared_ptr<const Adapter> Adapter::mixture(const Svf& svf, std::span<const AdapterTerm> terms,
                                                std::string name) {
  if (terms.empty()) fail("adapter '{}': a mixture needs at least one expert", name);
  std::vector<float> mixed(size_t(svf.total_rank()), 0.0f);
  for (const AdapterTerm& t : terms) {
    if (!t.expert) fail("adapter '{}': a mixture term has no expert", name);
    check_expert(svf, *t.expert);
    if (!std::isfinite(t.alpha) || t.alpha < 0.0f) {
      fail("adapter '{}': alpha {} of expert '{}' must be finite and >= 0", name, t.alpha,
           t.expert->name);
    }
    if (!t.slot_alpha.empty() && int(t.slot_alpha.size()) != svf.n_slots()) {
      fail("adapter '{}': {} per-slot alphas for expert '{}', expected {}", name,
           t.slot_alpha.size(), t.expert->name, svf.n_slots());
    }
    const std::vector<float> z = t.expert->z();
    for (int slot = 0; slot < svf.n_slots(); ++slot) {
      const float a = t.alpha * (t.slot_alpha.empty() ? 1.0f : t.slot_alpha[size_t(slot)]);
      if (!std::isfinite(a) || a < 0.0f) {
        fail("adapter '{}': alpha of expert '{}' at slot {} is {}; must be finite and >= 0", name,
             t.expert->name, slot, a);
      }
      const int64_t o = svf.offset(slot);
      for (int j = 0; j < svf.factors(slot).rank; ++j) mixed[size_t(o + j)] += a * z[size_t(o + j)];
    }
  }
  return std::make_shared<const Adapter>(svf, std::move(mixed), std::move(name));
}

std::shared_ptr<const Adapter> Adapter::from_z(const Svf& svf, std::vector<float> z,
                                               std::string name) {
  return std::make_shared<const Adapter>(svf, std::move(z), std::move(name));
}

// ---- MaterializedCache -----------------------------------------------------

std::vector<float> MaterializedCache::build(const Svf& svf, const Model& model, const Adapter& a,
                                            int slot) {
  const SvdFactors& f = svf.factors(slot);
  const Linear& lin = model.layer(svf.layer_of(slot)).matrix(svf.kind_of(slot));
  std::vector<float> w(lin.w, lin.w + lin.size());
  const std::span<const float> d = a.diag(slot);
  bool uniform = true;
  for (int j = 0; j < f.rank; ++j) uniform = uniform && d[size_t(j)] == f.s[j];
  if (uniform) return w;

  // W' = W + (U diag(d - s)) V^T: one GEMM [out x r] * [r x in], accumulated into W.
  std::vector<float> ud(size_t(f.out) * size_t(f.rank));
  for (int64_t o = 0; o < f.out; ++o) {
    for (int j = 0; j < f.rank; ++j) {
      ud[size_t(o * f.rank + j)] = f.u[o * f.rank + j] * (d[size_t(j)] - f.s[j]);
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, f.out, f.in, f.rank, 1.0f, ud.data(),
              f.rank, f.vt, f.in, 1.0f, w.data(), f.in);
  return w;
}

MaterializedCache::Weight MaterializedCache::find(const Adapter& a, int slot) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find({a.id(), slot});
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.w;
}

MaterializedCache::Weight MaterializedCache::get(const Svf& svf, const Model& model,
                                                 const Adapter& a, int slot) {
  if (Weight w = find(a, slot)) return w;
  const SvdFactors& f = svf.factors(slot);
  const int64_t size = int64_t(f.out) * f.in * int64_t(sizeof(float));
  if (size > budget_) return nullptr;
  auto w = std::make_shared<const std::vector<float>>(build(svf, model, a, slot));

  std::lock_guard lock(mutex_);
  const std::pair<uint64_t, int> key{a.id(), slot};
  if (auto it = entries_.find(key); it != entries_.end()) return it->second.w;  // raced
  while (bytes_ + size > budget_ && !lru_.empty()) {
    auto victim = entries_.find(lru_.back());
    bytes_ -= int64_t(victim->second.w->size() * sizeof(float));
    entries_.erase(victim);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(key);
  entries_[key] = {w, lru_.begin()};
  bytes_ += size;
  ++builds_;
  return w;
}

int64_t MaterializedCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

// ---- SvfHook ---------------------------------------------------------------

SvfHook::SvfHook(const Model& model, std::shared_ptr<const Svf> svf,
                 std::shared_ptr<MaterializedCache> cache, SvfHookOptions options)
    : model_(model),
      svf_(std::move(svf)),
      cache_(cache ? std::move(cache) : std::make_shared<MaterializedCache>()),
      options_(options) {}

void SvfHook::set_adapters(std::vector<std::shared_ptr<const Adapter>> adapters) {
  adapters_ = std::move(adapters);
  request_of_sequence_.clear();
}

void SvfHook::begin_batch(std::span<const int> request_of_sequence) {
  request_of_sequence_.assign(request_of_sequence.begin(), request_of_sequence.end());
}

void SvfHook::run_dense(const Linear& base, const float* x, int64_t n, float* y) const {
  if (n <= options_.quantized_rows_max && base.source &&
      cpu::qmatmul_supported(base.source->type)) {
    cpu::qmatmul(x, n, base.source->data, base.source->type, base.out, base.in, y);
  } else {
    cpu::matmul(x, n, base.w, base.out, base.in, y);
  }
}

void SvfHook::run_factored(int slot, const float* x, int64_t n,
                           std::span<const Adapter* const> row_adapter, float* y) {
  const SvdFactors& f = svf_->factors(slot);
  t_.resize(size_t(n) * size_t(f.rank));
  cpu::matmul(x, n, f.vt, f.rank, f.in, t_.data());  // t [n x r] = x V
#pragma omp parallel for if (n * f.rank > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* d = row_adapter[size_t(i)]->diag(slot).data();
    float* t = t_.data() + i * f.rank;
#pragma omp simd
    for (int j = 0; j < f.rank; ++j) t[j] *= d[j];
  }
  cpu::matmul(t_.data(), n, f.u, f.out, f.rank, y);  // y [n x out] = t U^T
  stats_.factored_calls += 1;
}

bool SvfHook::apply(int layer, MatrixKind kind, const Linear& base, const float* x, int64_t n,
                    std::span<const int32_t> row_seq, float* y) {
  const int slot = svf_->slot(layer, kind);
  if (slot < 0 || n <= 0) return false;

  // The adapter of every row, and the distinct adapters with their row counts.
  row_adapter_.resize(size_t(n));
  group_adapter_.clear();
  std::vector<int64_t> group_rows;
  int64_t base_rows = 0;
  for (int64_t r = 0; r < n; ++r) {
    size_t seq = size_t(row_seq[size_t(r)]);
    if (seq < request_of_sequence_.size()) seq = size_t(request_of_sequence_[seq]);
    const Adapter* a = seq < adapters_.size() ? adapters_[seq].get() : nullptr;
    row_adapter_[size_t(r)] = a;
    if (!a) {
      ++base_rows;
      continue;
    }
    auto g = std::find(group_adapter_.begin(), group_adapter_.end(), a);
    if (g == group_adapter_.end()) {
      group_adapter_.push_back(a);
      group_rows.push_back(0);
      g = group_adapter_.end() - 1;
    }
    ++group_rows[size_t(g - group_adapter_.begin())];
  }
  if (base_rows == n) return false;  // Forward runs the plain weight
  const int64_t adapted = n - base_rows;

  // Choose the path of each adapter's group (see SvfHookOptions).
  const SvdFactors& f = svf_->factors(slot);
  const int64_t hot = options_.hot_rows >= 0 ? options_.hot_rows : f.rank;
  std::vector<MaterializedCache::Weight> weight(group_adapter_.size());
  for (size_t g = 0; g < group_adapter_.size(); ++g) {
    const Adapter& a = *group_adapter_[g];
    a.add_rows_seen(slot, group_rows[g]);
    if (options_.path == SvfPath::kMaterialized) {
      weight[g] = cache_->get(*svf_, model_, a, slot);
      if (!weight[g]) {  // larger than the whole budget: build for this call only
        weight[g] = std::make_shared<const std::vector<float>>(
            MaterializedCache::build(*svf_, model_, a, slot));
      }
    } else if (options_.path == SvfPath::kAuto && 2 * group_rows[g] >= adapted) {
      weight[g] = cache_->find(a, slot);
      if (!weight[g] && a.rows_seen(slot) >= hot) weight[g] = cache_->get(*svf_, model_, a, slot);
    }
  }

  // Runs `fn` on the rows selected by `take`, gathering and scattering only
  // when they are not the whole batch.
  auto on_rows = [&](auto take, auto fn) {
    rows_.clear();
    for (int64_t r = 0; r < n; ++r) {
      if (take(r)) rows_.push_back(r);
    }
    const int64_t m = int64_t(rows_.size());
    if (m == 0) return;
    if (m == n) return fn(x, m, y);
    xg_.resize(size_t(m) * size_t(base.in));
    yg_.resize(size_t(m) * size_t(base.out));
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(&xg_[size_t(i * base.in)], x + rows_[size_t(i)] * base.in,
                  size_t(base.in) * sizeof(float));
    }
    fn(xg_.data(), m, yg_.data());
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(y + rows_[size_t(i)] * base.out, &yg_[size_t(i * base.out)],
                  size_t(base.out) * sizeof(float));
    }
  };

  on_rows([&](int64_t r) { return row_adapter_[size_t(r)] == nullptr; },
          [&](const float* xs, int64_t m, float* ys) {
            run_dense(base, xs, m, ys);
            stats_.dense_rows += m;
          });
  for (size_t g = 0; g < group_adapter_.size(); ++g) {
    if (!weight[g]) continue;
    on_rows([&](int64_t r) { return row_adapter_[size_t(r)] == group_adapter_[g]; },
            [&](const float* xs, int64_t m, float* ys) {
              cpu::matmul(xs, m, weight[g]->data(), base.out, base.in, ys);
              stats_.materialized_rows += m;
            });
  }
  std::vector<const Adapter*> factored_adapter;
  on_rows(
      [&](int64_t r) {
        const Adapter* a = row_adapter_[size_t(r)];
        if (!a) return false;
        const size_t g = size_t(std::find(group_adapter_.begin(), group_adapter_.end(), a) -
                                group_adapter_.begin());
        if (weight[g]) return false;
        factored_adapter.push_back(a);
        return true;
      },
      [&](const float* xs, int64_t m, float* ys) {
        run_factored(slot, xs, m, factored_adapter, ys);
        stats_.factored_rows += m;
      });
  return true;
}

}  // namespace t2::backbone
