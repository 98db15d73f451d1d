// GatewayConfig::from: every setting the pipeline reads, typed once.
#include <l04/gateway.hpp>

#include <algorithm>

namespace l04 {

Result<GatewayConfig> GatewayConfig::from(const Settings& s, const Registry& registry) {
    GatewayConfig c;
    c.agent = s.get("agent");
    c.request_timeout_ms = s.get_duration_ms("request.timeout");
    c.max_retries = static_cast<int>(std::clamp<std::int64_t>(s.get_int("retry.max_retries"), 0, 1000));
    c.backoff.base_ms = s.get_duration_ms("retry.base_delay");
    c.backoff.max_ms = s.get_duration_ms("retry.max_delay");
    c.context_fallback = s.get_bool("routing.context_fallback");
    c.usage_retention_ms = std::max<std::int64_t>(0, s.get_duration_ms("usage.retention"));
    c.export_url = s.get("usage.export_url");
    c.export_api_key = s.get("usage.export_api_key");

    RouterConfig& rc = c.router;
    const auto& strat = s.get("routing.strategy");
    auto strategy = parse_strategy(strat);
    if (!strategy) return fail(ErrorCode::invalid_strategy, "routing.strategy: unknown strategy '" + strat + "'");
    rc.default_strategy = *strategy;
    rc.default_model = s.get("routing.default_model");
    L04_TRY(parse_routing_settings(registry, s.get("routing.fallback_chain"), s.get("routing.fallbacks"),
                                   s.get("routing.weights"), s.get("routing.balanced_weights"), rc));
    if (!rc.default_model.empty() && !registry.find(rc.default_model))
        return fail(ErrorCode::model_not_found, "routing.default_model '" + rc.default_model + "' (from " +
                                                    s.source("routing.default_model") +
                                                    ") is not in the model registry");

    CacheConfig& cc = c.cache;
    cc.enabled = s.get_bool("cache.enabled");
    cc.ttl_ms = s.get_duration_ms("cache.ttl");
    cc.max_entries = s.get_int("cache.max_entries");
    cc.max_bytes = s.get_int("cache.max_bytes");
    cc.similarity_threshold = s.get_double("cache.similarity_threshold");
    cc.semantic = s.get_bool("cache.semantic");
    cc.semantic_guard = s.get_bool("cache.semantic_guard");
    cc.semantic_margin = std::max(0.0, s.get_double("cache.semantic_margin"));

    EmbedderConfig& ec = c.embedder;
    ec.kind = cc.semantic ? s.get("cache.embedder") : "none";
    if (ec.kind == "ollama") {
        ec.url = s.get("providers.ollama.url");
        ec.model = s.get("embedding.ollama_model");
        ec.dimensions = static_cast<std::size_t>(std::max<std::int64_t>(0, s.get_int("embedding.ollama_dimensions")));
    } else if (ec.kind == "openai") {
        ec.url = s.get("providers.openai.base_url");
        ec.api_key = s.get("providers.openai.api_key");
    }

    c.queue.default_provider_concurrency =
        static_cast<int>(std::clamp<std::int64_t>(s.get_int("queue.provider_concurrency"), 1, 1'000'000));
    return c;
}

}  // namespace l04
