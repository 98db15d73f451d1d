#include <l04/provider/provider.hpp>
#include <l04/core/strings.hpp>

#include <cmath>
#include <cstdlib>
#include <ctime>

namespace l04 {

std::string_view health_state_name(HealthState s) {
    switch (s) {
        case HealthState::healthy: return "healthy";
        case HealthState::degraded: return "degraded";
        case HealthState::unhealthy: return "unhealthy";
        case HealthState::unconfigured: return "unconfigured";
    }
    return "unhealthy";
}

namespace {

std::optional<std::string> header(const std::map<std::string, std::string>& h, const std::string& name) {
    auto it = h.find(name);
    if (it == h.end()) return std::nullopt;
    return it->second;
}

// "1s", "6m0s", "20ms", "0.5s", "1h2m3.5s" (OpenAI x-ratelimit-reset-*).
std::optional<double> parse_go_duration_s(std::string_view s) {
    double total = 0;
    bool any = false;
    while (!s.empty()) {
        char* end = nullptr;
        std::string tmp(s);
        double v = std::strtod(tmp.c_str(), &end);
        std::size_t used = static_cast<std::size_t>(end - tmp.c_str());
        if (used == 0) return std::nullopt;
        s.remove_prefix(used);
        double mult = 1;
        if (s.substr(0, 2) == "ms") { mult = 0.001; s.remove_prefix(2); }
        else if (!s.empty() && s[0] == 's') { mult = 1; s.remove_prefix(1); }
        else if (!s.empty() && s[0] == 'm') { mult = 60; s.remove_prefix(1); }
        else if (!s.empty() && s[0] == 'h') { mult = 3600; s.remove_prefix(1); }
        else if (s.empty()) { mult = 1; }
        else return std::nullopt;
        total += v * mult;
        any = true;
    }
    if (!any) return std::nullopt;
    return total;
}

// RFC 3339 "2024-11-05T12:34:56Z" → ms since epoch.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view s) {
    std::tm tm{};
    std::string tmp(s);
    const char* p = strptime(tmp.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return std::nullopt;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

std::optional<std::chrono::milliseconds> retry_after_from(const std::map<std::string, std::string>& h,
                                                          std::int64_t now_ms) {
    using ms = std::chrono::milliseconds;
    if (auto v = header(h, "retry-after-ms")) {
        char* end = nullptr;
        double d = std::strtod(v->c_str(), &end);
        if (end != v->c_str() && d >= 0) return ms(static_cast<std::int64_t>(d));
    }
    if (auto v = header(h, "retry-after")) {
        char* end = nullptr;
        double d = std::strtod(v->c_str(), &end);
        if (end != v->c_str() && *end == '\0' && d >= 0) return ms(static_cast<std::int64_t>(d * 1000));
        // HTTP-date form
        std::tm tm{};
        if (strptime(v->c_str(), "%a, %d %b %Y %H:%M:%S", &tm)) {
            auto at = static_cast<std::int64_t>(timegm(&tm)) * 1000;
            return ms(std::max<std::int64_t>(0, at - now_ms));
        }
    }
    // OpenAI: x-ratelimit-reset-requests / -tokens as Go durations; take the
    // larger of those whose remaining count is 0, else the smaller.
    std::optional<double> best;
    for (const char* kind : {"requests", "tokens"}) {
        auto reset = header(h, std::string("x-ratelimit-reset-") + kind);
        if (!reset) continue;
        auto secs = parse_go_duration_s(*reset);
        if (!secs) continue;
        auto remaining = header(h, std::string("x-ratelimit-remaining-") + kind);
        bool exhausted = remaining && std::strtoll(remaining->c_str(), nullptr, 10) <= 0;
        if (exhausted) best = std::max(best.value_or(0), *secs);
        else if (!best) best = *secs;
    }
    if (best) return ms(static_cast<std::int64_t>(std::ceil(*best * 1000)));
    // Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset (RFC 3339).
    std::optional<std::int64_t> latest;
    for (const char* kind : {"requests", "tokens", "input-tokens", "output-tokens"}) {
        auto reset = header(h, std::string("anthropic-ratelimit-") + kind + "-reset");
        if (!reset) continue;
        if (auto at = parse_rfc3339_ms(*reset)) {
            auto rem = header(h, std::string("anthropic-ratelimit-") + kind + "-remaining");
            if (rem && std::strtoll(rem->c_str(), nullptr, 10) > 0) continue;
            latest = std::max(latest.value_or(0), *at - now_ms);
        }
    }
    if (latest) return ms(std::max<std::int64_t>(0, *latest));
    // OpenRouter & others: x-ratelimit-reset as epoch ms (or s).
    if (auto v = header(h, "x-ratelimit-reset")) {
        double d = std::strtod(v->c_str(), nullptr);
        if (d > 1e12) return ms(std::max<std::int64_t>(0, static_cast<std::int64_t>(d) - now_ms));
        if (d > 1e9) return ms(std::max<std::int64_t>(0, static_cast<std::int64_t>(d * 1000) - now_ms));
        if (d > 0) return ms(static_cast<std::int64_t>(d * 1000));
    }
    return std::nullopt;
}

bool contains_i(std::string_view hay, std::string_view needle) {
    return to_lower(hay).find(to_lower(needle)) != std::string::npos;
}

}  // namespace

Error error_from_http(int status, std::string_view body, const std::map<std::string, std::string>& headers,
                      std::string_view provider, std::int64_t now_wall_ms) {
    const std::string who = std::string(provider);
    const std::string st = std::to_string(status);
    Error e;
    if (status == 400 || status == 413 || status == 422) {
        if (contains_i(body, "context_length") || contains_i(body, "context length") ||
            contains_i(body, "maximum context") || contains_i(body, "prompt is too long") ||
            contains_i(body, "too many tokens")) {
            e = Error(ErrorCode::context_length_exceeded, who + " rejected the request: context length exceeded");
        } else {
            e = Error(ErrorCode::provider_bad_request, who + " rejected the request as invalid (HTTP " + st + ")");
        }
        e.retryable = false;
        e.http_status = 400;
    } else if (status == 401 || status == 403) {
        e = Error(ErrorCode::auth_failed, who + " refused the credentials (HTTP " + st + "); check the API key");
        e.retryable = false;
    } else if (status == 404) {
        e = Error(ErrorCode::provider_model_not_found, who + " does not know this model or endpoint (HTTP 404)");
        e.retryable = false;
        e.http_status = 404;
    } else if (status == 408 || status == 504) {
        e = Error(ErrorCode::timeout, who + " timed out (HTTP " + st + ")");
        e.retryable = true;
    } else if (status == 429) {
        bool quota = contains_i(body, "insufficient_quota") || contains_i(body, "quota") ||
                     contains_i(body, "billing") || contains_i(body, "credit balance");
        if (quota) {
            e = Error(ErrorCode::quota_exhausted, who + " quota exhausted (HTTP 429); check the account's plan and billing");
            e.retryable = false;
        } else {
            e = Error(ErrorCode::rate_limit_exceeded, who + " rate limit exceeded (HTTP 429)");
            e.retryable = true;
        }
        e.http_status = 429;
    } else if (status == 529 || status == 503) {
        e = Error(ErrorCode::provider_overloaded, who + " is overloaded (HTTP " + st + ")");
        e.retryable = true;
    } else if (status >= 500) {
        e = Error(ErrorCode::provider_unavailable, who + " server error (HTTP " + st + ")");
        e.retryable = true;
    } else {
        e = Error(ErrorCode::provider_error, who + " answered HTTP " + st);
        e.retryable = false;
    }
    // A wait only means something when waiting can help (429, 408, 5xx):
    // OpenAI sends x-ratelimit-reset-* on every answer, 400s included.
    if (status == 429 || status == 408 || status >= 500) e.retry_after = retry_after_from(headers, now_wall_ms);
    std::string detail(body.substr(0, 2000));
    e.details = std::string(trim(detail));
    return e;
}

}  // namespace l04
