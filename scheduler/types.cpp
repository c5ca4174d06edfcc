// Names of the adaptation paths, as they appear in JSON and decision rows.
#include "scheduler/types.h"

#include "t2/error.h"

namespace t2::scheduler {

std::string_view path_name(Path path) {
  switch (path) {
    case Path::kDense: return "dense";
    case Path::kMaterialized: return "materialized";
    case Path::kFactored: return "factored";
  }
  return "?";
}

Path path_from_name(std::string_view name) {
  if (name == "dense") return Path::kDense;
  if (name == "materialized") return Path::kMaterialized;
  if (name == "factored") return Path::kFactored;
  fail("unknown adaptation path `{}`; expected dense, materialized or factored", name);
}

}  // namespace t2::scheduler
