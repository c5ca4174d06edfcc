// Log-likelihood fitness: prompt + answer tokens of every (member, shot) pair in
// one forward batch; only answer positions' logits are read.
#include "adaptation/fewshot.h"

#include <algorithm>
#include <cmath>

#include "backbone/forward.h"
#include "backbone/kv_cache.h"
#include "t2/error.h"

namespace t2::adaptation {

ShotScorer::ShotScorer(std::shared_ptr<const backbone::Model> model,
                       std::shared_ptr<const backbone::Svf> svf,
                       std::vector<std::shared_ptr<const backbone::Expert>> experts,
                       std::span<const Example> shots, bool per_matrix, int64_t max_rows)
    : model_(std::move(model)), svf_(std::move(svf)), experts_(std::move(experts)),
      per_matrix_(per_matrix), max_rows_(max_rows),
      hook_(*model_, svf_, nullptr, {backbone::SvfPath::kFactored}) {
  if (experts_.empty()) fail("few-shot mixing needs at least one expert");
  if (shots.empty()) fail("few-shot mixing needs at least one labelled example");
  const auto& tok = model_->tokenizer();
  for (const auto& s : shots) {
    if (s.reference.empty()) fail("shot {} has no reference answer", s.id);
    prompts_.push_back(tok.encode(tok.apply_chat_template(s.messages, true)));
    // The answer as the model should write it, closed by the end-of-turn token.
    answers_.push_back(tok.encode(s.reference + "<|im_end|>"));
    if (int(prompts_.back().size() + answers_.back().size()) > model_->config().n_ctx)
      fail("shot {}: {} tokens do not fit the context of {}", s.id,
           prompts_.back().size() + answers_.back().size(), model_->config().n_ctx);
  }
}

int ShotScorer::genome_size() const {
  return int(experts_.size()) * (per_matrix_ ? svf_->n_slots() : 1);
}

std::shared_ptr<const backbone::Adapter> ShotScorer::adapter(std::span<const float> g) const {
  if (int(g.size()) != genome_size())
    fail("mixture genome has {} values, expected {}", g.size(), genome_size());
  std::vector<backbone::AdapterTerm> terms;
  const size_t n = per_matrix_ ? size_t(svf_->n_slots()) : 1;
  for (size_t k = 0; k < experts_.size(); ++k) {
    backbone::AdapterTerm t{experts_[k].get(), per_matrix_ ? 1.0f : g[k], {}};
    if (per_matrix_) t.slot_alpha.assign(g.begin() + long(k * n), g.begin() + long((k + 1) * n));
    terms.push_back(std::move(t));
  }
  return backbone::Adapter::mixture(*svf_, terms, "cem");
}

std::vector<double> ShotScorer::score(const std::vector<std::vector<float>>& population) {
  const size_t shots = prompts_.size();
  std::vector<std::shared_ptr<const backbone::Adapter>> adapters;
  for (const auto& g : population) adapters.push_back(adapter(g));

  // All (member, shot) sequences, packed into forward batches of <= max_rows_ rows.
  const size_t n_seq = population.size() * shots;
  std::vector<double> total(population.size(), 0.0);
  backbone::Forward forward(*model_);
  std::vector<float> logits;
  const int vocab = model_->tokenizer().vocab_size();

  size_t first = 0;
  while (first < n_seq) {
    size_t last = first;
    int64_t rows = 0;
    while (last < n_seq) {
      const size_t s = last % shots;
      const int64_t r = int64_t(prompts_[s].size() + answers_[s].size());
      if (last > first && rows + r > max_rows_) break;
      rows += r;
      ++last;
    }
    // Sequence i of this batch is (member, shot) = divmod(first + i, shots).
    std::vector<std::vector<int32_t>> tokens;
    std::vector<backbone::KvCache> caches;
    std::vector<std::shared_ptr<const backbone::Adapter>> batch_adapters;
    caches.reserve(last - first);
    for (size_t q = first; q < last; ++q) {
      const size_t s = q % shots;
      auto t = prompts_[s];
      t.insert(t.end(), answers_[s].begin(), answers_[s].end() - 1);  // last is only a target
      tokens.push_back(std::move(t));
      caches.emplace_back(model_->config(), int(tokens.back().size()));
      batch_adapters.push_back(adapters[q / shots]);
    }
    // Logits only from the last prompt token on (the output head is a fifth of
    // the work per token): row a of a sequence predicts answer token a.
    std::vector<backbone::SequenceInput> inputs;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const auto p = int64_t(prompts_[(first + i) % shots].size());
      inputs.push_back({&caches[i], tokens[i], true, p - 1});
    }
    hook_.set_adapters(batch_adapters);
    forward.run(inputs, logits, &hook_);

    int64_t row0 = 0;
    for (size_t q = first; q < last; ++q) {
      const size_t s = q % shots;
      const auto& ans = answers_[s];
      double lp = 0.0;
      for (size_t a = 0; a < ans.size(); ++a) {
        const float* row = logits.data() + (row0 + int64_t(a)) * vocab;
        const float mx = *std::max_element(row, row + vocab);
        double sum = 0.0;
        for (int v = 0; v < vocab; ++v) sum += std::exp(double(row[v] - mx));
        lp += double(row[ans[a]] - mx) - std::log(sum);
      }
      total[q / shots] += lp / double(ans.size());
      row0 += int64_t(ans.size());
    }
    first = last;
  }
  for (auto& t : total) t /= double(shots);
  return total;
}

CemResult ShotScorer::search(CemOptions options) {
  options.dim_groups = int(experts_.size());
  options.initial_points.insert(options.initial_points.begin(),
                                std::vector<float>(size_t(genome_size()), 0.0f));
  return cem_search(genome_size(), [&](const auto& population) { return score(population); },
                    options);
}

}  // namespace t2::adaptation
