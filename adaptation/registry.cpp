// Expert lookup for the CLI: name -> file -> checked expert + its task's category.
#include "adaptation/registry.h"

#include <algorithm>
#include <filesystem>

#include "t2/error.h"

namespace t2::adaptation {

std::vector<LoadedExpert> load_experts(const std::vector<std::string>& specs,
                                       const std::string& dir, const backbone::Svf& svf,
                                       const TaskPaths& paths) {
  std::vector<LoadedExpert> out;
  for (const auto& spec : specs) {
    std::string path = spec;
    if (!spec.ends_with(".safetensors")) path = dir + "/" + spec + ".safetensors";
    if (!std::filesystem::exists(path))
      fail("unknown expert '{}': no file {} (give a .safetensors path or --experts-dir)",
           spec, path);
    auto e = std::make_shared<backbone::Expert>(backbone::expert_load(path, svf));
    std::string name = std::filesystem::path(path).stem().string();
    RegisteredExpert r{name, "", "", e};
    if (e->task.empty()) fail("expert {} does not say which task it was trained on", path);
    const Task task = Task::load(e->task, paths);
    r.category = task.category();
    r.description = task.description();
    out.push_back({std::move(r), path});
  }
  return out;
}

std::vector<RegisteredExpert> registered(const std::vector<LoadedExpert>& experts) {
  std::vector<RegisteredExpert> out;
  for (const auto& e : experts) out.push_back(e.registered);
  return out;
}

std::vector<MixtureWeight> mixture_weights(const std::string& file, const backbone::Svf& svf,
                                           const std::vector<LoadedExpert>& experts) {
  std::vector<std::string> names;
  for (const auto& e : experts) names.push_back(e.registered.name);
  const Mixture m = mixture_load(file, svf, names);
  std::vector<MixtureWeight> out;
  for (size_t i = 0; i < m.experts.size(); ++i) {
    const auto& me = m.experts[i];
    const auto it = std::find_if(experts.begin(), experts.end(),
                                 [&](const LoadedExpert& e) { return e.registered.name == me.name; });
    if (backbone::file_sha256(it->path) != me.sha256)
      fail("mixture {} was made with expert {} from {}, but the registered {} is another file "
           "({}); register the same expert files or re-run `t2 fewshot`", file, me.name,
           me.path, me.name, it->path);
    out.push_back({me.name, m.alpha[i],
                   m.slot_alpha.empty() ? std::vector<float>{} : m.slot_alpha[i]});
  }
  return out;
}

}  // namespace t2::adaptation
