// backbone::Model — a Llama model loaded from GGUF: config, tokenizer and the
// weights dequantized once to f32 (row-major [out x in]). Immutable after load,
// so any number of threads and generators may share one Model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backbone/config.h"
#include "backbone/gguf.h"
#include "backbone/tokenizer.h"

namespace t2::backbone {

// A weight matrix of a linear layer, y = W x. `source` is the tensor it was
// read from (quantized, in the mapped file), kept for fast kernels.
struct Linear {
  int out = 0;
  int in = 0;
  const float* w = nullptr;    // [out x in]: points into storage or a shared tensor
  std::vector<float> storage;  // owned f32 values (empty when w is borrowed)
  const TensorInfo* source = nullptr;

  int64_t size() const { return int64_t(out) * in; }
};

// The adapted matrices of a layer, in a fixed order used by SVF and experts.
enum class MatrixKind { kQ, kK, kV, kO, kGate, kUp, kDown };
constexpr int kMatrixKinds = 7;
const char* matrix_kind_name(MatrixKind kind);  // "attn_q", ..., "ffn_down"

struct LayerWeights {
  std::vector<float> attn_norm;  // [n_embd]
  std::vector<float> ffn_norm;   // [n_embd]
  Linear q, k, v, o;             // [q_dim x n_embd], [kv_dim x n_embd] x2, [n_embd x q_dim]
  Linear gate, up, down;         // [n_ff x n_embd] x2, [n_embd x n_ff]

  const Linear& matrix(MatrixKind kind) const;
};

class Model {
 public:
  // Loads `path` (GGUF). Throws t2::Error naming the file and what was wrong.
  static std::shared_ptr<const Model> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  const std::string& path() const { return gguf_->path(); }

  const std::vector<float>& token_embedding() const { return token_embd_; }  // [vocab x embd]
  const std::vector<float>& output_norm() const { return output_norm_; }
  const Linear& output() const { return output_; }  // tied to token_embd when absent
  bool tied_output() const { return tied_output_; }
  const LayerWeights& layer(int i) const { return layers_[size_t(i)]; }

  int64_t parameter_count() const;

 private:
  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  Tokenizer tokenizer_;
  std::vector<float> token_embd_;
  std::vector<float> output_norm_;
  Linear output_;
  bool tied_output_ = false;
  std::vector<LayerWeights> layers_;
};

}  // namespace t2::backbone
