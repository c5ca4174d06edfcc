// Expert files (see expert.h): safetensors with one F32 [rank] tensor per slot.
// Metadata keys: format, format_version, name, task, base_model_sha256,
// matrix_set, parametrization, training (JSON text), validation_accuracy, created.
#include "backbone/expert.h"

#include <cmath>
#include <ctime>
#include <random>

#include "backbone/safetensors.h"
#include "t2/error.h"

namespace t2::backbone {
namespace {

constexpr const char* kFormat = "t2-svf-expert";
constexpr const char* kVersion = "1";

std::string slot_name(const Svf& svf, int slot) {
  return fmt::format("blk.{}.{}", svf.layer_of(slot), matrix_kind_name(svf.kind_of(slot)));
}

std::string short_sha(const std::string& sha) { return sha.substr(0, 12); }

}  // namespace

std::vector<float> Expert::z() const {
  std::vector<float> z(p.size());
  for (size_t i = 0; i < p.size(); ++i) z[i] = 1.0f / (1.0f + std::exp(-p[i]));
  return z;
}

std::string utc_now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Expert expert_init(const Svf& svf, std::string name, std::string task, uint64_t seed) {
  Expert e;
  e.name = std::move(name);
  e.task = std::move(task);
  e.base_model_sha256 = svf.model_sha256();
  e.set = svf.matrix_set();
  e.created = utc_now_iso8601();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  e.p.resize(size_t(svf.total_rank()));
  for (float& v : e.p) v = 0.1f + 0.01f * normal(rng);
  return e;
}

void expert_save(const std::string& path, const Expert& e, const Svf& svf) {
  if (e.base_model_sha256 != svf.model_sha256()) {
    fail("expert '{}': base model sha256 {} differs from the backbone's {}", e.name,
         short_sha(e.base_model_sha256), short_sha(svf.model_sha256()));
  }
  if (e.set != svf.matrix_set()) {
    fail("expert '{}': matrix set '{}' differs from the backbone's '{}'", e.name,
         matrix_set_name(e.set), matrix_set_name(svf.matrix_set()));
  }
  if (int64_t(e.p.size()) != svf.total_rank()) {
    fail("expert '{}': p has {} values, expected {}", e.name, e.p.size(), svf.total_rank());
  }
  if (e.parametrization != "sigmoid") {
    fail("expert '{}': parametrization '{}' unknown (expected 'sigmoid')", e.name,
         e.parametrization);
  }
  for (size_t i = 0; i < e.p.size(); ++i) {
    if (!std::isfinite(e.p[i])) fail("expert '{}': p[{}] = {} is not finite", e.name, i, e.p[i]);
  }

  std::vector<safetensors::TensorOut> tensors;
  for (int s = 0; s < svf.n_slots(); ++s) {
    const int rank = svf.factors(s).rank;
    tensors.push_back({slot_name(svf, s), {rank}, {e.p.data() + svf.offset(s), size_t(rank)}});
  }
  const safetensors::Metadata meta = {
      {"format", kFormat},
      {"format_version", kVersion},
      {"name", e.name},
      {"task", e.task},
      {"base_model_sha256", e.base_model_sha256},
      {"matrix_set", matrix_set_name(e.set)},
      {"parametrization", e.parametrization},
      {"training", e.training.dump()},
      {"validation_accuracy", fmt::format("{}", e.validation_accuracy)},
      {"created", e.created},
  };
  safetensors::write(path, tensors, meta);
}

Expert expert_load(const std::string& path, const Svf& svf) {
  const safetensors::File f = safetensors::File::open(path);
  auto meta = [&](const char* key) -> const std::string& {
    const std::string* v = f.find_metadata(key);
    if (!v) fail("{}: metadata '{}' missing (not a t2 expert file?)", path, key);
    return *v;
  };
  if (meta("format") != kFormat) {
    fail("{}: format '{}', expected '{}'", path, meta("format"), kFormat);
  }
  if (meta("format_version") != kVersion) {
    fail("{}: format version {} is not supported (this build reads {})", path,
         meta("format_version"), kVersion);
  }

  Expert e;
  e.name = meta("name");
  e.task = meta("task");
  e.base_model_sha256 = meta("base_model_sha256");
  if (e.base_model_sha256 != svf.model_sha256()) {
    fail(
        "{}: expert '{}' was trained on base model sha256 {}..., but the loaded model is "
        "{}...; load that model or retrain the expert",
        path, e.name, short_sha(e.base_model_sha256), short_sha(svf.model_sha256()));
  }
  e.set = parse_matrix_set(meta("matrix_set"));
  if (e.set != svf.matrix_set()) {
    fail(
        "{}: expert adapts the '{}' matrices, the backbone's SVF factors are '{}'; open the "
        "SVF with --matrices {}",
        path, matrix_set_name(e.set), matrix_set_name(svf.matrix_set()), matrix_set_name(e.set));
  }
  e.parametrization = meta("parametrization");
  if (e.parametrization != "sigmoid") {
    fail("{}: parametrization '{}' unknown (expected 'sigmoid')", path, e.parametrization);
  }
  try {
    e.training = nlohmann::json::parse(meta("training"));
    e.validation_accuracy = std::stod(meta("validation_accuracy"));
  } catch (const std::exception& ex) {
    fail("{}: metadata 'training' or 'validation_accuracy' is malformed: {}", path, ex.what());
  }
  e.created = meta("created");

  if (int(f.tensors().size()) != svf.n_slots()) {
    fail("{}: {} tensors, expected one per adapted matrix ({})", path, f.tensors().size(),
         svf.n_slots());
  }
  e.p.resize(size_t(svf.total_rank()));
  for (int s = 0; s < svf.n_slots(); ++s) {
    const std::string name = slot_name(svf, s);
    const safetensors::TensorView* t = f.find(name);
    if (!t) fail("{}: tensor '{}' missing", path, name);
    const int rank = svf.factors(s).rank;
    if (t->dtype != safetensors::Dtype::kF32 || t->shape != std::vector<int64_t>{rank}) {
      std::string shape;
      for (int64_t d : t->shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      fail("{}: tensor '{}' is {} [{}], expected F32 [{}] (an expert of another model?)", path,
           name, safetensors::dtype_name(t->dtype), shape, rank);
    }
    const std::vector<float> v = t->to_f32();
    for (int i = 0; i < rank; ++i) {
      if (!std::isfinite(v[size_t(i)])) {
        fail("{}: tensor '{}' value {} is {} (a diverged training run?)", path, name, i,
             v[size_t(i)]);
      }
    }
    std::copy(v.begin(), v.end(), e.p.begin() + svf.offset(s));
  }
  return e;
}

}  // namespace t2::backbone
