// Checkpoint files (train_checkpoint.h): tensors "p", "adam.m", "adam.v",
// "best.p" ([total_rank] F32 each); everything else in the metadata as text.
// Doubles are written with 17 significant digits so they read back exactly.
#include "adaptation/train_checkpoint.h"

#include <cmath>

#include "backbone/safetensors.h"
#include "t2/error.h"

namespace t2::adaptation {

namespace st = backbone::safetensors;

namespace {

constexpr const char* kFormat = "t2-train-checkpoint";
constexpr const char* kVersion = "1";

}  // namespace

void checkpoint_save(const std::string& path, const TrainCheckpoint& c) {
  const size_t n = c.p.size();
  if (c.adam_m.size() != n || c.adam_v.size() != n || c.best_p.size() != n) {
    fail("checkpoint {}: p has {} values but adam m {}, v {}, best p {}", path, n,
         c.adam_m.size(), c.adam_v.size(), c.best_p.size());
  }
  const int64_t len = int64_t(n);
  const std::vector<st::TensorOut> tensors = {
      {"p", {len}, c.p}, {"adam.m", {len}, c.adam_m},
      {"adam.v", {len}, c.adam_v}, {"best.p", {len}, c.best_p}};
  const st::Metadata meta = {
      {"format", kFormat},
      {"format_version", kVersion},
      {"task", c.task},
      {"base_model_sha256", c.base_model_sha256},
      {"matrix_set", backbone::matrix_set_name(c.set)},
      {"step", std::to_string(c.step)},
      {"seed", std::to_string(c.seed)},
      {"adam_steps", std::to_string(c.adam_steps)},
      {"best_accuracy", fmt::format("{:.17g}", c.best_accuracy)},
      {"best_step", std::to_string(c.best_step)},
      {"settings", c.settings.dump()},
  };
  st::write(path, tensors, meta);
}

TrainCheckpoint checkpoint_load(const std::string& path, const backbone::Svf& svf) {
  const st::File f = st::File::open(path);
  auto meta = [&](const char* key) -> const std::string& {
    const std::string* v = f.find_metadata(key);
    if (!v) fail("{}: metadata '{}' missing (not a t2 training checkpoint?)", path, key);
    return *v;
  };
  if (meta("format") != kFormat) fail("{}: format '{}', expected '{}'", path, meta("format"),
                                      kFormat);
  if (meta("format_version") != kVersion) {
    fail("{}: checkpoint format version {} is not supported (this build reads {})", path,
         meta("format_version"), kVersion);
  }

  TrainCheckpoint c;
  c.task = meta("task");
  c.base_model_sha256 = meta("base_model_sha256");
  if (c.base_model_sha256 != svf.model_sha256()) {
    fail("{}: checkpoint of base model {}..., the loaded model is {}...; resume with the model "
         "it was trained on", path, c.base_model_sha256.substr(0, 12),
         svf.model_sha256().substr(0, 12));
  }
  c.set = backbone::parse_matrix_set(meta("matrix_set"));
  if (c.set != svf.matrix_set()) {
    fail("{}: checkpoint adapts '{}' matrices, the SVF factors are '{}'", path,
         backbone::matrix_set_name(c.set), backbone::matrix_set_name(svf.matrix_set()));
  }
  try {
    c.step = std::stoll(meta("step"));
    c.seed = std::stoull(meta("seed"));
    c.adam_steps = std::stoll(meta("adam_steps"));
    c.best_accuracy = std::stod(meta("best_accuracy"));
    c.best_step = std::stoll(meta("best_step"));
    c.settings = nlohmann::json::parse(meta("settings"));
  } catch (const std::exception& e) {
    fail("{}: malformed checkpoint metadata: {}", path, e.what());
  }

  auto read = [&](const char* name) {
    const st::TensorView& t = f.tensor(name);
    if (t.dtype != st::Dtype::kF32 || t.shape != std::vector<int64_t>{svf.total_rank()}) {
      fail("{}: tensor '{}' should be F32 [{}] (the SVF set's total rank)", path, name,
           svf.total_rank());
    }
    std::vector<float> v = t.to_f32();
    for (size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i])) fail("{}: tensor '{}' value {} is not finite", path, name, i);
    }
    return v;
  };
  c.p = read("p");
  c.adam_m = read("adam.m");
  c.adam_v = read("adam.v");
  c.best_p = read("best.p");
  return c;
}

}  // namespace t2::adaptation
