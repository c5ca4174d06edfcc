// Decisions and aggregates as JSON, JSON Lines and CSV (RFC 4180 quoting). One
// JSON shape per record, shared by `t2 audit` and the HTTP API.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "store/audit.h"
#include "store/records.h"

namespace t2::store {

enum class ExportFormat { jsonl, csv };

nlohmann::json to_json(const Decision& decision);
nlohmann::json to_json(const AggregateRow& row, const std::vector<GroupField>& group_by);
nlohmann::json to_json(const Aggregate& aggregate);

// Quotes a CSV field when it holds a comma, quote, CR or LF.
std::string csv_field(std::string_view text);

void write_decision_csv_header(std::ostream& out);
void write_decision_csv_row(std::ostream& out, const Decision& decision);

// Writes every decision matching `filter` (a header first for CSV); returns
// how many rows it wrote. Pages internally, so memory stays bounded.
int64_t export_decisions(const AuditReader& reader, const DecisionFilter& filter, Order order,
                         ExportFormat format, std::ostream& out);

// JSON Lines: one object per group row; CSV: a header, then one line per row.
void write_aggregate(std::ostream& out, const Aggregate& aggregate, ExportFormat format);

}  // namespace t2::store
