// Mixture files: write atomically, check everything on load.
#include "adaptation/mixture.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/ranges.h>

#include "t2/error.h"

namespace t2::adaptation {

namespace {
constexpr const char* kFormat = "t2-mixture";
constexpr int kVersion = 1;

void check_weights(const std::string& path, const std::string& what,
                   const std::vector<float>& v) {
  for (float a : v)
    if (!std::isfinite(a) || a < 0.0f)
      fail("mixture {}: {} holds {}; weights must be finite and >= 0", path, what, a);
}
}  // namespace

void mixture_save(const std::string& path, const Mixture& m) {
  nlohmann::json j{{"format", kFormat}, {"version", kVersion}, {"task", m.task},
                   {"model_sha256", m.model_sha256},
                   {"matrix_set", backbone::matrix_set_name(m.set)}, {"alpha", m.alpha},
                   {"search", m.search}};
  for (const auto& e : m.experts)
    j["experts"].push_back({{"name", e.name}, {"path", e.path}, {"sha256", e.sha256}});
  if (!m.slot_alpha.empty()) j["slot_alpha"] = m.slot_alpha;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) fail("cannot write mixture file {} (is the directory there?)", tmp);
    out << j.dump(2) << "\n";
    if (!out) fail("writing mixture file {} failed", tmp);
  }
  std::filesystem::rename(tmp, path);
}

Mixture mixture_load(const std::string& path, const backbone::Svf& svf,
                     const std::vector<std::string>& expected_experts) {
  std::ifstream in(path);
  if (!in) fail("cannot open mixture file {}", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("mixture {} is not valid JSON: {}", path, e.what());
  }
  Mixture m;
  try {
    if (j.value("format", "") != kFormat || j.value("version", 0) != kVersion)
      fail("mixture {}: expected format '{}' version {}; is this a `t2 fewshot --out` file?",
           path, kFormat, kVersion);
    m.task = j.at("task").get<std::string>();
    m.model_sha256 = j.at("model_sha256").get<std::string>();
    m.set = backbone::parse_matrix_set(j.at("matrix_set").get<std::string>());
    for (const auto& e : j.at("experts"))
      m.experts.push_back({e.at("name"), e.at("path"), e.at("sha256")});
    m.alpha = j.at("alpha").get<std::vector<float>>();
    if (j.contains("slot_alpha")) m.slot_alpha = j["slot_alpha"].get<decltype(m.slot_alpha)>();
    if (j.contains("search")) m.search = j["search"];
  } catch (const nlohmann::json::exception& e) {
    fail("mixture {}: missing or mistyped field ({})", path, e.what());
  }

  if (m.model_sha256 != svf.model_sha256())
    fail("mixture {} was made for model {} but this model is {}; run `t2 fewshot` for "
         "this model", path, m.model_sha256.substr(0, 12), svf.model_sha256().substr(0, 12));
  if (m.set != svf.matrix_set())
    fail("mixture {} adapts the '{}' matrices but the experts use '{}'", path,
         backbone::matrix_set_name(m.set), backbone::matrix_set_name(svf.matrix_set()));
  if (m.experts.empty()) fail("mixture {} names no experts", path);
  if (m.alpha.size() != m.experts.size())
    fail("mixture {}: {} alphas for {} experts", path, m.alpha.size(), m.experts.size());
  check_weights(path, "alpha", m.alpha);
  if (!m.slot_alpha.empty()) {
    if (m.slot_alpha.size() != m.experts.size())
      fail("mixture {}: slot_alpha has {} rows for {} experts", path, m.slot_alpha.size(),
           m.experts.size());
    for (const auto& row : m.slot_alpha) {
      if (int(row.size()) != svf.n_slots())
        fail("mixture {}: slot_alpha rows need {} values (one per matrix), found {}", path,
             svf.n_slots(), row.size());
      check_weights(path, "slot_alpha", row);
    }
  }

  if (!expected_experts.empty()) {
    std::vector<std::string> have, want = expected_experts;
    for (const auto& e : m.experts) have.push_back(e.name);
    std::sort(have.begin(), have.end());
    std::sort(want.begin(), want.end());
    if (have != want)
      fail("mixture {} mixes experts [{}] but [{}] are registered; re-run `t2 fewshot` with "
           "these experts", path, fmt::join(have, ", "), fmt::join(want, ", "));
  }
  for (const auto& e : m.experts) {
    if (!std::filesystem::exists(e.path))
      fail("mixture {}: expert {} file {} is missing", path, e.name, e.path);
    if (backbone::file_sha256(e.path) != e.sha256)
      fail("mixture {}: expert {} file {} changed since the mixture was made (SHA-256 "
           "differs); re-run `t2 fewshot`", path, e.name, e.path);
  }
  return m;
}

}  // namespace t2::adaptation
