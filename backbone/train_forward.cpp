// The training pass (train_forward.h). Shapes: N = input rows of a pass (each
// sequence without its last token, which is only a target), D = n_embd, R = rank of
// a slot, rows = logit rows (response tokens). Linear layers are one GEMM over all N
// rows of a pass; attention is one work item per (sequence, kv head).
#include "backbone/train_forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "backbone/backward.h"
#include "t2/error.h"

namespace t2::backbone {

using train::gemm;

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

// ---- weights, as T --------------------------------------------------------------------

template <typename T>
struct TrainForwardT<T>::Weights {
  struct Slot {
    int out = 0, in = 0, rank = 0;
    const T* u = nullptr;   // [out x R]
    const T* s = nullptr;   // [R]
    const T* vt = nullptr;  // [R x in]
    double s_sum = 0.0;     // summed in the order sum(s z) is
  };

  const Model& model;
  const ModelConfig& c;
  SvfSlots slots;
  std::vector<std::vector<T>> owned;  // converted copies when T is not float
  std::vector<Slot> slot;
  const T* embd = nullptr;
  const T* out_norm = nullptr;
  const T* out_w = nullptr;
  std::vector<const T*> norm;    // [n_layer * 2]: attn, ffn
  std::vector<const T*> matrix;  // [n_layer * kMatrixKinds]
  int64_t earliest_stage = std::numeric_limits<int64_t>::max();  // 4 stages per layer
  int max_rank = 0;

  Weights(const Model& m, const SvfSlots& sl) : model(m), c(m.config()), slots(sl) {}

  const T* adopt(const float* src, int64_t n) {
    if constexpr (std::is_same_v<T, float>) {
      return src;
    } else {
      owned.emplace_back(src, src + n);
      return owned.back().data();
    }
  }
  const Linear& linear(int l, MatrixKind kind) const { return model.layer(l).matrix(kind); }
  const T* w(int l, MatrixKind kind) const {
    return matrix[size_t(l) * kMatrixKinds + size_t(kind)];
  }
};

template <typename T>
TrainForwardT<T>::TrainForwardT(const Model& model, const SvfSlots& slots)
    : weights_(std::make_unique<Weights>(model, slots)) {
  Weights& w = *weights_;
  const ModelConfig& c = model.config();
  if (slots.n_layer != c.n_layer) {
    fail("train forward: SVF slots cover {} layers, the model has {}", slots.n_layer, c.n_layer);
  }
  w.embd = w.adopt(model.token_embedding().data(), int64_t(c.n_vocab) * c.n_embd);
  w.out_norm = w.adopt(model.output_norm().data(), c.n_embd);
  w.out_w = model.tied_output() ? w.embd : w.adopt(model.output().w, model.output().size());
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = model.layer(l);
    w.norm.push_back(w.adopt(L.attn_norm.data(), c.n_embd));
    w.norm.push_back(w.adopt(L.ffn_norm.data(), c.n_embd));
    for (int k = 0; k < kMatrixKinds; ++k) {
      const Linear& lin = L.matrix(MatrixKind(k));
      w.matrix.push_back(w.adopt(lin.w, lin.size()));
    }
  }
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
      w.earliest_stage = std::min(w.earliest_stage, int64_t(4 * l + stage_of(MatrixKind(k))));
    }
  }
  for (const SvdFactors& f : slots.factors) {
    typename Weights::Slot s;
    s.out = f.out;
    s.in = f.in;
    s.rank = f.rank;
    s.u = w.adopt(f.u, int64_t(f.out) * f.rank);
    s.s = w.adopt(f.s, f.rank);
    s.vt = w.adopt(f.vt, int64_t(f.rank) * f.in);
    for (int r = 0; r < f.rank; ++r) s.s_sum += double(f.s[r]);
    w.slot.push_back(s);
    w.max_rank = std::max(w.max_rank, f.rank);
  }
}

template <typename T>
TrainForwardT<T>::~TrainForwardT() = default;

template <typename T>
int64_t TrainForwardT<T>::activation_bytes_per_row() const {
  const ModelConfig& c = weights_->c;
  const int64_t per_layer = 2 * c.n_embd + c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff;
  int64_t ranks = 0;
  for (const auto& s : weights_->slot) ranks += s.rank;
  return int64_t(sizeof(T)) * (per_layer * c.n_layer + c.n_embd + ranks);
}

// ---- one pass: a group of sequences ----------------------------------------------------

template <typename T>
class TrainForwardT<T>::Pass {
 public:
  explicit Pass(const Weights& w) : w_(w), c_(w.c) {}

  // Runs sequences `seqs` of `batch`; writes their logit rows and log-probs at the
  // rows `seq_out0` gives them.
  void forward(std::span<const TrainSequenceT<T>> batch, std::span<const int> seqs, bool keep,
               const T* rope, const std::vector<int64_t>& seq_out0, T* logits, T* logprob);
  // Reads the pass's rows of dlogits; writes dz [batch seqs x K] of its sequences.
  void backward(const T* dlogits, const std::vector<int64_t>& seq_out0, T* dz);

 private:
  struct Acts {                     // one layer, kept for backward, [N x width] each
    std::vector<T> q, k, v;         // q and k after RoPE
    std::vector<T> gate, up;        // before SwiGLU
    std::vector<T> a[kMatrixKinds]; // V^T x of the adapted matrices [N x R]
  };

  T* hbuf(int i);  // 2l: input of layer l, 2l+1: after its attention, 2L: final
  void forward_layer(int l, Acts& act);
  void backward_layer(int l, Acts& act, T* dz);
  void attention(const Acts& act, bool backward);
  void linear_forward(int l, MatrixKind kind, const T* x, T* y, Acts& act);
  void linear_backward(int l, MatrixKind kind, const T* dy, T* dx, bool accumulate,
                       bool need_dx, Acts& act, T* dz);
  T* thread_scratch() {
    return &scratch_[size_t(omp_get_thread_num()) * size_t(scratch_per_thread_)];
  }

  const Weights& w_;
  const ModelConfig& c_;
  const T* rope_ = nullptr;

  // Sequences of the last run: global ids and local row layout.
  std::vector<int> seqs_;
  std::vector<int64_t> seq_row0_;  // [seqs + 1]: input rows of each sequence
  std::vector<int64_t> row_pos_;   // [N]
  std::vector<int32_t> row_seq_;   // [N]: local sequence index
  std::vector<int64_t> out_row0_;  // [seqs + 1]: local logit rows of each sequence
  std::vector<int64_t> out_src_;   // [local logit rows]: input row of each
  std::vector<uint8_t> has_z_;     // per sequence
  std::vector<T> z_;               // [seqs x K], 1 for base sequences
  std::vector<T> scale_;           // [seqs x K]: c s z, c = sum(s) / sum(s z)
  std::vector<double> c_scale_, sz_sum_;  // [seqs x n_slots]
  bool factored_ = false, kept_ = false;
  int64_t n_rows_ = 0, n_out_ = 0, scratch_per_thread_ = 0;

  std::vector<T> h_;  // [(2 n_layer + 1) x N x D] when kept, else [2 x N x D]
  std::vector<Acts> acts_;
  std::vector<double> g_;  // [seqs x max rank]: sum over rows of a * b
  std::vector<T> xn_, att_, act_, tmp_, rank_tmp_, scratch_;
  std::vector<T> dh_, dxn_, datt_, dq_, dk_, dv_, dff1_, dff2_;
};

template <typename T>
T* TrainForwardT<T>::Pass::hbuf(int i) {
  const int64_t index = kept_ ? i : i % 2;  // without backward only the current pair
  return h_.data() + index * n_rows_ * c_.n_embd;
}

template <typename T>
void TrainForwardT<T>::Pass::forward(std::span<const TrainSequenceT<T>> batch,
                                     std::span<const int> seqs, bool keep, const T* rope,
                                     const std::vector<int64_t>& seq_out0, T* logits,
                                     T* logprob) {
  const int64_t D = c_.n_embd, V = c_.n_vocab, K = w_.slots.total_rank;
  const int64_t n_seq = int64_t(seqs.size());
  const int n_slots = w_.slots.n_slots();
  seqs_.assign(seqs.begin(), seqs.end());
  rope_ = rope;
  kept_ = keep;

  // Rows: input positions 0..n-2 of each sequence; logit rows n_prompt-1..n-2.
  seq_row0_.assign(1, 0);
  out_row0_.assign(1, 0);
  row_pos_.clear();
  row_seq_.clear();
  out_src_.clear();
  int64_t max_len = 0;
  for (int64_t j = 0; j < n_seq; ++j) {
    const TrainSequenceT<T>& s = batch[size_t(seqs_[size_t(j)])];
    const int64_t n = int64_t(s.tokens.size()), row0 = seq_row0_.back();
    for (int64_t i = 0; i + 1 < n; ++i) {
      row_pos_.push_back(i);
      row_seq_.push_back(int32_t(j));
    }
    for (int64_t i = s.n_prompt - 1; i + 1 < n; ++i) out_src_.push_back(row0 + i);
    seq_row0_.push_back(row0 + n - 1);
    out_row0_.push_back(int64_t(out_src_.size()));
    max_len = std::max(max_len, n - 1);
  }
  n_rows_ = seq_row0_.back();
  n_out_ = int64_t(out_src_.size());
  const int64_t N = n_rows_;

  // Per sequence and slot: z (1 for base sequences) and the row scale c s z. run()
  // has checked that sum(s z) > 0.
  has_z_.assign(size_t(n_seq), 0);
  factored_ = false;
  for (int64_t j = 0; j < n_seq; ++j) {
    has_z_[size_t(j)] = !batch[size_t(seqs_[size_t(j)])].z.empty() && K > 0;
    factored_ = factored_ || has_z_[size_t(j)];
  }
  z_.assign(size_t(n_seq * K), T(1));
  scale_.assign(size_t(n_seq * K), T(0));
  c_scale_.assign(size_t(n_seq * n_slots), 1.0);
  sz_sum_.assign(size_t(n_seq * n_slots), 0.0);
  for (int64_t j = 0; j < n_seq; ++j) {
    const auto& z_in = batch[size_t(seqs_[size_t(j)])].z;
    if (has_z_[size_t(j)]) std::copy(z_in.begin(), z_in.end(), &z_[size_t(j * K)]);
    for (int i = 0; i < n_slots; ++i) {
      const auto& sw = w_.slot[size_t(i)];
      const int64_t off = j * K + w_.slots.offset[size_t(i)];
      double sz = 0.0;
      for (int r = 0; r < sw.rank; ++r) sz += double(sw.s[r]) * double(z_[size_t(off + r)]);
      const double cs = has_z_[size_t(j)] ? sw.s_sum / sz : 1.0;
      c_scale_[size_t(j * n_slots + i)] = cs;
      sz_sum_[size_t(j * n_slots + i)] = sz;
      for (int r = 0; r < sw.rank; ++r) {
        scale_[size_t(off + r)] = T(cs * double(sw.s[r]) * double(z_[size_t(off + r)]));
      }
    }
  }

  // Buffers. Activations of every layer only when backward will follow.
  const int64_t ff = c_.n_ff, qd = c_.q_dim(), kvd = c_.kv_dim(), R = w_.max_rank;
  grow(h_, (kept_ ? 2 * c_.n_layer + 1 : 2) * N * D);
  grow(xn_, N * D);
  grow(att_, N * qd);
  grow(act_, N * ff);
  grow(tmp_, N * std::max<int64_t>(D, R));
  grow(rank_tmp_, N * R);
  scratch_per_thread_ = train::attention_scratch(max_len);
  grow(scratch_, int64_t(omp_get_max_threads()) * scratch_per_thread_);
  acts_.resize(kept_ ? size_t(c_.n_layer) : std::max<size_t>(acts_.size(), 1));
  for (size_t l = 0; l < (kept_ ? acts_.size() : 1); ++l) {
    Acts& a = acts_[l];
    grow(a.q, N * qd);
    grow(a.k, N * kvd);
    grow(a.v, N * kvd);
    grow(a.gate, N * ff);
    grow(a.up, N * ff);
    for (int k = 0; k < kMatrixKinds; ++k) {
      const int i = w_.slots.slot(int(l), MatrixKind(k));
      if (kept_ && factored_ && i >= 0) grow(a.a[k], N * w_.slot[size_t(i)].rank);
    }
  }

  // Embedding lookup, the layers, then the final norm on the logit rows only.
  T* h0 = hbuf(0);
  for (int64_t i = 0; i < N; ++i) {
    const TrainSequenceT<T>& s = batch[size_t(seqs_[size_t(row_seq_[size_t(i)])])];
    std::memcpy(h0 + i * D, w_.embd + int64_t(s.tokens[size_t(row_pos_[size_t(i)])]) * D,
                size_t(D) * sizeof(T));
  }
  for (int l = 0; l < c_.n_layer; ++l) forward_layer(l, acts_[kept_ ? size_t(l) : 0]);
  const T* hf = hbuf(2 * c_.n_layer);
  for (int64_t r = 0; r < n_out_; ++r) {
    std::memcpy(&xn_[size_t(r * D)], hf + out_src_[size_t(r)] * D, size_t(D) * sizeof(T));
  }
  train::rmsnorm_forward(xn_.data(), w_.out_norm, n_out_, D, c_.rms_eps, xn_.data());

  // Output head, per sequence straight into its rows of the batch's logits.
  for (int64_t j = 0; j < n_seq; ++j) {
    const int s = seqs_[size_t(j)];
    const int64_t o0 = out_row0_[size_t(j)], rows = out_row0_[size_t(j + 1)] - o0;
    T* out = logits + seq_out0[size_t(s)] * V;
    gemm<T>(false, true, rows, V, D, T(1), &xn_[size_t(o0 * D)], D, w_.out_w, D, T(0), out, V);
    const auto& tokens = batch[size_t(s)].tokens;
    const int64_t first = batch[size_t(s)].n_prompt;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      logprob[seq_out0[size_t(s)] + r] =
          T(token_logprob(out + r * V, V, tokens[size_t(first + r)]));
    }
  }
}

template <typename T>
void TrainForwardT<T>::Pass::forward_layer(int l, Acts& act) {
  const int64_t N = n_rows_, D = c_.n_embd, qd = c_.q_dim(), kvd = c_.kv_dim();
  T* hin = hbuf(2 * l);
  T* hmid = hbuf(2 * l + 1);
  T* hout = hbuf(2 * l + 2);

  // Attention block: xn = norm(hin); q, k, v; RoPE; attention; hmid = hin + o(att).
  train::rmsnorm_forward(hin, w_.norm[size_t(2 * l)], N, D, c_.rms_eps, xn_.data());
  linear_forward(l, MatrixKind::kQ, xn_.data(), act.q.data(), act);
  linear_forward(l, MatrixKind::kK, xn_.data(), act.k.data(), act);
  linear_forward(l, MatrixKind::kV, xn_.data(), act.v.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t pos = row_pos_[size_t(i)];
    train::rope_rotate(&act.q[size_t(i * qd)], c_.n_head, c_.head_dim, c_.n_rot, rope_, pos,
                       false);
    train::rope_rotate(&act.k[size_t(i * kvd)], c_.n_head_kv, c_.head_dim, c_.n_rot, rope_,
                       pos, false);
  }
  attention(act, false);
  linear_forward(l, MatrixKind::kO, att_.data(), tmp_.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * D; ++i) hmid[i] = hin[i] + tmp_[size_t(i)];

  // MLP block: hout = hmid + down(silu(gate(xn)) * up(xn)), xn = norm(hmid).
  train::rmsnorm_forward(hmid, w_.norm[size_t(2 * l + 1)], N, D, c_.rms_eps, xn_.data());
  linear_forward(l, MatrixKind::kGate, xn_.data(), act.gate.data(), act);
  linear_forward(l, MatrixKind::kUp, xn_.data(), act.up.data(), act);
  train::swiglu_forward(act.gate.data(), act.up.data(), N * c_.n_ff, act_.data());
  linear_forward(l, MatrixKind::kDown, act_.data(), tmp_.data(), act);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * D; ++i) hout[i] = hmid[i] + tmp_[size_t(i)];
}

// One work item per (sequence, kv head): forward writes att_; backward reads datt_
// and writes dq_, dk_, dv_ (the group's query heads summed into its kv head).
template <typename T>
void TrainForwardT<T>::Pass::attention(const Acts& act, bool backward) {
  const int64_t qd = c_.q_dim(), kvd = c_.kv_dim();
  const train::AttentionShape shape{c_.n_head, c_.n_head_kv, c_.head_dim, qd, kvd,
                                    1.0 / std::sqrt(double(c_.head_dim))};
  const int64_t items = (int64_t(seq_row0_.size()) - 1) * c_.n_head_kv;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t s = item / c_.n_head_kv, r0 = seq_row0_[size_t(s)];
    const int g = int(item % c_.n_head_kv);
    const int64_t n = seq_row0_[size_t(s + 1)] - r0;
    const T* q = &act.q[size_t(r0 * qd)];
    const T* k = &act.k[size_t(r0 * kvd)];
    const T* v = &act.v[size_t(r0 * kvd)];
    if (!backward) {
      train::attention_forward(shape, g, n, q, k, v, &att_[size_t(r0 * qd)], thread_scratch());
    } else {
      train::attention_backward(shape, g, n, q, k, v, &datt_[size_t(r0 * qd)],
                                &dq_[size_t(r0 * qd)], &dk_[size_t(r0 * kvd)],
                                &dv_[size_t(r0 * kvd)], thread_scratch());
    }
  }
}

// y[N x out] = x W^T, or factored: a = x V (kept), y = (a * scale_row) U^T.
template <typename T>
void TrainForwardT<T>::Pass::linear_forward(int l, MatrixKind kind, const T* x, T* y,
                                            Acts& act) {
  const int64_t N = n_rows_;
  const int slot = w_.slots.slot(l, kind);
  if (slot < 0 || !factored_) {
    const Linear& lin = w_.linear(l, kind);
    gemm<T>(false, true, N, lin.out, lin.in, T(1), x, lin.in, w_.w(l, kind), lin.in, T(0), y,
            lin.out);
    return;
  }
  const auto& sw = w_.slot[size_t(slot)];
  const int64_t R = sw.rank, off = w_.slots.offset[size_t(slot)], K = w_.slots.total_rank;
  T* a = kept_ ? act.a[int(kind)].data() : rank_tmp_.data();
  gemm<T>(false, true, N, R, sw.in, T(1), x, sw.in, sw.vt, sw.in, T(0), a, R);
  T* as = kept_ ? rank_tmp_.data() : a;  // scaled copy, or in place when nothing is kept
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T* sc = &scale_[size_t(row_seq_[size_t(i)] * K + off)];
    for (int64_t r = 0; r < R; ++r) as[i * R + r] = a[i * R + r] * sc[r];
  }
  gemm<T>(false, true, N, sw.out, R, T(1), as, R, sw.u, R, T(0), y, sw.out);
}

// ---- backward of a pass ----------------------------------------------------------------

template <typename T>
void TrainForwardT<T>::Pass::backward(const T* dlogits, const std::vector<int64_t>& seq_out0,
                                      T* dz) {
  const int64_t D = c_.n_embd, V = c_.n_vocab, N = n_rows_;
  if (!factored_) return;  // only base sequences: nothing depends on z

  g_.assign(seqs_.size() * size_t(w_.max_rank), 0.0);
  grow(dh_, N * D);
  grow(dxn_, N * D);
  grow(datt_, N * c_.q_dim());
  grow(dq_, N * c_.q_dim());
  grow(dk_, N * c_.kv_dim());
  grow(dv_, N * c_.kv_dim());
  grow(dff1_, N * c_.n_ff);
  grow(dff2_, N * c_.n_ff);

  // Head: dxf = dlogits W per sequence; through the final norm of the logit rows.
  for (size_t j = 0; j < seqs_.size(); ++j) {
    const int64_t o0 = out_row0_[j], rows = out_row0_[j + 1] - o0;
    gemm<T>(false, false, rows, D, V, T(1), dlogits + seq_out0[size_t(seqs_[j])] * V, V,
            w_.out_w, D, T(0), &tmp_[size_t(o0 * D)], D);
  }
  const T* hf = hbuf(2 * c_.n_layer);
  for (int64_t r = 0; r < n_out_; ++r) {
    std::memcpy(&xn_[size_t(r * D)], hf + out_src_[size_t(r)] * D, size_t(D) * sizeof(T));
  }
  train::rmsnorm_backward(xn_.data(), w_.out_norm, tmp_.data(), n_out_, D, c_.rms_eps,
                          dxn_.data(), false);
  std::fill(dh_.begin(), dh_.begin() + N * D, T(0));
  for (int64_t r = 0; r < n_out_; ++r) {
    T* dst = &dh_[size_t(out_src_[size_t(r)] * D)];
    const T* src = &dxn_[size_t(r * D)];
    for (int64_t i = 0; i < D; ++i) dst[i] += src[i];
  }

  for (int l = c_.n_layer - 1; l >= 0 && 4 * int64_t(l) + 3 >= w_.earliest_stage; --l) {
    backward_layer(l, acts_[size_t(l)], dz);
  }
}

// dh_ holds dL/d(output of layer l) on entry and dL/d(its input) on exit; stops
// early at the first adapted matrix of the network (nothing below needs a gradient).
template <typename T>
void TrainForwardT<T>::Pass::backward_layer(int l, Acts& act, T* dz) {
  const int64_t N = n_rows_, D = c_.n_embd, qd = c_.q_dim(), kvd = c_.kv_dim();
  const int64_t stage0 = 4 * int64_t(l);
  auto below = [&](int stage) { return w_.earliest_stage < stage0 + stage; };

  // MLP block. dff1 = d act; then d gate (dff2) and d up (dff1, in place).
  linear_backward(l, MatrixKind::kDown, dh_.data(), dff1_.data(), false, below(3), act, dz);
  if (!below(3)) return;
  train::swiglu_backward(act.gate.data(), act.up.data(), dff1_.data(), N * c_.n_ff,
                         dff2_.data(), dff1_.data());
  linear_backward(l, MatrixKind::kGate, dff2_.data(), dxn_.data(), false, below(2), act, dz);
  linear_backward(l, MatrixKind::kUp, dff1_.data(), dxn_.data(), true, below(2), act, dz);
  if (!below(2)) return;
  train::rmsnorm_backward(hbuf(2 * l + 1), w_.norm[size_t(2 * l + 1)], dxn_.data(), N, D,
                          c_.rms_eps, dh_.data(), true);

  // Attention block; RoPE backward is the rotation by -theta.
  linear_backward(l, MatrixKind::kO, dh_.data(), datt_.data(), false, below(1), act, dz);
  if (!below(1)) return;
  attention(act, true);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t pos = row_pos_[size_t(i)];
    train::rope_rotate(&dq_[size_t(i * qd)], c_.n_head, c_.head_dim, c_.n_rot, rope_, pos,
                       true);
    train::rope_rotate(&dk_[size_t(i * kvd)], c_.n_head_kv, c_.head_dim, c_.n_rot, rope_, pos,
                       true);
  }
  linear_backward(l, MatrixKind::kQ, dq_.data(), dxn_.data(), false, below(0), act, dz);
  linear_backward(l, MatrixKind::kK, dk_.data(), dxn_.data(), true, below(0), act, dz);
  linear_backward(l, MatrixKind::kV, dv_.data(), dxn_.data(), true, below(0), act, dz);
  if (!below(0)) return;
  train::rmsnorm_backward(hbuf(2 * l), w_.norm[size_t(2 * l)], dxn_.data(), N, D, c_.rms_eps,
                          dh_.data(), true);
}

// dx = dy W, or factored: b = dy U; per sequence g = sum over rows of a * b, and
//   dz_i = c s_i (g_i - sum_j s_j z_j g_j / sum(s z))   (the second term is the rescale);
// dx = (b * scale_row) V^T.
template <typename T>
void TrainForwardT<T>::Pass::linear_backward(int l, MatrixKind kind, const T* dy, T* dx,
                                             bool accumulate, bool need_dx, Acts& act, T* dz) {
  const int64_t N = n_rows_;
  const int slot = w_.slots.slot(l, kind);
  if (slot < 0) {
    if (!need_dx) return;
    const Linear& lin = w_.linear(l, kind);
    gemm<T>(false, false, N, lin.in, lin.out, T(1), dy, lin.out, w_.w(l, kind), lin.in,
            T(accumulate), dx, lin.in);
    return;
  }
  const auto& sw = w_.slot[size_t(slot)];
  const int64_t R = sw.rank, off = w_.slots.offset[size_t(slot)], K = w_.slots.total_rank;
  const int n_slots = w_.slots.n_slots();
  T* b = rank_tmp_.data();
  gemm<T>(false, false, N, R, sw.out, T(1), dy, sw.out, sw.u, R, T(0), b, R);
  const T* a = act.a[int(kind)].data();

  const int64_t n_seq = int64_t(seqs_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n_seq; ++j) {
    const int64_t r0 = seq_row0_[size_t(j)], r1 = seq_row0_[size_t(j + 1)];
    if (has_z_[size_t(j)]) {
      double* g = &g_[size_t(j) * size_t(R)];
      std::fill(g, g + R, 0.0);
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t r = 0; r < R; ++r) g[r] += double(a[i * R + r]) * double(b[i * R + r]);
      }
      const T* z = &z_[size_t(j * K + off)];
      double q = 0.0;
      for (int64_t r = 0; r < R; ++r) q += double(sw.s[r]) * double(z[r]) * g[r];
      const double cs = c_scale_[size_t(j * n_slots + slot)];
      const double mean = q / sz_sum_[size_t(j * n_slots + slot)];
      T* out = dz + int64_t(seqs_[size_t(j)]) * K + off;
      for (int64_t r = 0; r < R; ++r) out[r] = T(cs * double(sw.s[r]) * (g[r] - mean));
    }
    if (need_dx) {
      const T* sc = &scale_[size_t(j * K + off)];
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t r = 0; r < R; ++r) b[i * R + r] *= sc[r];
      }
    }
  }
  if (need_dx) {
    gemm<T>(false, false, N, sw.in, R, T(1), b, R, sw.vt, sw.in, T(accumulate), dx, sw.in);
  }
}

// ---- the batch: validation, groups, passes -----------------------------------------------

template <typename T>
void TrainForwardT<T>::run(std::span<const TrainSequenceT<T>> batch, bool for_backward) {
  const Weights& w = *weights_;
  const ModelConfig& c = w.c;
  const int64_t V = c.n_vocab, K = w.slots.total_rank, n_seq = int64_t(batch.size());

  // Validate everything first: nothing may throw inside the parallel passes.
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
    for (int i = 0; i < w.slots.n_slots() && !q.z.empty(); ++i) {
      double sz = 0.0;
      for (int r = 0; r < w.slot[size_t(i)].rank; ++r) {
        sz += double(w.slot[size_t(i)].s[r]) * double(q.z[size_t(w.slots.offset[size_t(i)] + r)]);
      }
      if (!(sz > 0.0)) {
        fail("train forward: sequence {} slot {}: sum(s * z) = {}; z must be positive", s, i, sz);
      }
    }
    max_len = std::max(max_len, n - 1);
  }

  seq_out0_.assign(1, 0);
  for (const auto& s : batch) {
    seq_out0_.push_back(seq_out0_.back() + int64_t(s.tokens.size()) - s.n_prompt);
  }
  n_out_ = seq_out0_.back();
  logits_.resize(size_t(n_out_ * V));
  logprob_.resize(size_t(n_out_));
  if (int64_t(rope_.size()) < (max_len + 1) * c.n_rot) {
    rope_ = train::rope_table<T>(int(max_len + 1), c.n_rot, c.rope_base);
  }

  // Groups: one per thread when every thread gets a sequence (longest first onto the
  // least loaded group), else a single group that uses the threads inside each op.
  const int threads = omp_get_max_threads();
  const int n_groups = n_seq >= threads ? threads : 1;
  groups_.assign(size_t(n_groups), {});
  std::vector<int> order(static_cast<size_t>(n_seq));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return batch[size_t(a)].tokens.size() > batch[size_t(b)].tokens.size();
  });
  std::vector<int64_t> load(static_cast<size_t>(n_groups), 0);
  for (int s : order) {
    const size_t g = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    groups_[g].push_back(s);
    load[g] += int64_t(batch[size_t(s)].tokens.size());
  }
  for (auto& g : groups_) std::sort(g.begin(), g.end());
  while (int(passes_.size()) < n_groups) passes_.push_back(std::make_unique<Pass>(w));

  kept_ = for_backward;
  if (n_groups == 1) {
    passes_[0]->forward(batch, groups_[0], kept_, rope_.data(), seq_out0_, logits_.data(),
                        logprob_.data());
  } else {
#pragma omp parallel for num_threads(n_groups) schedule(static, 1)
    for (int g = 0; g < n_groups; ++g) {
      passes_[size_t(g)]->forward(batch, groups_[size_t(g)], kept_, rope_.data(), seq_out0_,
                                  logits_.data(), logprob_.data());
    }
  }
}

template <typename T>
const std::vector<T>& TrainForwardT<T>::backward(std::span<const T> dlogits) {
  const int64_t V = weights_->c.n_vocab;
  const int64_t n_seq = int64_t(seq_out0_.size()) - 1;
  if (!kept_) fail("train forward: backward needs run(batch, true) first");
  if (int64_t(dlogits.size()) != n_out_ * V) {
    fail("train forward: dlogits has {} values, expected {} rows x {} vocab", dlogits.size(),
         n_out_, V);
  }
  dz_.assign(size_t(n_seq * weights_->slots.total_rank), T(0));
  const int n_groups = int(groups_.size());
  if (n_groups == 1) {
    passes_[0]->backward(dlogits.data(), seq_out0_, dz_.data());
  } else {
#pragma omp parallel for num_threads(n_groups) schedule(static, 1)
    for (int g = 0; g < n_groups; ++g) {
      passes_[size_t(g)]->backward(dlogits.data(), seq_out0_, dz_.data());
    }
  }
  return dz_;
}

// ---- losses ----------------------------------------------------------------------------

namespace {

// Terms in T (fast exp for f32), sums in double.
template <typename T>
double log_sum_exp(const T* x, int64_t n) {
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += double(train::exp_t(x[i] - mx));
  return double(mx) + std::log(sum);
}

}  // namespace

template <typename T>
double token_logprob(const T* logits, int64_t vocab, int32_t target) {
  return double(logits[target]) - log_sum_exp(logits, vocab);
}

template <typename T>
void add_logprob_grad(const T* logits, int64_t vocab, int32_t target, double coef, T* drow) {
  const T lse = T(log_sum_exp(logits, vocab)), c = T(coef);
#pragma omp simd
  for (int64_t v = 0; v < vocab; ++v) drow[v] -= c * train::exp_t(logits[v] - lse);
  drow[target] += c;
}

template <typename T>
double add_kl_grad(const T* logits, const T* ref_logprobs, int64_t vocab, double coef,
                   T* drow) {
  const T lse = T(log_sum_exp(logits, vocab)), c = T(coef);
  double kl = 0.0;
#pragma omp simd reduction(+ : kl)
  for (int64_t v = 0; v < vocab; ++v) {
    const T lp = logits[v] - lse, lr = ref_logprobs[v], pr = train::exp_t(lr);
    kl += double(pr) * double(lr - lp);
    drow[v] += c * (train::exp_t(lp) - pr);
  }
  return kl;
}

template <typename T>
void log_softmax(const T* logits, int64_t vocab, T* out) {
  const T lse = T(log_sum_exp(logits, vocab));
#pragma omp simd
  for (int64_t v = 0; v < vocab; ++v) out[v] = logits[v] - lse;
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
