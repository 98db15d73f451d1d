// The admin side of the Gateway: what /metrics, /v1/limits, /v1/cache/*
// and /v1/usage answer, and l04d's housekeeping. The API renders these
// reports; it never reaches into a stage itself.
#include <l04/gateway.hpp>

namespace l04 {

std::string Gateway::metrics_text() {
    refresh_metrics();
    return m_metrics.render();
}

LimitsReport Gateway::limits() {
    LimitsReport r;
    r.buckets = m_limiter->buckets();
    for (const auto& [id, info] : m_registry.providers()) r.circuits.emplace_back(id, m_breaker->snapshot(id));
    return r;
}

Result<CacheSearchReport> Gateway::search_cache(const std::string& text, std::size_t k) {
    if (!m_cache->config().semantic || !m_cache->embedder())
        return fail(Error(ErrorCode::config_error,
                          "the semantic cache is off: set cache.semantic = true and cache.embedder "
                          "(builtin, ollama or openai)"));
    CacheSearchReport r;
    L04_TRY_ASSIGN(r.hits, m_cache->search(text, k));
    r.threshold = m_cache->config().similarity_threshold;
    r.embedder = m_cache->embedder()->name();
    return r;
}

Result<CacheCleared> Gateway::clear_cache(const std::string& model, std::optional<std::int64_t> older_than_ms) {
    CacheCleared c;
    L04_TRY_ASSIGN(c.answers, m_cache->clear(model, older_than_ms));
    // Cached embeddings go with the answers (a re-pulled model must not keep
    // serving the old vectors).
    L04_TRY_ASSIGN(c.embeddings, clear_embeddings(model, older_than_ms));
    return c;
}

Result<std::int64_t> Gateway::prune_cache() { return m_cache->prune(); }

Result<UsageReport> Gateway::usage_report(std::int64_t since_ms, const std::string& by, const std::string& agent) {
    UsageReport r;
    L04_TRY_ASSIGN(r.groups, m_ledger->report(since_ms, by, agent));
    L04_TRY_ASSIGN(auto total, m_ledger->report(since_ms, "", agent));
    r.total = total.empty() ? UsageGroup{"total"} : total.front();
    return r;
}

Status Gateway::checkpoint() { return m_ledger->checkpoint(); }

Status Gateway::flush_ledger() { return m_ledger->flush(); }

void Gateway::warm_cache() { m_cache->warm_index(); }

void Gateway::flush_pending() {
    m_limiter->flush();
    // On failure (another process holding the write lock past the busy
    // wait) the counts stay pending for the next second.
    (void)m_cache->flush_counts();
}

}  // namespace l04
