// Hyperparameters of a Llama-architecture model, read from GGUF metadata
// (`llama.*` keys). Validated on load: every size positive and consistent.
#pragma once

#include <cstdint>
#include <string>

namespace t2::backbone {

class GgufFile;

struct ModelConfig {
  std::string architecture;  // "llama"
  std::string name;          // general.name, for display
  int n_layer = 0;
  int n_embd = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx = 0;   // trained context length
  int n_rot = 0;   // rotary dimensions per head
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }

  static ModelConfig from_gguf(const GgufFile& gguf);
};

}  // namespace t2::backbone
