// KvCache growth and truncation (see kv_cache.h).
#include "backbone/kv_cache.h"

#include <algorithm>

#include "t2/error.h"

namespace t2::backbone {

KvCache::KvCache(const ModelConfig& config, int initial_capacity)
    : kv_dim_(config.kv_dim()), max_length_(config.n_ctx) {
  keys_.resize(size_t(config.n_layer));
  values_.resize(size_t(config.n_layer));
  capacity_ = 0;
  reserve_more(std::min(initial_capacity, max_length_));
}

void KvCache::reserve_more(int n) {
  const int need = length_ + n;
  if (need > max_length_) {
    fail("sequence of {} tokens exceeds the model's context length {}", need, max_length_);
  }
  if (need <= capacity_) return;
  const int cap = std::min(max_length_, std::max(need, capacity_ * 2));
  for (auto& k : keys_) k.resize(size_t(cap) * kv_dim_);
  for (auto& v : values_) v.resize(size_t(cap) * kv_dim_);
  capacity_ = cap;
}

void KvCache::truncate(int length) {
  if (length < 0 || length > length_) fail("cannot truncate a cache of {} to {}", length_, length);
  length_ = length;
}

}  // namespace t2::backbone
