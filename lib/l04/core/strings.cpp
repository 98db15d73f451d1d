#include <l04/core/strings.hpp>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <charconv>
#include <ctime>
#include <tuple>

namespace l04 {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        auto pos = s.find(sep, start);
        auto piece = trim(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
        if (!piece.empty()) out.emplace_back(piece);
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& candidates,
                                       std::size_t n) {
    // Rank by (distance with a substring bonus, real distance, name).
    std::vector<std::tuple<std::size_t, std::size_t, std::string>> scored;
    const std::string lname = to_lower(name);
    for (const auto& c : candidates) {
        const std::size_t real = edit_distance(name, c);
        std::size_t d = real;
        const std::string lc = to_lower(c);
        if (!lname.empty() && (lc.find(lname) != std::string::npos || lname.find(lc) != std::string::npos))
            d = std::min<std::size_t>(d, 1);
        scored.emplace_back(d, real, c);
    }
    std::sort(scored.begin(), scored.end());
    std::vector<std::string> out;
    const std::size_t limit = std::max<std::size_t>(3, name.size() / 2);
    for (const auto& [d, real, c] : scored) {
        if (out.size() >= n || d > limit) break;
        out.push_back(c);
    }
    return out;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view s) {
    s = trim(s);
    if (s.empty()) return std::nullopt;
    double value = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || value < 0) return std::nullopt;
    std::string_view unit(p, static_cast<std::size_t>(s.data() + s.size() - p));
    double mult = 1000;
    if (unit.empty() || unit == "s") mult = 1000;
    else if (unit == "ms") mult = 1;
    else if (unit == "m" || unit == "min") mult = 60'000;
    else if (unit == "h") mult = 3'600'000;
    else if (unit == "d") mult = 86'400'000;
    else if (unit == "w") mult = 7 * 86'400'000.0;
    else return std::nullopt;
    // "inf", "nan" and 1e300 parse as doubles; converting them to an integer
    // is undefined behaviour (UBSan found it). About 292 years at most.
    const double ms = value * mult;
    if (!std::isfinite(ms) || ms > 9.2e15) return std::nullopt;
    return static_cast<std::int64_t>(ms);
}

std::optional<bool> parse_bool(std::string_view s) {
    const auto l = to_lower(trim(s));
    if (l == "1" || l == "true" || l == "yes" || l == "on") return true;
    if (l == "0" || l == "false" || l == "no" || l == "off" || l.empty()) return false;
    return std::nullopt;
}

std::string url_encode(std::string_view s) {
    static const char* k_hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '_' ||
            u == '.' || u == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(k_hex[u >> 4]);
            out.push_back(k_hex[u & 15]);
        }
    }
    return out;
}

Error pair_list_error(std::string_view setting, std::string_view entry, std::string_view why, std::string_view form) {
    return Error(ErrorCode::config_invalid, std::string(setting) + ": '" + std::string(entry) + "': " + std::string(why) +
                                               " (expected " + std::string(form) + ")");
}

Result<std::vector<PairEntry>> parse_pair_list(std::string_view spec, std::string_view setting,
                                               std::string_view form) {
    std::string normalized(spec);
    std::replace(normalized.begin(), normalized.end(), ';', ',');
    std::vector<PairEntry> out;
    for (const auto& raw : split(normalized, ',')) {
        PairEntry e;
        e.entry = std::string(trim(raw));
        const auto eq = e.entry.find('=');
        if (eq == std::string::npos) return fail(pair_list_error(setting, e.entry, "missing '='", form));
        e.key = std::string(trim(std::string_view(e.entry).substr(0, eq)));
        if (e.key.empty()) return fail(pair_list_error(setting, e.entry, "empty name before '='", form));
        for (const auto& seen : out)
            if (seen.key == e.key) return fail(pair_list_error(setting, e.entry, "'" + e.key + "' given twice", form));
        const std::string_view values = std::string_view(e.entry).substr(eq + 1);
        const auto slash = values.find('/');
        e.first = std::string(trim(values.substr(0, slash)));
        if (slash != std::string_view::npos) e.second = std::string(trim(values.substr(slash + 1)));
        out.push_back(std::move(e));
    }
    return out;
}

std::string iso8601_utc(std::int64_t wall_ms) {
    std::time_t t = static_cast<std::time_t>(wall_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string redact_secrets(std::string s, const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
        if (secret.size() < 8) continue;
        for (auto pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos))
            s.replace(pos, secret.size(), "[redacted]");
    }
    return s;
}

std::string base64_encode(std::string_view in) {
    static const char* const k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
        out += k[(n >> 18) & 63];
        out += k[(n >> 12) & 63];
        out += k[(n >> 6) & 63];
        out += k[n & 63];
    }
    if (i + 1 == in.size()) {
        const auto n = static_cast<unsigned char>(in[i]) << 16;
        out += k[(n >> 18) & 63];
        out += k[(n >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        const auto n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
        out += k[(n >> 18) & 63];
        out += k[(n >> 12) & 63];
        out += k[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

}  // namespace l04
