// The peer of the store benchmark: MLflow's tracking-store schema (runs, tags,
// params, metrics, latest_metrics keyed by a 32-hex run_uuid), one run per
// decision, written and queried with raw prepared SQLite statements the way
// MLflow's search_runs does (a join per tag filter, then the runs' data loaded).
#pragma once

#include <string>
#include <vector>

#include "workload.h"

namespace bench {

struct PeerFigures {
  double insert_s = 0;
  double query_p50_ms = 0, query_p99_ms = 0, query_max_ms = 0;
  double agg_strategy_ms = 0;
  double bytes = 0;
  int64_t returned = 0;
};

PeerFigures run_mlflow_layout(const std::string& path, const Workload& work,
                              const std::vector<Query>& queries);

}  // namespace bench
