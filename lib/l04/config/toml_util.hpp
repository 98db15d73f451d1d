#pragma once
// Internal: parses TOML text, turning toml++'s exception into an Error that
// names source:line:column.
#include <l04/core/error.hpp>

#include <toml++/toml.h>

#include <sstream>
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

// A scalar's text as the settings and templates take it ("" for tables and arrays).
inline std::string toml_value_text(const toml::node& n) {
    if (auto s = n.as_string()) return s->get();
    if (auto i = n.as_integer()) return std::to_string(i->get());
    if (auto f = n.as_floating_point()) {
        std::ostringstream o;
        o << f->get();
        return o.str();
    }
    if (auto b = n.as_boolean()) return b->get() ? "true" : "false";
    return {};
}

}  // namespace l04::detail
