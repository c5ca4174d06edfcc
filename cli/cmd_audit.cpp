// `t2 audit --db FILE [filters] [--group-by ...] [--format table|json|csv]`:
// reads a store directly (read-only, no writer lock) and prints decisions or
// aggregates. Options become the same (name, value) pairs GET /v1/decisions
// takes, so both go through store::parse_audit_request and its checks.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "store/audit.h"
#include "store/export.h"
#include "t2/error.h"

namespace t2::cli {
namespace {

struct AuditArgs {
  std::string db;
  std::string format = "table";
  bool all = false;
  // (query field, option) for each filter option; values land in `values`.
  std::vector<std::pair<std::string, CLI::Option*>> options;
  std::vector<std::string> values;
};

std::string cut(std::string text, size_t width) {
  if (text.size() <= width) return text;
  return text.substr(0, width - 1) + "~";
}

template <typename T>
std::string cell(const std::optional<T>& v, const char* format = "{}") {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

std::string experts_text(const store::Decision& d) {
  std::string out;
  for (const auto& e : d.experts) {
    out += fmt::format("{}{}:{:.2f}", out.empty() ? "" : ",", e.name, e.weight);
  }
  return out.empty() ? "-" : out;
}

void print_decision_header() {
  fmt::print("{:>8}  {:<23}  {:<9}  {:>5}  {:<12}  {:<12}  {:<28}  {:>5}  {:>4}  {:>8}  {:>8}  "
             "{:>8}  {:>8}\n",
             "id", "time (UTC)", "kind", "job", "task", "strategy", "experts", "depth", "rank",
             "est cost", "cost", "pass1 ms", "pass2 ms");
}

void print_decision_row(const store::Decision& d) {
  fmt::print("{:>8}  {:<23}  {:<9}  {:>5}  {:<12}  {:<12}  {:<28}  {:>5}  {:>4}  {:>8}  {:>8}  "
             "{:>8}  {:>8}\n",
             d.id, store::format_time(d.time).substr(0, 23), store::to_string(d.kind),
             cell(d.job), cut(d.task.value_or("-"), 12), cut(d.strategy, 12),
             cut(experts_text(d), 28), cell(d.depth), cell(d.rank),
             cell(d.estimated_cost, "{:.2f}"), cell(d.measured_cost, "{:.2f}"),
             cell(d.first_pass_ms, "{:.1f}"), cell(d.second_pass_ms, "{:.1f}"));
}

void print_aggregate_table(const store::Aggregate& agg) {
  for (auto field : agg.group_by) fmt::print("{:<16}  ", store::to_string(field));
  fmt::print("{:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}\n", "count", "share", "pass1 ms",
             "pass2 ms", "est cost", "cost", "weight");
  for (const auto& row : agg.rows) {
    for (const auto& key : row.keys) {
      std::string text = key.is_null() ? "-" : key.is_string() ? key.get<std::string>()
                                                                 : key.dump();
      fmt::print("{:<16}  ", cut(text, 16));
    }
    fmt::print("{:>9}  {:>6.1f}%  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}\n", row.count,
               100 * row.share, cell(row.mean_first_pass_ms, "{:.1f}"),
               cell(row.mean_second_pass_ms, "{:.1f}"), cell(row.mean_estimated_cost, "{:.2f}"),
               cell(row.mean_measured_cost, "{:.2f}"), cell(row.mean_weight, "{:.3f}"));
  }
  fmt::print("{} matching decisions\n", agg.total);
}

void run_audit(const AuditArgs& args) {
  if (args.format != "table" && args.format != "json" && args.format != "csv") {
    fail("bad --format '{}': expected table, json or csv", args.format);
  }
  std::vector<std::pair<std::string, std::string>> params;
  for (size_t i = 0; i < args.options.size(); ++i) {
    const auto& [field, option] = args.options[i];
    if (option->count() > 0) params.emplace_back(field, args.values[i]);
  }
  store::AuditRequest request = store::parse_audit_request(params, store::now());
  auto reader = store::AuditReader::open(args.db);

  if (!request.group_by.empty()) {
    store::Aggregate agg = reader->aggregate(request.group_by, request.filter);
    if (args.format == "table") {
      print_aggregate_table(agg);
    } else if (args.format == "json") {
      std::cout << store::to_json(agg).dump(2) << '\n';
    } else {
      store::write_aggregate(std::cout, agg, store::ExportFormat::csv);
    }
    return;
  }

  if (args.all) {
    if (args.format == "table") {
      print_decision_header();
      reader->for_each(request.filter, request.page.order, print_decision_row);
    } else {
      store::export_decisions(*reader, request.filter, request.page.order,
                              args.format == "csv" ? store::ExportFormat::csv
                                                   : store::ExportFormat::jsonl,
                              std::cout);
    }
    return;
  }

  store::DecisionPage page = reader->query(request.filter, request.page);
  if (args.format == "json") {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& d : page.rows) rows.push_back(store::to_json(d));
    nlohmann::json out = {{"decisions", rows}, {"next_cursor", nullptr}};
    if (!page.next_cursor.empty()) out["next_cursor"] = page.next_cursor;
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    return;
  }
  if (args.format == "csv") {
    store::write_decision_csv_header(std::cout);
    for (const auto& d : page.rows) store::write_decision_csv_row(std::cout, d);
  } else {
    print_decision_header();
    for (const auto& d : page.rows) print_decision_row(d);
    if (page.rows.empty()) fmt::print(stderr, "no matching decisions\n");
  }
  if (!page.next_cursor.empty()) {
    fmt::print(stderr, "more rows: add --cursor {} (or --all for every row)\n",
               page.next_cursor);
  }
}

}  // namespace

void add_audit_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "audit", "Query adaptation decisions in a store: filter, page, group, export");
  auto args = std::make_shared<AuditArgs>();
  cmd->add_option("--db", args->db, "The store's SQLite file (opened read-only)")->required();

  // name on the command line, query field, help
  const std::vector<std::tuple<std::string, std::string, std::string>> filters = {
      {"--since", "since",
       "From this time, inclusive: 2024-05-01, 2024-05-01T12:00Z, or --since=-2h"},
      {"--until", "until", "Up to this time, exclusive (same forms as --since)"},
      {"--task", "task", "Only decisions for this task"},
      {"--strategy", "strategy", "Only this dispatch strategy"},
      {"--expert", "expert", "Only decisions whose mixture includes this expert"},
      {"--job", "job", "Only this job id"},
      {"--rank", "rank", "Only this worker rank"},
      {"--kind", "kind", "request or placement"},
      {"--request-id", "request_id", "Only this request id"},
      {"--group-by", "group_by",
       "Aggregate instead of listing: comma-separated strategy, task, expert, job, rank, kind, "
       "day, hour"},
      {"--limit", "limit", "Rows per page, 1 to 1000 (default 100)"},
      {"--cursor", "cursor", "Continue after a previous page (printed at its end)"},
      {"--order", "order", "newest (default) or oldest first"},
  };
  args->values.resize(filters.size());
  for (size_t i = 0; i < filters.size(); ++i) {
    const auto& [flag, field, help] = filters[i];
    args->options.emplace_back(field, cmd->add_option(flag, args->values[i], help));
  }
  cmd->add_option("--format", args->format, "table (default), json or csv");
  cmd->add_flag("--all", args->all,
                "Every matching row instead of one page (json then prints JSON Lines)");
  cmd->callback([args] { run_audit(*args); });
}

}  // namespace t2::cli
