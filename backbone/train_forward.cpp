// The training pass (train_forward.h). Shapes: N = input rows of the batch (each
// sequence without its last token, which is only a target), D = n_embd, R = rank of
// a slot, rows = logit rows (response tokens). Linear layers are one GEMM over all N
// rows; attention is one OpenMP work item per (sequence, kv head).
#include "backbone/train_forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backbone/backward.h"
#include "t2/error.h"

namespace t2::backbone {

using train::gemm;

template <typename T>
struct TrainForwardT<T>::Slot {
  int out = 0, in = 0, rank = 0;
  const T* u = nullptr;   // [out x R]
  const T* s = nullptr;   // [R]
  const T* vt = nullptr;  // [R x in]
  double s_sum = 0.0;
};

// Activations of one layer kept for backward, [N x width] each.
template <typename T>
struct TrainForwardT<T>::Acts {
  std::vector<T> q, k, v;                 // q and k after RoPE
  std::vector<T> gate, up;                // before SwiGLU
  std::vector<T> a[kMatrixKinds];         // V^T x of the adapted matrices [N x R]
};

namespace {

// Forward order inside a layer: q, k, v read the block input; o; gate, up; down.
int stage_of(MatrixKind kind) {
  switch (kind) {
    case MatrixKind::kQ: case MatrixKind::kK: case MatrixKind::kV: return 0;
    case MatrixKind::kO: return 1;
    case MatrixKind::kGate: case MatrixKind::kUp: return 2;
    case MatrixKind::kDown: return 3;
  }
  return 0;
}

template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
}

}  // namespace

template <typename T>
const T* TrainForwardT<T>::adopt(const float* src, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return src;
  } else {
    owned_.emplace_back(src, src + n);
    return owned_.back().data();
  }
}

template <typename T>
TrainForwardT<T>::TrainForwardT(const Model& model, const SvfSlots& slots)
    : model_(model), slots_(slots) {
  const ModelConfig& c = model.config();
  if (slots.n_layer != c.n_layer) {
    fail("train forward: SVF slots cover {} layers, the model has {}", slots.n_layer, c.n_layer);
  }
  embd_ = adopt(model.token_embedding().data(), int64_t(c.n_vocab) * c.n_embd);
  out_norm_ = adopt(model.output_norm().data(), c.n_embd);
  out_w_ = model.tied_output() ? embd_ : adopt(model.output().w, model.output().size());
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = model.layer(l);
    norm_w_.push_back(adopt(L.attn_norm.data(), c.n_embd));
    norm_w_.push_back(adopt(L.ffn_norm.data(), c.n_embd));
    for (int k = 0; k < kMatrixKinds; ++k) {
      const Linear& lin = L.matrix(MatrixKind(k));
      matrix_w_.push_back(adopt(lin.w, lin.size()));
    }
  }

  earliest_stage_ = std::numeric_limits<int64_t>::max();
  for (int l = 0; l < c.n_layer; ++l) {
    for (int k = 0; k < kMatrixKinds; ++k) {
      const int i = slots.slot(l, MatrixKind(k));
      if (i < 0) continue;
      const SvdFactors& f = slots.factors[size_t(i)];
      const Linear& lin = model.layer(l).matrix(MatrixKind(k));
      if (f.out != lin.out || f.in != lin.in || f.rank != std::min(f.out, f.in)) {
        fail("train forward: factors of blk.{}.{} are [{} x {}] rank {}, the matrix is [{} x {}]",
             l, matrix_kind_name(MatrixKind(k)), f.out, f.in, f.rank, lin.out, lin.in);
      }
      earliest_stage_ = std::min(earliest_stage_, int64_t(4 * l + stage_of(MatrixKind(k))));
    }
  }
  slot_w_.resize(size_t(slots.n_slots()));
  for (int i = 0; i < slots.n_slots(); ++i) {
    const SvdFactors& f = slots.factors[size_t(i)];
    Slot& w = slot_w_[size_t(i)];
    w.out = f.out;
    w.in = f.in;
    w.rank = f.rank;
    w.u = adopt(f.u, int64_t(f.out) * f.rank);
    w.s = adopt(f.s, f.rank);
    w.vt = adopt(f.vt, int64_t(f.rank) * f.in);
    for (int r = 0; r < f.rank; ++r) w.s_sum += double(f.s[r]);  // same order as sum(s z)
  }
}

template <typename T>
TrainForwardT<T>::~TrainForwardT() = default;

template <typename T>
int64_t TrainForwardT<T>::activation_bytes_per_row() const {
  const ModelConfig& c = model_.config();
  int64_t per_layer = 2 * c.n_embd + c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff;
  int64_t ranks = 0;
  for (const Slot& s : slot_w_) ranks += s.rank;
  return int64_t(sizeof(T)) * (per_layer * c.n_layer + c.n_embd + ranks);
}

template <typename T>
T* TrainForwardT<T>::hbuf(int i) {
  const int64_t D = model_.config().n_embd;
  const int64_t index = kept_ ? i : i % 2;  // without backward only the current pair
  return h_.data() + index * n_rows_ * D;
}

// ---- run -----------------------------------------------------------------------------

template <typename T>
void TrainForwardT<T>::run(std::span<const TrainSequenceT<T>> batch, bool for_backward) {
  const ModelConfig& c = model_.config();
  const int64_t D = c.n_embd, V = c.n_vocab, n_seq = int64_t(batch.size());
  const int64_t K = slots_.total_rank;

  // Validate everything first.
  if (batch.empty()) fail("train forward: empty batch");
  int64_t max_len = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const TrainSequenceT<T>& q = batch[s];
    const int64_t n = int64_t(q.tokens.size());
    if (q.n_prompt < 1 || q.n_prompt >= n) {
      fail("train forward: sequence {} has {} tokens and n_prompt {}; need 1 <= n_prompt < "
           "tokens (at least one prompt and one response token)", s, n, q.n_prompt);
    }
    if (n - 1 > c.n_ctx) {
      fail("train forward: sequence {} of {} tokens exceeds the context {}", s, n, c.n_ctx);
    }
    for (int32_t t : q.tokens) {
      if (t < 0 || t >= c.n_vocab) fail("train forward: token id {} outside vocabulary {}", t, V);
    }
    if (!q.z.empty() && int64_t(q.z.size()) != K) {
      fail("train forward: sequence {} has a z of {} values, the SVF slots need {}", s,
           q.z.size(), K);
    }
    max_len = std::max(max_len, n - 1);
  }

  // Rows: input positions 0..n-2 of each sequence; logit rows n_prompt-1..n-2.
  seq_row0_.assign(1, 0);
  seq_out0_.assign(1, 0);
  row_pos_.clear();
  row_seq_.clear();
  out_src_.clear();
  targets_.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = int64_t(batch[s].tokens.size()), row0 = seq_row0_.back();
    for (int64_t i = 0; i + 1 < n; ++i) {
      row_pos_.push_back(i);
      row_seq_.push_back(int32_t(s));
    }
    for (int64_t i = batch[s].n_prompt - 1; i + 1 < n; ++i) {
      out_src_.push_back(row0 + i);
      targets_.push_back(batch[s].tokens[size_t(i + 1)]);
    }
    seq_row0_.push_back(row0 + n - 1);
    seq_out0_.push_back(int64_t(out_src_.size()));
  }
  n_rows_ = seq_row0_.back();
  n_out_ = int64_t(out_src_.size());
  const int64_t N = n_rows_;

  // Per sequence and slot: z (1 for base sequences) and the row scale c s z.
  has_z_.assign(size_t(n_seq), 0);
  factored_ = false;
  for (size_t s = 0; s < batch.size(); ++s) {
    has_z_[s] = !batch[s].z.empty() && K > 0;
    factored_ = factored_ || has_z_[s];
  }
  const int n_slots = slots_.n_slots();
  z_.assign(size_t(n_seq * K), T(1));
  scale_.assign(size_t(n_seq * K), T(0));
  c_.assign(size_t(n_seq * n_slots), 1.0);
  sz_sum_.assign(size_t(n_seq * n_slots), 0.0);
  for (int64_t s = 0; s < n_seq; ++s) {
    const auto& z_in = batch[size_t(s)].z;
    if (has_z_[size_t(s)]) std::copy(z_in.begin(), z_in.end(), &z_[size_t(s * K)]);
    for (int i = 0; i < n_slots; ++i) {
      const Slot& w = slot_w_[size_t(i)];
      const T* z = &z_[size_t(s * K + slots_.offset[size_t(i)])];
      double sz = 0.0;
      for (int r = 0; r < w.rank; ++r) sz += double(w.s[r]) * double(z[r]);
      if (has_z_[size_t(s)] && !(sz > 0.0)) {
        fail("train forward: sequence {} slot {}: sum(s * z) = {}; z must be positive", s, i, sz);
      }
      const double cs = has_z_[size_t(s)] ? w.s_sum / sz : 1.0;
      c_[size_t(s * n_slots + i)] = cs;
      sz_sum_[size_t(s * n_slots + i)] = sz;
      T* out = &scale_[size_t(s * K + slots_.offset[size_t(i)])];
      for (int r = 0; r < w.rank; ++r) out[r] = T(cs * double(w.s[r]) * double(z[r]));
    }
  }

  // Buffers. Activations of every layer only when backward will follow.
  kept_ = for_backward;
  const int64_t ff = c.n_ff, qd = c.q_dim(), kvd = c.kv_dim();
  int max_rank = 0;
  for (const Slot& w : slot_w_) max_rank = std::max(max_rank, w.rank);
  grow(h_, (kept_ ? 2 * c.n_layer + 1 : 2) * N * D);
  grow(xn_, N * D);
  grow(att_, N * qd);
  grow(act_, N * ff);
  grow(tmp_, N * std::max<int64_t>(D, max_rank));
  grow(rank_tmp_, N * max_rank);
  grow(scratch_, int64_t(omp_get_max_threads()) * train::attention_scratch(max_len));
  if (int64_t(rope_.size()) < (max_len + 1) * c.n_rot) {
    rope_ = train::rope_table<T>(int(max_len + 1), c.n_rot, c.rope_base);
  }
  acts_.resize(kept_ ? size_t(c.n_layer) : std::max<size_t>(acts_.size(), 1));
  for (size_t l = 0; l < (kept_ ? acts_.size() : 1); ++l) {
    Acts& a = acts_[l];
    grow(a.q, N * qd);
    grow(a.k, N * kvd);
    grow(a.v, N * kvd);
    grow(a.gate, N * ff);
    grow(a.up, N * ff);
    for (int k = 0; k < kMatrixKinds; ++k) {
      const int i = slots_.slot(int(l), MatrixKind(k));
      if (kept_ && factored_ && i >= 0) grow(a.a[k], N * slot_w_[size_t(i)].rank);
    }
  }

  // Embedding lookup.
  T* h0 = hbuf(0);
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int64_t i = 0; i + 1 < int64_t(batch[s].tokens.size()); ++i) {
      std::memcpy(h0 + (seq_row0_[s] + i) * D, embd_ + int64_t(batch[s].tokens[size_t(i)]) * D,
                  size_t(D) * sizeof(T));
    }
  }

  for (int l = 0; l < c.n_layer; ++l) forward_layer(l, acts_[kept_ ? size_t(l) : 0]);

  // Final norm and output head on the logit rows only.
  const T* hf = hbuf(2 * c.n_layer);
  for (int64_t r = 0; r < n_out_; ++r) {
    std::memcpy(&xn_[size_t(r * D)], hf + out_src_[size_t(r)] * D, size_t(D) * sizeof(T));
  }
  train::rmsnorm_forward(xn_.data(), out_norm_, n_out_, D, c.rms_eps, xn_.data());
  logits_.resize(size_t(n_out_ * V));
  gemm<T>(false, true, n_out_, V, D, T(1), xn_.data(), D, out_w_, D, T(0), logits_.data(), V);
  logprob_.resize(size_t(n_out_));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_out_; ++r) {
    logprob_[size_t(r)] = T(token_logprob(&logits_[size_t(r * V)], V, targets_[size_t(r)]));
  }
}

template <typename T>
void TrainForwardT<T>::forward_layer(int l, Acts& act) {
  const ModelConfig& c = model_.config();
  const int64_t N = n_rows_, D = c.n_embd, qd = c.q_dim(), kvd = c.kv_dim();
  T* hin = hbuf(2 * l);
  T* hmid = hbuf(2 * l + 1);
  T* hout = hbuf(2 * l + 2);

  // Attention block: xn = norm(hin); q, k, v; RoPE; attention; hmid = hin + o(att).
  train::rmsnorm_forward(hin, norm_w_[size_t(2 * l)], N, D, c.rms_eps, xn_.data());
  linear_forward(l, MatrixKind::kQ, xn_.data(), act.q.data(), act);
  linear_forward(l, MatrixKind::kK, xn_.data(), act.k.data(), act);
  linear_forward(l, MatrixKind::kV, xn_.data(), act.v.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t pos = row_pos_[size_t(i)];
    train::rope_rotate(&act.q[size_t(i * qd)], c.n_head, c.head_dim, c.n_rot, rope_.data(), pos,
                       false);
    train::rope_rotate(&act.k[size_t(i * kvd)], c.n_head_kv, c.head_dim, c.n_rot, rope_.data(),
                       pos, false);
  }
  const train::AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, qd, kvd,
                                    1.0 / std::sqrt(double(c.head_dim))};
  const int64_t n_seq = int64_t(seq_row0_.size()) - 1, items = n_seq * c.n_head_kv;
  const int64_t per_thread = int64_t(scratch_.size()) / omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t s = item / c.n_head_kv, r0 = seq_row0_[size_t(s)];
    train::attention_forward(shape, int(item % c.n_head_kv), seq_row0_[size_t(s + 1)] - r0,
                             &act.q[size_t(r0 * qd)], &act.k[size_t(r0 * kvd)],
                             &act.v[size_t(r0 * kvd)], &att_[size_t(r0 * qd)],
                             &scratch_[size_t(omp_get_thread_num() * per_thread)]);
  }
  linear_forward(l, MatrixKind::kO, att_.data(), tmp_.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * D; ++i) hmid[i] = hin[i] + tmp_[size_t(i)];

  // MLP block: hout = hmid + down(silu(gate(xn)) * up(xn)), xn = norm(hmid).
  train::rmsnorm_forward(hmid, norm_w_[size_t(2 * l + 1)], N, D, c.rms_eps, xn_.data());
  linear_forward(l, MatrixKind::kGate, xn_.data(), act.gate.data(), act);
  linear_forward(l, MatrixKind::kUp, xn_.data(), act.up.data(), act);
  train::swiglu_forward(act.gate.data(), act.up.data(), N * c.n_ff, act_.data());
  linear_forward(l, MatrixKind::kDown, act_.data(), tmp_.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * D; ++i) hout[i] = hmid[i] + tmp_[size_t(i)];
}

// y[N x out] = x W^T, or factored: a = x V (kept), y = (a * scale_row) U^T.
template <typename T>
void TrainForwardT<T>::linear_forward(int l, MatrixKind kind, const T* x, T* y, Acts& act) {
  const int64_t N = n_rows_;
  const int slot = slots_.slot(l, kind);
  if (slot < 0 || !factored_) {
    const Linear& lin = model_.layer(l).matrix(kind);
    gemm<T>(false, true, N, lin.out, lin.in, T(1), x, lin.in,
            matrix_w_[size_t(l) * kMatrixKinds + size_t(kind)], lin.in, T(0), y, lin.out);
    return;
  }
  const Slot& w = slot_w_[size_t(slot)];
  const int64_t R = w.rank, off = slots_.offset[size_t(slot)], K = slots_.total_rank;
  T* a = kept_ ? act.a[int(kind)].data() : rank_tmp_.data();
  gemm<T>(false, true, N, R, w.in, T(1), x, w.in, w.vt, w.in, T(0), a, R);
  T* as = kept_ ? rank_tmp_.data() : a;  // scaled copy, or in place when nothing is kept
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* sc = &scale_[size_t(row_seq_[size_t(i)] * K + off)];
    for (int64_t r = 0; r < R; ++r) as[i * R + r] = a[i * R + r] * sc[r];
  }
  gemm<T>(false, true, N, w.out, R, T(1), as, R, w.u, R, T(0), y, w.out);
}

// ---- backward ----------------------------------------------------------------------------

template <typename T>
const std::vector<T>& TrainForwardT<T>::backward(std::span<const T> dlogits) {
  const ModelConfig& c = model_.config();
  const int64_t D = c.n_embd, V = c.n_vocab, N = n_rows_;
  const int64_t n_seq = int64_t(seq_row0_.size()) - 1;
  if (!kept_) fail("train forward: backward needs run(batch, true) first");
  if (int64_t(dlogits.size()) != n_out_ * V) {
    fail("train forward: dlogits has {} values, expected {} rows x {} vocab", dlogits.size(),
         n_out_, V);
  }
  dz_.assign(size_t(n_seq * slots_.total_rank), T(0));
  if (!factored_) return dz_;  // only base sequences: nothing depends on z

  int max_rank = 0;
  for (const Slot& w : slot_w_) max_rank = std::max(max_rank, w.rank);
  g_.assign(size_t(n_seq * max_rank), 0.0);
  grow(dh_, N * D);
  grow(dxn_, N * D);
  grow(datt_, N * c.q_dim());
  grow(dq_, N * c.q_dim());
  grow(dk_, N * c.kv_dim());
  grow(dv_, N * c.kv_dim());
  grow(dff1_, N * c.n_ff);
  grow(dff2_, N * c.n_ff);

  // Head: dxf = dlogits W; through the final norm of the logit rows into dh.
  const T* hf = hbuf(2 * c.n_layer);
  gemm<T>(false, false, n_out_, D, V, T(1), dlogits.data(), V, out_w_, D, T(0), tmp_.data(), D);
  for (int64_t r = 0; r < n_out_; ++r) {
    std::memcpy(&xn_[size_t(r * D)], hf + out_src_[size_t(r)] * D, size_t(D) * sizeof(T));
  }
  train::rmsnorm_backward(xn_.data(), out_norm_, tmp_.data(), n_out_, D, c.rms_eps, dxn_.data(),
                          false);
  std::fill(dh_.begin(), dh_.begin() + N * D, T(0));
  for (int64_t r = 0; r < n_out_; ++r) {
    T* dst = &dh_[size_t(out_src_[size_t(r)] * D)];
    const T* src = &dxn_[size_t(r * D)];
    for (int64_t i = 0; i < D; ++i) dst[i] += src[i];
  }

  for (int l = c.n_layer - 1; l >= 0 && 4 * int64_t(l) + 3 >= earliest_stage_; --l) {
    backward_layer(l, acts_[size_t(l)]);
  }
  return dz_;
}

// dh_ holds dL/d(output of layer l) on entry and dL/d(its input) on exit; stops
// early at the first adapted matrix of the network (nothing below needs a gradient).
template <typename T>
void TrainForwardT<T>::backward_layer(int l, Acts& act) {
  const ModelConfig& c = model_.config();
  const int64_t N = n_rows_, D = c.n_embd, qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t stage0 = 4 * int64_t(l);
  auto below = [&](int stage) { return earliest_stage_ < stage0 + stage; };

  // MLP block. dff1 = d act; then d gate (dff2) and d up (dff1, in place).
  linear_backward(l, MatrixKind::kDown, dh_.data(), dff1_.data(), false, below(3), act);
  if (!below(3)) return;
  train::swiglu_backward(act.gate.data(), act.up.data(), dff1_.data(), N * c.n_ff, dff2_.data(),
                         dff1_.data());
  linear_backward(l, MatrixKind::kGate, dff2_.data(), dxn_.data(), false, below(2), act);
  linear_backward(l, MatrixKind::kUp, dff1_.data(), dxn_.data(), true, below(2), act);
  if (!below(2)) return;
  train::rmsnorm_backward(hbuf(2 * l + 1), norm_w_[size_t(2 * l + 1)], dxn_.data(), N, D,
                          c.rms_eps, dh_.data(), true);

  // Attention block.
  linear_backward(l, MatrixKind::kO, dh_.data(), datt_.data(), false, below(1), act);
  if (!below(1)) return;
  const train::AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim, qd, kvd,
                                    1.0 / std::sqrt(double(c.head_dim))};
  const int64_t n_seq = int64_t(seq_row0_.size()) - 1, items = n_seq * c.n_head_kv;
  const int64_t per_thread = int64_t(scratch_.size()) / omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t s = item / c.n_head_kv, r0 = seq_row0_[size_t(s)];
    train::attention_backward(shape, int(item % c.n_head_kv), seq_row0_[size_t(s + 1)] - r0,
                              &act.q[size_t(r0 * qd)], &act.k[size_t(r0 * kvd)],
                              &act.v[size_t(r0 * kvd)], &datt_[size_t(r0 * qd)],
                              &dq_[size_t(r0 * qd)], &dk_[size_t(r0 * kvd)],
                              &dv_[size_t(r0 * kvd)],
                              &scratch_[size_t(omp_get_thread_num() * per_thread)]);
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t pos = row_pos_[size_t(i)];
    train::rope_rotate(&dq_[size_t(i * qd)], c.n_head, c.head_dim, c.n_rot, rope_.data(), pos,
                       true);
    train::rope_rotate(&dk_[size_t(i * kvd)], c.n_head_kv, c.head_dim, c.n_rot, rope_.data(),
                       pos, true);
  }
  linear_backward(l, MatrixKind::kQ, dq_.data(), dxn_.data(), false, below(0), act);
  linear_backward(l, MatrixKind::kK, dk_.data(), dxn_.data(), true, below(0), act);
  linear_backward(l, MatrixKind::kV, dv_.data(), dxn_.data(), true, below(0), act);
  if (!below(0)) return;
  train::rmsnorm_backward(hbuf(2 * l), norm_w_[size_t(2 * l)], dxn_.data(), N, D, c.rms_eps,
                          dh_.data(), true);
}

// dx = dy W, or factored: b = dy U; per sequence g = sum over rows of a * b, and
//   dz_i = c s_i (g_i - sum_j s_j z_j g_j / sum(s z))   (the second term is the rescale);
// dx = (b * scale_row) V^T.
template <typename T>
void TrainForwardT<T>::linear_backward(int l, MatrixKind kind, const T* dy, T* dx,
                                       bool accumulate, bool need_dx, Acts& act) {
  const int64_t N = n_rows_;
  const int slot = slots_.slot(l, kind);
  if (slot < 0) {
    if (!need_dx) return;
    const Linear& lin = model_.layer(l).matrix(kind);
    gemm<T>(false, false, N, lin.in, lin.out, T(1), dy, lin.out,
            matrix_w_[size_t(l) * kMatrixKinds + size_t(kind)], lin.in, T(accumulate), dx,
            lin.in);
    return;
  }
  const Slot& w = slot_w_[size_t(slot)];
  const int64_t R = w.rank, off = slots_.offset[size_t(slot)], K = slots_.total_rank;
  const int n_slots = slots_.n_slots();
  T* b = rank_tmp_.data();
  gemm<T>(false, false, N, R, w.out, T(1), dy, w.out, w.u, R, T(0), b, R);
  const T* a = act.a[int(kind)].data();

  const int64_t n_seq = int64_t(seq_row0_.size()) - 1;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t s = 0; s < n_seq; ++s) {
    const int64_t r0 = seq_row0_[size_t(s)], r1 = seq_row0_[size_t(s + 1)];
    if (has_z_[size_t(s)]) {
      double* g = &g_[size_t(s) * size_t(R)];
      std::fill(g, g + R, 0.0);
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t r = 0; r < R; ++r) g[r] += double(a[i * R + r]) * double(b[i * R + r]);
      }
      const T* z = &z_[size_t(s * K + off)];
      double q = 0.0;
      for (int64_t r = 0; r < R; ++r) q += double(w.s[r]) * double(z[r]) * g[r];
      const double cs = c_[size_t(s * n_slots + slot)];
      const double mean = q / sz_sum_[size_t(s * n_slots + slot)];
      T* dz = &dz_[size_t(s * K + off)];
      for (int64_t r = 0; r < R; ++r) dz[r] = T(cs * double(w.s[r]) * (g[r] - mean));
    }
    if (need_dx) {
      const T* sc = &scale_[size_t(s * K + off)];
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t r = 0; r < R; ++r) b[i * R + r] *= sc[r];
      }
    }
  }
  if (need_dx) gemm<T>(false, false, N, w.in, R, T(1), b, R, w.vt, w.in, T(accumulate), dx, w.in);
}

// ---- losses ----------------------------------------------------------------------------

namespace {

template <typename T>
double log_sum_exp(const T* x, int64_t n) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - double(mx));
  return double(mx) + std::log(sum);
}

}  // namespace

template <typename T>
double token_logprob(const T* logits, int64_t vocab, int32_t target) {
  return double(logits[target]) - log_sum_exp(logits, vocab);
}

template <typename T>
void add_logprob_grad(const T* logits, int64_t vocab, int32_t target, double coef, T* drow) {
  const double lse = log_sum_exp(logits, vocab);
  for (int64_t v = 0; v < vocab; ++v) {
    drow[v] += T(-coef * std::exp(double(logits[v]) - lse));
  }
  drow[target] += T(coef);
}

template <typename T>
double add_kl_grad(const T* logits, const T* ref_logprobs, int64_t vocab, double coef,
                   T* drow) {
  const double lse = log_sum_exp(logits, vocab);
  double kl = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    const double lp = double(logits[v]) - lse, lr = double(ref_logprobs[v]);
    const double pr = std::exp(lr);
    kl += pr * (lr - lp);
    drow[v] += T(coef * (std::exp(lp) - pr));
  }
  return kl;
}

template <typename T>
void log_softmax(const T* logits, int64_t vocab, T* out) {
  const double lse = log_sum_exp(logits, vocab);
  for (int64_t v = 0; v < vocab; ++v) out[v] = T(double(logits[v]) - lse);
}

// ---- chain rules -------------------------------------------------------------------------

template <typename T>
void sigmoid_backward(std::span<const T> p, std::span<const T> dz, std::span<T> dp) {
  if (p.size() != dz.size() || dp.size() != dz.size()) {
    fail("sigmoid_backward: sizes {} / {} / {} differ", p.size(), dz.size(), dp.size());
  }
  for (size_t i = 0; i < p.size(); ++i) {
    const T z = T(1) / (T(1) + std::exp(-p[i]));
    dp[i] = dz[i] * z * (T(1) - z);
  }
}

namespace {

template <typename T>
void check_mix(const SvfSlots& slots, std::span<const std::span<const T>> experts,
               size_t alpha_size, bool per_slot, size_t z_size) {
  const size_t k = experts.size();
  if (alpha_size != (per_slot ? k * size_t(slots.n_slots()) : k)) {
    fail("mix: {} alpha values for {} experts ({})", alpha_size, k,
         per_slot ? "per expert and slot" : "per expert");
  }
  for (const auto& e : experts) {
    if (int64_t(e.size()) != slots.total_rank) {
      fail("mix: an expert has {} values, the SVF slots need {}", e.size(), slots.total_rank);
    }
  }
  if (int64_t(z_size) != slots.total_rank) fail("mix: output of {} values", z_size);
}

}  // namespace

template <typename T>
void mix(const SvfSlots& slots, std::span<const std::span<const T>> experts,
         std::span<const T> alpha, bool per_slot, std::span<T> z) {
  check_mix(slots, experts, alpha.size(), per_slot, z.size());
  std::fill(z.begin(), z.end(), T(0));
  for (size_t k = 0; k < experts.size(); ++k) {
    for (int s = 0; s < slots.n_slots(); ++s) {
      const T a = alpha[per_slot ? k * size_t(slots.n_slots()) + size_t(s) : k];
      const int64_t off = slots.offset[size_t(s)];
      for (int r = 0; r < slots.factors[size_t(s)].rank; ++r) {
        z[size_t(off + r)] += a * experts[k][size_t(off + r)];
      }
    }
  }
}

template <typename T>
void mix_backward(const SvfSlots& slots, std::span<const std::span<const T>> experts,
                  std::span<const T> dz, bool per_slot, std::span<T> dalpha) {
  check_mix(slots, experts, dalpha.size(), per_slot, dz.size());
  std::fill(dalpha.begin(), dalpha.end(), T(0));
  for (size_t k = 0; k < experts.size(); ++k) {
    for (int s = 0; s < slots.n_slots(); ++s) {
      const int64_t off = slots.offset[size_t(s)];
      double sum = 0.0;
      for (int r = 0; r < slots.factors[size_t(s)].rank; ++r) {
        sum += double(dz[size_t(off + r)]) * double(experts[k][size_t(off + r)]);
      }
      dalpha[per_slot ? k * size_t(slots.n_slots()) + size_t(s) : k] += T(sum);
    }
  }
}

#define T2_TRAIN_FORWARD(T)                                                                  \
  template class TrainForwardT<T>;                                                           \
  template double token_logprob<T>(const T*, int64_t, int32_t);                              \
  template void add_logprob_grad<T>(const T*, int64_t, int32_t, double, T*);                 \
  template double add_kl_grad<T>(const T*, const T*, int64_t, double, T*);                   \
  template void log_softmax<T>(const T*, int64_t, T*);                                       \
  template void sigmoid_backward<T>(std::span<const T>, std::span<const T>, std::span<T>);   \
  template void mix<T>(const SvfSlots&, std::span<const std::span<const T>>,                 \
                       std::span<const T>, bool, std::span<T>);                              \
  template void mix_backward<T>(const SvfSlots&, std::span<const std::span<const T>>,        \
                                std::span<const T>, bool, std::span<T>);
T2_TRAIN_FORWARD(float)
T2_TRAIN_FORWARD(double)
#undef T2_TRAIN_FORWARD

}  // namespace t2::backbone
