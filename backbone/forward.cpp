// Llama forward pass (docs/gguf.md): h = embed; per layer attention and SwiGLU
// MLP with pre-RMSNorm and residuals; final norm and the output head. Shapes in
// comments use T = tokens in the batch, D = n_embd.
#include "backbone/forward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backbone/cpu/ops.h"
#include "backbone/cpu/qmatmul.h"
#include "t2/error.h"

namespace t2::backbone {

void Forward::linear(int layer, MatrixKind kind, const Linear& lin, const float* x, float* y,
                     LinearHook* hook) {
  if (hook && hook->apply(layer, kind, lin, x, n_rows_, row_seq_, y)) return;
  matmul(lin, x, n_rows_, y);
}

void Forward::matmul(const Linear& lin, const float* x, int64_t n, float* y) const {
  if (n <= quantized_rows_max_ && lin.source && cpu::qmatmul_supported(lin.source->type)) {
    cpu::qmatmul(x, n, lin.source->data, lin.source->type, lin.out, lin.in, y);
  } else {
    cpu::matmul(x, n, lin.w, lin.out, lin.in, y);
  }
}

void Forward::run(std::span<const SequenceInput> batch, std::vector<float>& logits,
                  LinearHook* hook) {
  const ModelConfig& c = model_.config();
  const int64_t D = c.n_embd;

  // Validate everything before touching any cache.
  int64_t T = 0, out_rows = 0;
  for (const SequenceInput& s : batch) {
    if (!s.cache) fail("forward: sequence without a KV cache");
    if (s.tokens.empty()) fail("forward: sequence with no new tokens");
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= c.n_vocab) fail("forward: token id {} outside vocabulary {}", t, c.n_vocab);
    }
    if (s.cache->length() + int64_t(s.tokens.size()) > s.cache->max_length()) {
      fail("forward: {} + {} tokens exceed the context length {}", s.cache->length(),
           s.tokens.size(), s.cache->max_length());
    }
    if (s.first_logit < 0 || s.first_logit >= int64_t(s.tokens.size()))
      fail("forward: first_logit {} outside the {} new tokens", s.first_logit, s.tokens.size());
    T += int64_t(s.tokens.size());
    out_rows += s.all_logits ? int64_t(s.tokens.size()) - s.first_logit : 1;
  }
  for (const SequenceInput& s : batch) s.cache->reserve_more(int(s.tokens.size()));

  n_rows_ = T;
  h_.resize(size_t(T * D));
  xn_.resize(size_t(T * D));
  q_.resize(size_t(T * c.q_dim()));
  k_.resize(size_t(T * c.kv_dim()));
  v_.resize(size_t(T * c.kv_dim()));
  att_.resize(size_t(T * c.q_dim()));
  gate_.resize(size_t(T * c.n_ff));
  up_.resize(size_t(T * c.n_ff));
  row_seq_.resize(size_t(T));
  row_pos_.resize(size_t(T));
  seq_row0_.resize(batch.size());

  // Embedding lookup; remember which sequence and position each row is.
  const float* embd = model_.token_embedding().data();
  int64_t r = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    seq_row0_[s] = r;
    for (size_t i = 0; i < batch[s].tokens.size(); ++i, ++r) {
      std::memcpy(&h_[size_t(r * D)], embd + int64_t(batch[s].tokens[i]) * D,
                  size_t(D) * sizeof(float));
      row_seq_[size_t(r)] = int32_t(s);
      row_pos_[size_t(r)] = batch[s].cache->length() + int64_t(i);
    }
  }

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = model_.layer(l);

    // Attention block: xn = norm(h); q,k,v; RoPE; attention; h += o(att).
    cpu::rmsnorm(h_.data(), L.attn_norm.data(), T, D, c.rms_eps, xn_.data());
    linear(l, MatrixKind::kQ, L.q, xn_.data(), q_.data(), hook);
    linear(l, MatrixKind::kK, L.k, xn_.data(), k_.data(), hook);
    linear(l, MatrixKind::kV, L.v, xn_.data(), v_.data(), hook);
#pragma omp parallel for if (T > 8) schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      cpu::rope(&q_[size_t(i * c.q_dim())], c.n_head, c.head_dim, c.n_rot, row_pos_[size_t(i)],
                c.rope_base);
      cpu::rope(&k_[size_t(i * c.kv_dim())], c.n_head_kv, c.head_dim, c.n_rot,
                row_pos_[size_t(i)], c.rope_base);
    }
    attention(l, batch);
    linear(l, MatrixKind::kO, L.o, att_.data(), xn_.data(), hook);
    for (int64_t i = 0; i < T * D; ++i) h_[size_t(i)] += xn_[size_t(i)];

    // MLP block: h += down(silu(gate(xn)) * up(xn)).
    cpu::rmsnorm(h_.data(), L.ffn_norm.data(), T, D, c.rms_eps, xn_.data());
    linear(l, MatrixKind::kGate, L.gate, xn_.data(), gate_.data(), hook);
    linear(l, MatrixKind::kUp, L.up, xn_.data(), up_.data(), hook);
    cpu::swiglu(gate_.data(), up_.data(), T * c.n_ff);
    linear(l, MatrixKind::kDown, L.down, gate_.data(), xn_.data(), hook);
    for (int64_t i = 0; i < T * D; ++i) h_[size_t(i)] += xn_[size_t(i)];
  }

  for (const SequenceInput& s : batch) s.cache->advance(int(s.tokens.size()));

  // Final norm and output head, only on the rows whose logits are wanted.
  std::vector<int64_t> rows;
  rows.reserve(size_t(out_rows));
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = int64_t(batch[s].tokens.size());
    for (int64_t i = batch[s].all_logits ? batch[s].first_logit : n - 1; i < n; ++i)
      rows.push_back(seq_row0_[s] + i);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(&xn_[i * size_t(D)], &h_[size_t(rows[i] * D)], size_t(D) * sizeof(float));
  }
  cpu::rmsnorm(xn_.data(), model_.output_norm().data(), out_rows, D, c.rms_eps, xn_.data());
  logits.resize(size_t(out_rows * c.n_vocab));
  matmul(model_.output(), xn_.data(), out_rows, logits.data());
}

void Forward::attention(int layer, std::span<const SequenceInput> batch) {
  const ModelConfig& c = model_.config();
  const int hd = c.head_dim, group = c.n_head / c.n_head_kv;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim();
  const float scale = 1.0f / std::sqrt(float(hd));

  // Store this layer's new keys and values in each sequence's cache.
  for (size_t s = 0; s < batch.size(); ++s) {
    KvCache& cache = *batch[s].cache;
    for (size_t i = 0; i < batch[s].tokens.size(); ++i) {
      const int64_t row = seq_row0_[s] + int64_t(i);
      const int pos = cache.length() + int(i);
      std::memcpy(cache.key(layer, pos), &k_[size_t(row * kvd)], size_t(kvd) * sizeof(float));
      std::memcpy(cache.value(layer, pos), &v_[size_t(row * kvd)], size_t(kvd) * sizeof(float));
    }
  }

  // Long runs of new tokens (prefill): per head, scores and outputs as GEMMs.
  // Short ones (decode): one work item per (token row, head) over its cache.
  std::vector<int64_t> short_rows;
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = int64_t(batch[s].tokens.size());
    if (n >= kGemmAttentionMinTokens) {
      attention_gemm(layer, *batch[s].cache, seq_row0_[s], n);
    } else {
      for (int64_t i = 0; i < n; ++i) short_rows.push_back(seq_row0_[s] + i);
    }
  }

  const int64_t items = int64_t(short_rows.size()) * c.n_head;
#pragma omp parallel if (items > 1)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 8)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t row = short_rows[size_t(item / c.n_head)];
      const int h = int(item % c.n_head), g = h / group;
      const KvCache& cache = *batch[size_t(row_seq_[size_t(row)])].cache;
      const int64_t n_ctx = row_pos_[size_t(row)] + 1;
      const float* q = &q_[size_t(row * qd + int64_t(h) * hd)];
      scores.resize(size_t(n_ctx));
      for (int64_t j = 0; j < n_ctx; ++j) {
        const float* kj = cache.key(layer, int(j)) + int64_t(g) * hd;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < hd; ++d) dot += q[d] * kj[d];
        scores[size_t(j)] = dot * scale;
      }
      cpu::softmax(scores.data(), n_ctx);
      float* out = &att_[size_t(row * qd + int64_t(h) * hd)];
      std::fill(out, out + hd, 0.0f);
      for (int64_t j = 0; j < n_ctx; ++j) {
        const float a = scores[size_t(j)];
        const float* vj = cache.value(layer, int(j)) + int64_t(g) * hd;
#pragma omp simd
        for (int d = 0; d < hd; ++d) out[d] += a * vj[d];
      }
    }
  }
}

void Forward::attention_gemm(int layer, const KvCache& cache, int64_t row0, int64_t n) {
  const ModelConfig& c = model_.config();
  const int hd = c.head_dim, group = c.n_head / c.n_head_kv;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t start = row_pos_[size_t(row0)];  // position of the first new token
  const int64_t n_ctx = start + n;
  const float scale = 1.0f / std::sqrt(float(hd));
  scores_.resize(size_t(n * n_ctx));
  const float* keys = cache.key(layer, 0);
  const float* values = cache.value(layer, 0);
  for (int h = 0; h < c.n_head; ++h) {
    const int g = h / group;
    // S [n x n_ctx] = scale * Q_h [n x hd] * K_g^T; rows of Q and K are strided.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(n_ctx), hd, scale,
                &q_[size_t(row0 * qd + int64_t(h) * hd)], int(qd), keys + int64_t(g) * hd,
                int(kvd), 0.0f, scores_.data(), int(n_ctx));
    // Causal mask and softmax: new token i sees positions 0..start+i.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float* row = &scores_[size_t(i * n_ctx)];
      const int64_t visible = start + i + 1;
      cpu::softmax(row, visible);
      std::fill(row + visible, row + n_ctx, 0.0f);
    }
    // O_h [n x hd] = S * V_g [n_ctx x hd].
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), hd, int(n_ctx), 1.0f,
                scores_.data(), int(n_ctx), values + int64_t(g) * hd, int(kvd), 0.0f,
                &att_[size_t(row0 * qd + int64_t(h) * hd)], int(qd));
  }
}

}  // namespace t2::backbone
