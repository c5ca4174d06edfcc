// Per-sequence key/value cache: for each layer, rows of kv_dim floats indexed by
// position. Keys are stored after RoPE. Grows on demand up to the model's
// context length; length() is the number of positions already filled.
#pragma once

#include <vector>

#include "backbone/config.h"

namespace t2::backbone {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int initial_capacity = 256);

  int length() const { return length_; }
  int capacity() const { return capacity_; }
  int max_length() const { return max_length_; }
  int kv_dim() const { return kv_dim_; }

  // Makes room for `n` more positions; throws t2::Error past the context length.
  void reserve_more(int n);
  // Marks `n` more positions as filled (after the forward pass wrote them).
  void advance(int n) { length_ += n; }
  // Forgets positions from `length` on (e.g. to reuse a shared prompt prefix).
  void truncate(int length);

  float* key(int layer, int pos) { return keys_[size_t(layer)].data() + size_t(pos) * kv_dim_; }
  float* value(int layer, int pos) {
    return values_[size_t(layer)].data() + size_t(pos) * kv_dim_;
  }
  const float* key(int layer, int pos) const {
    return keys_[size_t(layer)].data() + size_t(pos) * kv_dim_;
  }
  const float* value(int layer, int pos) const {
    return values_[size_t(layer)].data() + size_t(pos) * kv_dim_;
  }

 private:
  int kv_dim_;
  int max_length_;
  int capacity_ = 0;
  int length_ = 0;
  std::vector<std::vector<float>> keys_, values_;  // [layer][pos * kv_dim]
};

}  // namespace t2::backbone
