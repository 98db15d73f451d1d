#pragma once
// Small string helpers shared by every stage.
#include <l04/core/error.hpp>

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
// One "key=first[/second]" entry of a settings list such as
// rate_limit.scopes = "provider:openai=500/200000, model:gpt-4o=100".
struct PairEntry {
    std::string entry;  // the whole entry, for messages
    std::string key;
    std::string first;
    std::optional<std::string> second;
};
// Splits spec at ',' or ';' into trimmed entries. Fails with E4004
// "<setting>: '<entry>': <why> (expected <form>)" on a missing '=', an empty
// key or a key given twice.
Result<std::vector<PairEntry>> parse_pair_list(std::string_view spec, std::string_view setting,
                                               std::string_view form);
// The E4004 error parse_pair_list uses, for callers checking values.
Error pair_list_error(std::string_view setting, std::string_view entry, std::string_view why, std::string_view form);

// Seconds since epoch → "2026-11-22T17:24:18Z".
std::string iso8601_utc(std::int64_t wall_ms);

// Replaces every occurrence of each secret (whole values only; secrets
// shorter than 8 characters are skipped so that a key like "x" cannot
// mangle ordinary text) with "[redacted]".
std::string redact_secrets(std::string s, const std::vector<std::string>& secrets);
// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view in);

}  // namespace l04
