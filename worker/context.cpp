// Worker context: experts from rank 0's messages, tasks loaded on first use,
// and the set of cancelled placements (see context.h).
#include "worker/context.h"

#include "t2/error.h"

namespace t2::worker {

Context::Context(const WorkerOptions& options, std::shared_ptr<const backbone::Model> model,
                 std::shared_ptr<const backbone::Svf> svf, comm::Channel& channel)
    : options_(options),
      model_(std::move(model)),
      svf_(std::move(svf)),
      channel_(channel),
      cache_(std::make_shared<backbone::MaterializedCache>(int64_t(512) << 20)) {}

void Context::take_experts(const nlohmann::json& body, const std::vector<float>& blob) {
  std::map<std::string, std::pair<std::string, std::string>> meta;  // name -> task, category
  for (const auto& e : body.value("experts", nlohmann::json::array()))
    meta[e.value("name", "")] = {e.value("task", ""), e.value("category", "")};
  size_t offset = 0;
  for (const auto& e : body.value("blob_experts", nlohmann::json::array())) {
    const std::string name = e.value("name", "");
    const size_t n = e.value("values", size_t(0));
    if (offset + n > blob.size())
      fail("expert '{}': message carries {} values, {} expected", name, blob.size() - offset, n);
    if (int64_t(n) != svf_->total_rank())
      fail("expert '{}' has {} values; this model's {} set needs {}", name, n,
           backbone::matrix_set_name(svf_->matrix_set()), svf_->total_rank());
    auto x = std::make_shared<backbone::Expert>();
    x->name = name;
    x->task = meta[name].first;
    x->base_model_sha256 = svf_->model_sha256();
    x->set = svf_->matrix_set();
    x->p.assign(blob.begin() + long(offset), blob.begin() + long(offset + n));
    experts_[name] = ExpertSlot{std::move(x), meta[name].second};
    // A dispatcher built on the old vector would keep running it.
    std::erase_if(dispatchers_, [&](const auto& d) {
      return d.first.find("|" + name + "|") != std::string::npos;
    });
    offset += n;
  }
}

const ExpertSlot& Context::expert(const std::string& name) const {
  auto it = experts_.find(name);
  if (it == experts_.end()) fail("expert '{}' was never sent to this rank", name);
  return it->second;
}

adaptation::Dispatcher& Context::dispatcher(const std::vector<std::string>& names) {
  std::string key = "|";
  for (const auto& n : names) key += n + "|";
  auto it = dispatchers_.find(key);
  if (it != dispatchers_.end()) return *it->second;
  std::vector<adaptation::RegisteredExpert> registered;
  for (const auto& n : names) {
    const ExpertSlot& slot = expert(n);
    std::string description = "tasks like " + slot.expert->task;
    try {
      description = task(slot.expert->task).description();
    } catch (const Error&) {
    }
    registered.push_back({n, slot.category, description, slot.expert});
  }
  adaptation::DispatchOptions options;
  options.batch_size = options_.batch_size;
  if (dispatchers_.size() >= 8) dispatchers_.clear();
  auto made = std::make_unique<adaptation::Dispatcher>(model_, svf_, std::move(registered),
                                                       options);
  return *dispatchers_.emplace(key, std::move(made)).first->second;
}

adaptation::Trainer& Context::trainer(uint64_t job, const adaptation::Task& task,
                                      const adaptation::PolicyConfig& policy) {
  if (!trainer_ || trainer_job_ != job) {
    trainer_.reset();  // its training buffers go before the next ones come
    trainer_ = std::make_unique<adaptation::Trainer>(*model_, svf_, task, policy);
    trainer_job_ = job;
  }
  return *trainer_;
}

const adaptation::Task& Context::task(const std::string& name) {
  auto it = tasks_.find(name);
  if (it == tasks_.end())
    it = tasks_.emplace(name, adaptation::Task::load(name, options_.task_paths)).first;
  return it->second;
}

const std::vector<adaptation::Example>& Context::examples(const std::string& name,
                                                          adaptation::Split split) {
  const std::string key = name + "/" + adaptation::split_name(split);
  auto it = examples_.find(key);
  if (it == examples_.end()) it = examples_.emplace(key, task(name).examples(split)).first;
  return it->second;
}

void Context::cancel(uint64_t placement) {
  std::lock_guard lock(cancel_mutex_);
  cancelled_.insert(placement);
}

bool Context::cancelled(uint64_t placement) const {
  std::lock_guard lock(cancel_mutex_);
  return cancelled_.count(placement) > 0;
}

}  // namespace t2::worker
