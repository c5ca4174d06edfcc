// Loads a Llama GGUF into f32 weights, checking every tensor's shape against
// the config so that a wrong or partial file fails at load, not mid-forward.
#include "backbone/model.h"

#include <omp.h>

#include "t2/error.h"
#include "t2/log.h"

namespace t2::backbone {

const char* matrix_kind_name(MatrixKind kind) {
  switch (kind) {
    case MatrixKind::kQ: return "attn_q";
    case MatrixKind::kK: return "attn_k";
    case MatrixKind::kV: return "attn_v";
    case MatrixKind::kO: return "attn_output";
    case MatrixKind::kGate: return "ffn_gate";
    case MatrixKind::kUp: return "ffn_up";
    case MatrixKind::kDown: return "ffn_down";
  }
  return "unknown";
}

const Linear& LayerWeights::matrix(MatrixKind kind) const {
  switch (kind) {
    case MatrixKind::kQ: return q;
    case MatrixKind::kK: return k;
    case MatrixKind::kV: return v;
    case MatrixKind::kO: return o;
    case MatrixKind::kGate: return gate;
    case MatrixKind::kUp: return up;
    case MatrixKind::kDown: return down;
  }
  fail("unknown matrix kind");
}

namespace {

// A tensor to read, where to put it, and the shape it must have.
struct Load {
  const TensorInfo* tensor;
  std::vector<float>* dest;
  int64_t rows, cols;  // cols = dims[0]; rows = dims[1] (1 for vectors)
};

const TensorInfo& expect(const GgufFile& f, const std::string& name, int64_t rows,
                         int64_t cols) {
  const TensorInfo& t = f.tensor(name);
  const bool vector = rows == 1;
  const bool ok = vector ? (t.dims.size() == 1 && t.dims[0] == cols)
                         : (t.dims.size() == 2 && t.dims[0] == cols && t.dims[1] == rows);
  if (!ok) {
    std::string got;
    for (int64_t d : t.dims) got += (got.empty() ? "" : " x ") + std::to_string(d);
    const std::string want =
        vector ? std::to_string(cols) : std::to_string(cols) + " x " + std::to_string(rows);
    fail("{}: tensor '{}' has dims [{}], expected [{}] for this config", f.path(), name, got,
         want);
  }
  return t;
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& path) {
  auto log = t2::log::get("backbone");
  auto model = std::shared_ptr<Model>(new Model());
  model->gguf_ = std::make_unique<GgufFile>(path);
  const GgufFile& f = *model->gguf_;
  model->config_ = ModelConfig::from_gguf(f);
  model->tokenizer_ = Tokenizer::from_gguf(f);
  const ModelConfig& c = model->config_;
  if (model->tokenizer_.vocab_size() != c.n_vocab) {
    fail("{}: tokenizer has {} tokens but the model expects {}", path,
         model->tokenizer_.vocab_size(), c.n_vocab);
  }

  std::vector<Load> loads;
  auto add = [&](const std::string& name, std::vector<float>* dest, int64_t rows, int64_t cols) {
    loads.push_back({&expect(f, name, rows, cols), dest, rows, cols});
  };
  auto add_linear = [&](const std::string& name, Linear* lin, int64_t rows, int64_t cols) {
    lin->out = int(rows);
    lin->in = int(cols);
    add(name, &lin->storage, rows, cols);
    lin->source = loads.back().tensor;
  };

  add("token_embd.weight", &model->token_embd_, c.n_vocab, c.n_embd);
  add("output_norm.weight", &model->output_norm_, 1, c.n_embd);
  model->tied_output_ = f.find_tensor("output.weight") == nullptr;
  if (!model->tied_output_) add_linear("output.weight", &model->output_, c.n_vocab, c.n_embd);

  model->layers_.resize(size_t(c.n_layer));
  for (int i = 0; i < c.n_layer; ++i) {
    LayerWeights& L = model->layers_[size_t(i)];
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", &L.attn_norm, 1, c.n_embd);
    add(b + "ffn_norm.weight", &L.ffn_norm, 1, c.n_embd);
    add_linear(b + "attn_q.weight", &L.q, c.q_dim(), c.n_embd);
    add_linear(b + "attn_k.weight", &L.k, c.kv_dim(), c.n_embd);
    add_linear(b + "attn_v.weight", &L.v, c.kv_dim(), c.n_embd);
    add_linear(b + "attn_output.weight", &L.o, c.n_embd, c.q_dim());
    add_linear(b + "ffn_gate.weight", &L.gate, c.n_ff, c.n_embd);
    add_linear(b + "ffn_up.weight", &L.up, c.n_ff, c.n_embd);
    add_linear(b + "ffn_down.weight", &L.down, c.n_embd, c.n_ff);
  }

  // Dequantize every tensor once, in parallel over tensors.
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < loads.size(); ++i) {
    const Load& l = loads[i];
    l.dest->resize(size_t(l.rows * l.cols));
    dequantize(l.tensor->type, l.tensor->data, l.dest->data(), l.rows * l.cols);
  }

  if (model->tied_output_) {
    model->output_.out = c.n_vocab;
    model->output_.in = c.n_embd;
    model->output_.source = &f.tensor("token_embd.weight");
    model->output_.w = model->token_embd_.data();  // tied: borrow, no second copy
  } else {
    model->output_.w = model->output_.storage.data();
  }
  for (LayerWeights& L : model->layers_) {
    for (Linear* lin : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      lin->w = lin->storage.data();
    }
  }

  log->info("loaded {} ({}): {} layers, embd {}, heads {}/{}, ffn {}, vocab {}, {:.1f}M params",
            path, c.name, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.n_ff, c.n_vocab,
            double(model->parameter_count()) / 1e6);
  return model;
}

int64_t Model::parameter_count() const {
  int64_t n = int64_t(token_embd_.size()) + int64_t(output_norm_.size());
  if (!tied_output_) n += output_.size();
  for (const LayerWeights& L : layers_) {
    n += int64_t(L.attn_norm.size() + L.ffn_norm.size());
    for (int k = 0; k < kMatrixKinds; ++k) {
      n += L.matrix(MatrixKind(k)).size();
    }
  }
  return n;
}

}  // namespace t2::backbone
