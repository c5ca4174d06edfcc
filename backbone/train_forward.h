// Training pass of the Llama backbone with SVF experts: a teacher-forced forward
// over full sequences that keeps one batch's activations, and the backward pass
// from dLoss/dlogits to dLoss/dz of every sequence. Weights are frozen; only z
// (and activations) get gradients. Every adapted matrix runs factored, with the
// z of the row's own sequence:  y = U (s * z * (V^T x)) * sum(s) / sum(s * z).
//
//   TrainForward tf(model, SvfSlots::from(*svf, model.config().n_layer));
//   tf.run(batch);                          // logits() [rows x vocab], token_logprobs()
//   add_logprob_grad(...) / add_kl_grad(...) into dlogits [rows x vocab]
//   const auto& dz = tf.backward(dlogits);  // [sequences x total_rank]
//   sigmoid_backward(p, dz_of_one_sequence, dp);  // to the expert's raw parameters
//
// Memory: one batch's activations, activation_bytes_per_row() per token (about
// 0.8 MB for SmolLM2-135M with its MLP adapted); the caller bounds it by the batch
// size, and sequences are independent, so a large batch can run as several calls
// whose dz are summed.
// LIMITATION: every layer's activations are kept; recomputing each layer from its
// input during backward (checkpointing) would cut memory ~10x for ~50% more compute.
#pragma once

#include <cstdint>
#include <memory>
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
// With at least as many sequences as OpenMP threads, the batch is split into one
// group per thread (balanced by tokens) and each group runs the whole network on
// its own thread with serial GEMMs: no synchronisation inside a step. Otherwise
// one group runs with threaded GEMMs and OpenMP loops.
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
  struct Weights;  // the model's weights and factors as T, shared read-only by passes
  class Pass;      // a group of sequences: its rows, activations and workspace

  std::unique_ptr<Weights> weights_;
  std::vector<std::unique_ptr<Pass>> passes_;
  std::vector<std::vector<int>> groups_;  // sequences of each pass in the last run
  std::vector<T> rope_;                   // cos/sin table (backward.h)
  std::vector<int64_t> seq_out0_;         // [seqs + 1]: first logit row of each sequence
  std::vector<T> logits_, logprob_, dz_;
  int64_t n_out_ = 0;
  bool kept_ = false;
};

using TrainSequence = TrainSequenceT<float>;
using TrainForward = TrainForwardT<float>;

// ---- losses on logit rows (each [vocab]) --------------------------------------------

// Rows are f32 or f64; sums run in double. drow must not alias logits.

// log softmax(logits)[target].
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
// dalpha (same shape as alpha) from dz; the gradient to expert k is alpha_k dz.
template <typename T>
void mix(const SvfSlots& slots, std::span<const std::span<const T>> experts,
         std::span<const T> alpha, bool per_slot, std::span<T> z);
template <typename T>
void mix_backward(const SvfSlots& slots, std::span<const std::span<const T>> experts,
                  std::span<const T> dz, bool per_slot, std::span<T> dalpha);

}  // namespace t2::backbone
