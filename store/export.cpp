// Serialises decisions and aggregates. Field names match the audit filter names
// so an exported value can be pasted back into a query. Doubles print in their
// shortest exact form; absent values are null in JSON and empty in CSV.
#include "store/export.h"

#include <fmt/format.h>

namespace t2::store {
namespace {

template <typename T>
nlohmann::json opt(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

template <typename T>
std::string cell(const std::optional<T>& value) {
  return value ? fmt::format("{}", *value) : std::string();
}

std::string key_text(const nlohmann::json& key) {
  if (key.is_null()) return "";
  if (key.is_string()) return key.get<std::string>();
  return key.dump();
}

}  // namespace

nlohmann::json to_json(const Decision& d) {
  nlohmann::json experts = nlohmann::json::array();
  for (const auto& e : d.experts) experts.push_back({{"name", e.name}, {"weight", e.weight}});
  return {
      {"id", d.id},
      {"time", format_time(d.time)},
      {"kind", to_string(d.kind)},
      {"job", opt(d.job)},
      {"request_id", opt(d.request_id)},
      {"task", opt(d.task)},
      {"strategy", d.strategy},
      {"first_pass", d.first_pass},
      {"experts", experts},
      {"depth", opt(d.depth)},
      {"rank", opt(d.rank)},
      {"estimated_cost", opt(d.estimated_cost)},
      {"measured_cost", opt(d.measured_cost)},
      {"first_pass_ms", opt(d.first_pass_ms)},
      {"second_pass_ms", opt(d.second_pass_ms)},
      {"prompt_sha256", d.prompt_sha256},
      {"prompt_excerpt", opt(d.prompt_excerpt)},
  };
}

nlohmann::json to_json(const AggregateRow& row, const std::vector<GroupField>& group_by) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < group_by.size() && i < row.keys.size(); ++i) {
    out[std::string(to_string(group_by[i]))] = row.keys[i];
  }
  out["count"] = row.count;
  out["share"] = row.share;
  out["mean_first_pass_ms"] = opt(row.mean_first_pass_ms);
  out["mean_second_pass_ms"] = opt(row.mean_second_pass_ms);
  out["mean_estimated_cost"] = opt(row.mean_estimated_cost);
  out["mean_measured_cost"] = opt(row.mean_measured_cost);
  if (row.mean_weight) out["mean_weight"] = *row.mean_weight;
  return out;
}

nlohmann::json to_json(const Aggregate& aggregate) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& field : aggregate.group_by) groups.push_back(to_string(field));
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : aggregate.rows) rows.push_back(to_json(row, aggregate.group_by));
  return {{"group_by", groups}, {"total", aggregate.total}, {"rows", rows}};
}

// LIMITATION: fields are quoted per RFC 4180 but not defused for spreadsheets
// (an excerpt starting with '=' opens as a formula); prefixing such cells would
// alter the audit data, so the export leaves that to whoever opens it.
std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

void write_decision_csv_header(std::ostream& out) {
  out << "id,time,kind,job,request_id,task,strategy,experts,depth,rank,estimated_cost,"
         "measured_cost,first_pass_ms,second_pass_ms,prompt_sha256,first_pass,"
         "prompt_excerpt\r\n";
}

void write_decision_csv_row(std::ostream& out, const Decision& d) {
  // Experts as "name:weight" joined by ';' — one cell, still easy to split.
  std::string experts;
  for (const auto& e : d.experts) {
    if (!experts.empty()) experts += ';';
    experts += fmt::format("{}:{}", e.name, e.weight);
  }
  out << d.id << ',' << format_time(d.time) << ',' << to_string(d.kind) << ','
      << cell(d.job) << ',' << csv_field(d.request_id.value_or("")) << ','
      << csv_field(d.task.value_or("")) << ',' << csv_field(d.strategy) << ','
      << csv_field(experts) << ',' << cell(d.depth) << ',' << cell(d.rank) << ','
      << cell(d.estimated_cost) << ',' << cell(d.measured_cost) << ','
      << cell(d.first_pass_ms) << ',' << cell(d.second_pass_ms) << ',' << d.prompt_sha256
      << ',' << csv_field(d.first_pass.is_null() ? "" : d.first_pass.dump()) << ','
      << csv_field(d.prompt_excerpt.value_or("")) << "\r\n";
}

int64_t export_decisions(const AuditReader& reader, const DecisionFilter& filter, Order order,
                         ExportFormat format, std::ostream& out) {
  if (format == ExportFormat::csv) write_decision_csv_header(out);
  return reader.for_each(filter, order, [&](const Decision& d) {
    if (format == ExportFormat::csv) {
      write_decision_csv_row(out, d);
    } else {
      out << to_json(d).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
  });
}

void write_aggregate(std::ostream& out, const Aggregate& aggregate, ExportFormat format) {
  if (format == ExportFormat::jsonl) {
    for (const auto& row : aggregate.rows) {
      out << to_json(row, aggregate.group_by).dump() << '\n';
    }
    return;
  }
  for (const auto& field : aggregate.group_by) out << to_string(field) << ',';
  out << "count,share,mean_first_pass_ms,mean_second_pass_ms,mean_estimated_cost,"
         "mean_measured_cost,mean_weight\r\n";
  for (const auto& row : aggregate.rows) {
    for (const auto& key : row.keys) out << csv_field(key_text(key)) << ',';
    out << row.count << ',' << fmt::format("{}", row.share) << ','
        << cell(row.mean_first_pass_ms) << ',' << cell(row.mean_second_pass_ms) << ','
        << cell(row.mean_estimated_cost) << ',' << cell(row.mean_measured_cost) << ','
        << cell(row.mean_weight) << "\r\n";
  }
}

}  // namespace t2::store
