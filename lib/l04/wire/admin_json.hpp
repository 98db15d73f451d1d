#pragma once
// The admin answers l04d gives and l04ctl reads (/health, /v1/cache/stats):
// one encoder used by server/api.cpp and one typed decoder used by l04ctl,
// so the two cannot disagree on a name. The decoders never throw: a field
// that is missing or of another type (an l04d of another version) reads as
// its default, and the caller prints what it has instead of aborting.
#include <l04/cache/response_cache.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace l04 {

// j[key] when it is present and holds a T, else `def`. Never throws.
template <class T>
T json_field(const nlohmann::json& j, const char* key, T def) {
    if (!j.is_object()) return def;
    auto it = j.find(key);
    if (it == j.end()) return def;
    if constexpr (std::is_same_v<T, bool>) {
        return it->is_boolean() ? it->template get<bool>() : def;
    } else if constexpr (std::is_arithmetic_v<T>) {
        return it->is_number() ? it->template get<T>() : def;
    } else if constexpr (std::is_same_v<T, std::string>) {
        return it->is_string() ? it->template get<std::string>() : def;
    } else {
        static_assert(std::is_same_v<T, nlohmann::json>, "json_field: bool, a number, std::string or json");
        return *it;
    }
}

// /v1/cache/stats (also the "cache" object of /health). `oldest`/`newest`
// are ISO 8601 UTC, null for an empty cache.
nlohmann::json cache_stats_to_json(const CacheStats& s);
struct CacheStatsView {
    CacheStats stats;
    std::string oldest;  // "" when absent
    std::string newest;
};
CacheStatsView cache_stats_from_json(const nlohmann::json& j);

// /health as l04ctl health prints it.
struct HealthView {
    std::string gateway = "unknown";  // healthy, degraded, unhealthy
    std::string version;
    long long pid = 0;
    bool daemon = true;
    long long total_models = 0;
    long long cache_entries = 0;
    long long pending_requests = 0;
    long long active_requests = 0;
    struct Provider {
        std::string id;
        std::string status = "unknown";
        std::string circuit = "unknown";
        double latency_ms = 0;
        std::string message;
    };
    std::vector<Provider> providers;
};
HealthView health_from_json(const nlohmann::json& j);

}  // namespace l04
