#include <l04/wire/admin_json.hpp>
#include <l04/core/strings.hpp>

namespace l04 {

using nlohmann::json;

json cache_stats_to_json(const CacheStats& s) {
    return {{"enabled", s.enabled},
            {"entries", s.entries},
            {"bytes", s.bytes},
            {"hits", s.exact_hits + s.semantic_hits},
            {"exact_hits", s.exact_hits},
            {"semantic_hits", s.semantic_hits},
            {"misses", s.misses},
            {"hit_rate", s.hit_rate()},
            {"stores", s.stores},
            {"evictions", s.evictions},
            {"expired", s.expired},
            {"embed_failures", s.embed_failures},
            {"semantic", !s.embedder.empty()},
            {"embedder", s.embedder},
            {"similarity_threshold", s.similarity_threshold},
            {"semantic_guard", s.semantic_guard},
            {"semantic_margin", s.semantic_margin},
            {"guard_refusals", s.guard_refusals},
            {"ambiguous", s.ambiguous},
            {"index_size", s.index_size},
            {"index_deleted", s.index_deleted},
            {"index_loaded", s.index_loaded},
            {"oldest", s.oldest_ms ? json(iso8601_utc(s.oldest_ms)) : json(nullptr)},
            {"newest", s.newest_ms ? json(iso8601_utc(s.newest_ms)) : json(nullptr)}};
}

CacheStatsView cache_stats_from_json(const json& j) {
    CacheStatsView v;
    CacheStats& s = v.stats;
    s.enabled = json_field(j, "enabled", false);
    s.entries = json_field<std::int64_t>(j, "entries", 0);
    s.bytes = json_field<std::int64_t>(j, "bytes", 0);
    s.exact_hits = json_field<std::int64_t>(j, "exact_hits", 0);
    s.semantic_hits = json_field<std::int64_t>(j, "semantic_hits", 0);
    s.misses = json_field<std::int64_t>(j, "misses", 0);
    s.stores = json_field<std::int64_t>(j, "stores", 0);
    s.evictions = json_field<std::int64_t>(j, "evictions", 0);
    s.expired = json_field<std::int64_t>(j, "expired", 0);
    s.embed_failures = json_field<std::int64_t>(j, "embed_failures", 0);
    s.embedder = json_field<std::string>(j, "embedder", "");
    s.similarity_threshold = json_field(j, "similarity_threshold", 0.0);
    s.semantic_guard = json_field(j, "semantic_guard", false);
    s.semantic_margin = json_field(j, "semantic_margin", 0.0);
    s.guard_refusals = json_field<std::int64_t>(j, "guard_refusals", 0);
    s.ambiguous = json_field<std::int64_t>(j, "ambiguous", 0);
    s.index_size = json_field<std::int64_t>(j, "index_size", 0);
    s.index_deleted = json_field<std::int64_t>(j, "index_deleted", 0);
    s.index_loaded = json_field(j, "index_loaded", false);
    v.oldest = json_field<std::string>(j, "oldest", "");
    v.newest = json_field<std::string>(j, "newest", "");
    return v;
}

HealthView health_from_json(const json& j) {
    HealthView h;
    h.gateway = json_field<std::string>(j, "gateway", "unknown");
    h.version = json_field<std::string>(j, "version", "");
    h.pid = json_field<long long>(j, "pid", 0);
    h.daemon = json_field(j, "daemon", true);
    h.total_models = json_field<long long>(json_field<json>(j, "registry", json::object()), "total_models", 0);
    h.cache_entries = json_field<long long>(json_field<json>(j, "cache", json::object()), "entries", 0);
    const json queue = json_field<json>(j, "queue", json::object());
    h.pending_requests = json_field<long long>(queue, "pending_requests", 0);
    h.active_requests = json_field<long long>(queue, "active_requests", 0);
    const json providers = json_field<json>(j, "providers", json::object());
    if (providers.is_object()) {
        for (const auto& [id, p] : providers.items()) {
            HealthView::Provider pv;
            pv.id = id;
            pv.status = json_field<std::string>(p, "status", "unknown");
            pv.circuit = json_field<std::string>(p, "circuit", "unknown");
            pv.latency_ms = json_field(p, "latency_ms", 0.0);
            pv.message = json_field<std::string>(p, "message", "");
            h.providers.push_back(std::move(pv));
        }
    }
    return h;
}

}  // namespace l04
