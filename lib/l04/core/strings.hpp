#pragma once
// Small string helpers shared by every stage.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

std::string_view trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
// Edit distance (insert, delete, substitute), for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);
// Up to n candidates closest to `name` (by edit distance, then substring).
std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& candidates,
                                       std::size_t n = 3);
// "90s", "15m", "24h", "7d", "250ms", or a bare number of seconds → ms.
std::optional<std::int64_t> parse_duration_ms(std::string_view s);
// Parses a boolean the way environment variables spell them.
std::optional<bool> parse_bool(std::string_view s);
// Percent-encodes s for a URL query value (RFC 3986 unreserved kept).
std::string url_encode(std::string_view s);
// Seconds since epoch → "2026-11-22T17:24:18Z".
std::string iso8601_utc(std::int64_t wall_ms);

}  // namespace l04
