// Request targets: percent-decoding and the query string as (name, value)
// pairs, in order. Malformed escapes are kept literally rather than refused.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace t2::coordinator {

// "%2F" -> "/"; with plus_is_space (query strings), "+" -> " ".
std::string url_decode(std::string_view text, bool plus_is_space);

// "/v1/jobs?state=running&limit=5" -> "/v1/jobs", {{"state","running"},{"limit","5"}}.
void split_target(const std::string& target, std::string& path,
                  std::vector<std::pair<std::string, std::string>>& query);

// "%" escapes for a query value (the client side).
std::string url_encode(std::string_view text);

}  // namespace t2::coordinator
