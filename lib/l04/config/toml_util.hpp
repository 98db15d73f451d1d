#pragma once
// Internal: parses TOML text, turning toml++'s exception into an Error that
// names source:line:column.
#include <l04/core/error.hpp>

#include <toml++/toml.h>

#include <string>
#include <string_view>

namespace l04::detail {

inline std::string toml_where(const std::string& src, const toml::source_region& r) {
    return src + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

inline Result<toml::table> parse_toml(std::string_view text, const std::string& src, ErrorCode code) {
    try {
        return toml::parse(text, src);
    } catch (const toml::parse_error& e) {
        return fail(code, toml_where(src, e.source()) + ": " + std::string(e.description()));
    }
}

}  // namespace l04::detail
