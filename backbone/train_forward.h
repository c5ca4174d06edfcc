// Training pass of the Llama backbone with SVF experts: a teacher-forced forward
// over full sequences that keeps one batch's activations, and the backward pass
// from dLoss/dlogits to dLoss/dz of every sequence. Weights are frozen; only z
// (and activations) get gradients. Every adapted matrix runs factored, with the
// z of the row's own sequence:  y = U (s * z * (V^T x)) * sum(s) / sum(s * z).
//
//   TrainForward tf(model, SvfSlots::from(svf));
//   tf.run(batch);                          // logits() [rows x vocab], token_logprobs()
//   add_logprob_grad(...) / add_kl_grad(...) into dlogits [rows x vocab]
//   const auto& dz = tf.backward(dlogits);  // [sequences x total_rank]
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backbone/model.h"
#include "backbone/svf.h"

namespace t2::backbone {

// The adapted matrices as the training pass sees them: slot of each (layer, kind),
// each slot's factors and the offset of its z in a full vector (slot order).
struct SvfSlots {
  int n_layer = 0;
  std::vector<int> slot_of;          // [n_layer * kMatrixKinds], -1 = not adapted
  std::vector<SvdFactors> factors;   // per slot
  std::vector<int64_t> offset;       // per slot
  int64_t total_rank = 0;

  explicit SvfSlots(int layers = 0)
      : n_layer(layers), slot_of(size_t(layers) * kMatrixKinds, -1) {}
  int n_slots() const { return int(factors.size()); }
  int slot(int layer, MatrixKind kind) const {
    return slot_of[size_t(layer) * kMatrixKinds + size_t(kind)];
  }
  // Appends a slot (offsets follow the order of calls). Factors are borrowed.
  int add(int layer, MatrixKind kind, const SvdFactors& f) {
    slot_of[size_t(layer) * kMatrixKinds + size_t(kind)] = n_slots();
    factors.push_back(f);
    offset.push_back(total_rank);
    total_rank += f.rank;
    return n_slots() - 1;
  }
  // Every slot of `svf`, with its offsets. Inline: callers that never build
  // from an Svf do not link its implementation.
  static SvfSlots from(const Svf& svf, int n_layer) {
    SvfSlots slots(n_layer);
    for (int i = 0; i < svf.n_slots(); ++i) {
      slots.slot_of[size_t(svf.layer_of(i)) * kMatrixKinds + size_t(svf.kind_of(i))] = i;
      slots.factors.push_back(svf.factors(i));
      slots.offset.push_back(svf.offset(i));
    }
    slots.total_rank = svf.total_rank();
    return slots;
  }
};

// One sequence of a training batch: the response is tokens[n_prompt..] (at least
// one token), scored given everything before it.
template <typename T>
struct TrainSequenceT {
  std::span<const int32_t> tokens;
  int n_prompt = 0;       // >= 1
  std::span<const T> z;   // [total_rank] in slot order; empty = base weights
};

// T = float for training, double for finite-difference checks (weights converted).
template <typename T>
class TrainForwardT {
 public:
  TrainForwardT(const Model& model, const SvfSlots& slots);
  ~TrainForwardT();
  TrainForwardT(const TrainForwardT&) = delete;
  TrainForwardT& operator=(const TrainForwardT&) = delete;

  // Runs the batch. Logit row i of a sequence predicts its response token i.
  // `for_backward` = false keeps no activations (e.g. the reference model for a KL
  // term). Throws t2::Error on bad input, before any work.
  void run(std::span<const TrainSequenceT<T>> batch, bool for_backward = true);

  // Results of the last run: rows = response tokens of all sequences, in order.
  int64_t rows() const { return n_out_; }
  const std::vector<int64_t>& sequence_rows() const { return seq_out0_; }  // [seqs + 1]
  std::vector<T>& logits() { return logits_; }  // [rows x vocab]; may be overwritten
  const std::vector<T>& logits() const { return logits_; }
  const std::vector<T>& token_logprobs() const { return logprob_; }  // [rows]

  // dLoss/dz [sequences x total_rank] (zeros for base sequences) from dLoss/dlogits
  // [rows x vocab] (it may be logits() itself). Needs run(..., true) just before.
  const std::vector<T>& backward(std::span<const T> dlogits);

  // Bytes of activations kept for backward per token row (for sizing batches).
  int64_t activation_bytes_per_row() const;

 private:
  struct Slot;
  struct Acts;
  void forward_layer(int l, Acts& act);
  void backward_layer(int l, Acts& act);
  T* hbuf(int i);  // 2l: input of layer l, 2l+1: after its attention, 2L: final
  void linear_forward(int l, MatrixKind kind, const T* x, T* y, Acts& act);
  void linear_backward(int l, MatrixKind kind, const T* dy, T* dx, bool accumulate,
                       bool need_dx, Acts& act);
  const T* adopt(const float* src, int64_t n);

  const Model& model_;
  SvfSlots slots_;
  std::vector<std::vector<T>> owned_;  // converted weights when T is not float
  std::vector<Slot> slot_w_;
  const T* embd_ = nullptr;
  const T* out_norm_ = nullptr;
  const T* out_w_ = nullptr;
  std::vector<const T*> norm_w_;    // [n_layer * 2]: attn, ffn
  std::vector<const T*> matrix_w_;  // [n_layer * kMatrixKinds]
  int64_t earliest_stage_ = -1;     // first stage (4 per layer) with an adapted matrix

  // The batch of the last run.
  std::vector<int64_t> seq_row0_;  // [seqs + 1]: input rows of each sequence
  std::vector<int64_t> row_pos_;   // [n_rows]
  std::vector<int32_t> row_seq_;
  std::vector<int64_t> out_src_;   // [n_out]: input row of each logit row
  std::vector<int32_t> targets_;   // [n_out]
  std::vector<int64_t> seq_out0_;
  std::vector<uint8_t> has_z_;     // per sequence
  std::vector<T> z_;               // [seqs x total_rank], 1 for base sequences
  std::vector<T> scale_;           // [seqs x total_rank]: c s z, c = sum(s) / sum(s z)
  std::vector<double> c_, sz_sum_; // [seqs x n_slots]
  bool factored_ = false, kept_ = false;
  int64_t n_rows_ = 0, n_out_ = 0;

  std::vector<T> rope_;
  std::vector<T> h_;               // [(2 n_layer + 1) x n_rows x D]: layer inputs, mids, final
  std::vector<Acts> acts_;
  std::vector<T> logits_, logprob_, dz_;
  std::vector<double> g_;          // [seqs x max rank]: sum over rows of a * b
  std::vector<T> xn_, att_, act_, tmp_, rank_tmp_, scratch_;  // scratch_: per thread
  std::vector<T> dh_, dxn_, datt_, dq_, dk_, dv_, dff1_, dff2_;
};

using TrainSequence = TrainSequenceT<float>;
using TrainForward = TrainForwardT<float>;

// ---- losses on logit rows (each [vocab]) --------------------------------------------

// log softmax(logits)[target], accumulated in double.
template <typename T>
double token_logprob(const T* logits, int64_t vocab, int32_t target);
// drow += coef * d log softmax(logits)[target] / dlogits = coef * (onehot - softmax).
template <typename T>
void add_logprob_grad(const T* logits, int64_t vocab, int32_t target, double coef, T* drow);
// KL(ref || policy) = sum_v p_ref (log p_ref - log p), from the reference's log-softmax
// row; drow += coef * dKL/dlogits = coef * (softmax(logits) - p_ref). Returns the KL.
template <typename T>
double add_kl_grad(const T* logits, const T* ref_logprobs, int64_t vocab, double coef,
                   T* drow);
// out[vocab] = log softmax(logits).
template <typename T>
void log_softmax(const T* logits, int64_t vocab, T* out);

// ---- chain rules to expert parameters -------------------------------------------------

// z = sigmoid(p): dp = dz * z (1 - z).
template <typename T>
void sigmoid_backward(std::span<const T> p, std::span<const T> dz, std::span<T> dp);

// Mixture z = sum_k alpha[k, slot] z_k (alpha per expert when per_slot is false, else
// [K x n_slots]), then the usual rescale inside the layers. mix_backward returns
// dalpha (same shape as alpha) from dz.
template <typename T>
void mix(const SvfSlots& slots, std::span<const std::span<const T>> experts,
         std::span<const T> alpha, bool per_slot, std::span<T> z);
template <typename T>
void mix_backward(const SvfSlots& slots, std::span<const std::span<const T>> experts,
                  std::span<const T> dz, bool per_slot, std::span<T> dalpha);

}  // namespace t2::backbone
