// Reads and validates ModelConfig from GGUF metadata (keys in docs/gguf.md).
#include "backbone/config.h"

#include "backbone/gguf.h"
#include "t2/error.h"

namespace t2::backbone {

ModelConfig ModelConfig::from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  c.architecture = gguf.get_string("general.architecture");
  if (c.architecture != "llama") {
    fail("{}: architecture '{}' is not supported (t2 runs 'llama')", gguf.path(),
         c.architecture);
  }
  c.name = gguf.get_string("general.name", "unnamed");
  const std::string p = "llama.";
  auto get_int = [&](const std::string& key) {
    const uint64_t v = gguf.get_uint(p + key);
    if (v == 0 || v > (1u << 24)) fail("{}: {}{} = {} is out of range", gguf.path(), p, key, v);
    return int(v);
  };
  c.n_layer = get_int("block_count");
  c.n_embd = get_int("embedding_length");
  c.n_ff = get_int("feed_forward_length");
  c.n_head = get_int("attention.head_count");
  c.n_head_kv = gguf.has(p + "attention.head_count_kv") ? get_int("attention.head_count_kv")
                                                         : c.n_head;
  c.n_ctx = get_int("context_length");
  c.head_dim = gguf.has(p + "attention.key_length") ? get_int("attention.key_length")
                                                     : c.n_embd / c.n_head;
  c.n_rot = gguf.has(p + "rope.dimension_count") ? get_int("rope.dimension_count") : c.head_dim;
  c.rope_base = float(gguf.get_float(p + "rope.freq_base", 10000.0));
  c.rms_eps = float(gguf.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.n_vocab = gguf.has(p + "vocab_size")
                  ? get_int("vocab_size")
                  : int(gguf.get_string_array("tokenizer.ggml.tokens").size());

  if (c.n_head % c.n_head_kv != 0) {
    fail("{}: {} query heads are not a multiple of {} kv heads", gguf.path(), c.n_head,
         c.n_head_kv);
  }
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    fail("{}: rope.dimension_count {} does not fit head dim {}", gguf.path(), c.n_rot,
         c.head_dim);
  }
  if (!(c.rms_eps > 0.0f) || !(c.rope_base > 0.0f)) {
    fail("{}: rms epsilon and rope base must be positive", gguf.path());
  }
  return c;
}

}  // namespace t2::backbone
