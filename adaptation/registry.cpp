// Expert lookup for the CLI: name -> file -> checked expert + its task's category.
#include "adaptation/registry.h"

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

}  // namespace t2::adaptation
