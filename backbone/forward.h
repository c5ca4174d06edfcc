// The Llama forward pass over a batch of sequences, each with its own KV cache
// and its own number of new tokens. Linear layers run as one GEMM over every
// token of the batch; attention runs per sequence against its own cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backbone/kv_cache.h"
#include "backbone/model.h"

namespace t2::backbone {

// Lets a caller replace the linear map of some layer (SVF experts). `x` holds
// the rows of the whole batch [n x in]; `row_seq[r]` is the batch sequence index
// of row r. Return false to run the plain weight.
class LinearHook {
 public:
  virtual ~LinearHook() = default;
  // Called before each Forward::run of a multi-request driver (Generator) with
  // the request index of every batch sequence: sequences leave the batch and
  // prefill runs in chunks, so sequence i is not request i. An empty span resets
  // to the identity (sequence i is request i), as for a direct Forward::run.
  virtual void begin_batch(std::span<const int> request_of_sequence) {
    (void)request_of_sequence;
  }
  virtual bool apply(int layer, MatrixKind kind, const Linear& base, const float* x, int64_t n,
                     std::span<const int32_t> row_seq, float* y) = 0;
};

struct SequenceInput {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;  // new tokens, appended at cache->length()
  bool all_logits = false;          // logits for every new token, else the last only
  int64_t first_logit = 0;          // with all_logits: new tokens before this get none
};

class Forward {
 public:
  explicit Forward(const Model& model) : model_(model) {}

  // Batches of at most this many token rows read quantized weights directly
  // (cpu/qmatmul.h); larger ones run the f32 GEMM. 0 disables the quantized path.
  void set_quantized_rows_max(int rows) { quantized_rows_max_ = rows; }

  // Runs the new tokens, appends them to each cache and writes the logits
  // (rows in sequence order; per sequence all new tokens or the last only) to
  // `logits` [rows x vocab]. Throws t2::Error on bad token ids or context overflow,
  // before any cache is modified.
  void run(std::span<const SequenceInput> batch, std::vector<float>& logits,
           LinearHook* hook = nullptr);

 private:
  void attention(int layer, std::span<const SequenceInput> batch);
  void attention_gemm(int layer, const KvCache& cache, int64_t row0, int64_t n);

  static constexpr int64_t kGemmAttentionMinTokens = 32;
  void linear(int layer, MatrixKind kind, const Linear& lin, const float* x, float* y,
              LinearHook* hook);
  void matmul(const Linear& lin, const float* x, int64_t n, float* y) const;

  const Model& model_;
  int quantized_rows_max_ = 8;
  // Workspace, reused across calls: [tokens x dim] each.
  std::vector<float> h_, xn_, q_, k_, v_, att_, gate_, up_, scores_;
  std::vector<int32_t> row_seq_;
  std::vector<int64_t> row_pos_;
  std::vector<int64_t> seq_row0_;
  int64_t n_rows_ = 0;
};

}  // namespace t2::backbone
