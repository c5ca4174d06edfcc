// worker::Context — what a worker's compute thread works with: the model, its
// SVF factors, the experts rank 0 has sent (by name), the tasks and their
// examples. Owned by the compute thread, except `cancelled`, which the MPI
// thread sets.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "adaptation/dispatcher.h"
#include "adaptation/task.h"
#include "adaptation/trainer.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"
#include "backbone/svf_hook.h"
#include "comm/channel.h"
#include "worker/options.h"

namespace t2::worker {

struct ExpertSlot {
  std::shared_ptr<const backbone::Expert> expert;
  std::string category;
};

class Context {
 public:
  Context(const WorkerOptions& options, std::shared_ptr<const backbone::Model> model,
          std::shared_ptr<const backbone::Svf> svf, comm::Channel& channel);

  const WorkerOptions& options() const { return options_; }
  const backbone::Model& model() const { return *model_; }
  std::shared_ptr<const backbone::Model> model_ptr() const { return model_; }
  const backbone::Svf& svf() const { return *svf_; }
  std::shared_ptr<const backbone::Svf> svf_ptr() const { return svf_; }
  comm::Channel& channel() { return channel_; }
  std::shared_ptr<backbone::MaterializedCache> cache() { return cache_; }

  // Stores the experts a message carries ("experts", "blob_experts" + blob).
  void take_experts(const nlohmann::json& body, const std::vector<float>& blob);
  const ExpertSlot& expert(const std::string& name) const;  // throws when unknown
  bool has_expert(const std::string& name) const { return experts_.count(name) > 0; }

  // A dispatcher over exactly these experts (one per category), kept for reuse.
  adaptation::Dispatcher& dispatcher(const std::vector<std::string>& names);

  // The trainer of `job` (kept while the same job trains here).
  adaptation::Trainer& trainer(uint64_t job, const adaptation::Task& task,
                               const adaptation::PolicyConfig& policy);

  const adaptation::Task& task(const std::string& name);
  const std::vector<adaptation::Example>& examples(const std::string& task,
                                                   adaptation::Split split);

  // Placements rank 0 no longer wants (set by the MPI thread).
  void cancel(uint64_t placement);
  bool cancelled(uint64_t placement) const;

 private:
  WorkerOptions options_;
  std::shared_ptr<const backbone::Model> model_;
  std::shared_ptr<const backbone::Svf> svf_;
  comm::Channel& channel_;
  std::shared_ptr<backbone::MaterializedCache> cache_;
  std::map<std::string, ExpertSlot> experts_;
  std::map<std::string, std::unique_ptr<adaptation::Dispatcher>> dispatchers_;
  uint64_t trainer_job_ = 0;
  std::unique_ptr<adaptation::Trainer> trainer_;
  std::map<std::string, adaptation::Task> tasks_;
  std::map<std::string, std::vector<adaptation::Example>> examples_;
  mutable std::mutex cancel_mutex_;
  std::set<uint64_t> cancelled_;
};

}  // namespace t2::worker
