#include <l04/cache/response_cache.hpp>
#include <l04/store/schema.hpp>

namespace l04 {

ResponseCache::ResponseCache(std::unique_ptr<Db> db, CacheConfig cfg, Clock& clock)
    : m_db(std::move(db)), m_cfg(cfg), m_clock(clock) {}

std::optional<InferenceResponse> ResponseCache::lookup(const CacheKey& key) {
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    auto st = m_db->prepare(
        "SELECT id, model_id, provider, content, finish_reason, tool_calls, prompt_tokens, completion_tokens, "
        "cost_usd, created_ms, expires_ms FROM cache_entries WHERE key = ?");
    if (!st) return std::nullopt;
    st->bind(1, key.exact);
    auto row = st->step();
    if (!row || !*row || st->col_int(10) <= now) {
        (void)bump_counter(*m_db, CounterId::cache_misses);
        return std::nullopt;
    }
    InferenceResponse r;
    const auto id = st->col_int(0);
    r.model_id = st->col_text(1);
    r.provider = st->col_text(2);
    r.content = st->col_text(3);
    r.finish_reason = st->col_text(4);
    r.tool_calls = decode_tool_calls(st->col_blob(5));
    r.token_usage.prompt_tokens = st->col_int(6);
    r.token_usage.completion_tokens = st->col_int(7);
    r.token_usage.total_tokens = r.token_usage.prompt_tokens + r.token_usage.completion_tokens;
    r.metadata["original_cost_usd"] = std::to_string(st->col_double(8));
    r.metadata["cached_at"] = std::to_string(st->col_int(9));
    r.cached = true;
    r.cache_hit = CacheHit::exact;
    r.similarity = 1.0;
    r.cost_usd = 0;
    st = m_db->prepare("UPDATE cache_entries SET last_used_ms = ?, hits = hits + 1 WHERE id = ?");
    if (st) {
        st->bind(1, now).bind(2, id);
        (void)st->run();
    }
    (void)bump_counter(*m_db, CounterId::cache_exact_hits);
    return r;
}

Status ResponseCache::store(const CacheKey& key, const InferenceResponse& resp) {
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    auto tx = Transaction::begin(*m_db);
    if (!tx) return fail(tx.error());
    auto st = m_db->prepare(
        "INSERT INTO cache_entries(key, scope, target, model_id, provider, prompt, content, finish_reason, "
        "tool_calls, prompt_tokens, completion_tokens, cost_usd, created_ms, expires_ms, last_used_ms, bytes) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET model_id=excluded.model_id, provider=excluded.provider, "
        "content=excluded.content, finish_reason=excluded.finish_reason, tool_calls=excluded.tool_calls, "
        "prompt_tokens=excluded.prompt_tokens, completion_tokens=excluded.completion_tokens, "
        "cost_usd=excluded.cost_usd, created_ms=excluded.created_ms, expires_ms=excluded.expires_ms, "
        "last_used_ms=excluded.last_used_ms, bytes=excluded.bytes");
    if (!st) return fail(st.error());
    const std::string tools = encode_tool_calls(resp.tool_calls);
    const auto bytes = static_cast<std::int64_t>(resp.content.size() + key.prompt.size() + tools.size());
    st->bind(1, key.exact).bind(2, key.scope).bind(3, key.target).bind(4, resp.model_id).bind(5, resp.provider);
    st->bind(6, key.prompt).bind(7, resp.content).bind(8, resp.finish_reason);
    st->bind_blob(9, tools.data(), tools.size());
    st->bind(10, resp.token_usage.prompt_tokens).bind(11, resp.token_usage.completion_tokens);
    st->bind(12, resp.cost_usd).bind(13, now).bind(14, now + m_cfg.ttl_ms).bind(15, now).bind(16, bytes);
    if (auto r = st->run(); !r) return r;
    if (auto r = bump_counter(*m_db, CounterId::cache_stores); !r) return r;
    if (auto r = evict_locked(); !r) return fail(r.error());
    return tx->commit();
}

Result<std::int64_t> ResponseCache::evict_locked() {
    std::int64_t removed = 0;
    const auto now = m_clock.wall_ms();
    auto st = m_db->prepare("DELETE FROM cache_entries WHERE expires_ms <= ?");
    if (!st) return fail(st.error());
    st->bind(1, now);
    if (auto r = st->run(); !r) return fail(r.error());
    const auto expired = m_db->changes();
    if (expired > 0) (void)bump_counter(*m_db, CounterId::cache_expired, expired);
    removed += expired;

    auto totals = m_db->prepare("SELECT COUNT(*), COALESCE(SUM(bytes),0) FROM cache_entries");
    if (!totals) return fail(totals.error());
    auto row = totals->step();
    if (!row) return fail(row.error());
    std::int64_t count = totals->col_int(0), bytes = totals->col_int(1);
    if (count <= m_cfg.max_entries && bytes <= m_cfg.max_bytes) return removed;

    auto lru = m_db->prepare("SELECT id, bytes FROM cache_entries ORDER BY last_used_ms ASC, id ASC");
    auto del = m_db->prepare("DELETE FROM cache_entries WHERE id = ?");
    if (!lru) return fail(lru.error());
    if (!del) return fail(del.error());
    std::int64_t evicted = 0;
    while (count > m_cfg.max_entries || bytes > m_cfg.max_bytes) {
        auto r = lru->step();
        if (!r) return fail(r.error());
        if (!*r) break;
        del->reset();
        del->bind(1, lru->col_int(0));
        if (auto d = del->run(); !d) return fail(d.error());
        --count;
        bytes -= lru->col_int(1);
        ++evicted;
    }
    if (evicted > 0) (void)bump_counter(*m_db, CounterId::cache_evictions, evicted);
    return removed + evicted;
}

CacheStats ResponseCache::stats() {
    std::lock_guard lk(m_mu);
    CacheStats s;
    s.enabled = m_cfg.enabled;
    auto st = m_db->prepare(
        "SELECT COUNT(*), COALESCE(SUM(bytes),0), COALESCE(MIN(created_ms),0), COALESCE(MAX(created_ms),0) "
        "FROM cache_entries WHERE expires_ms > ?");
    if (st) {
        st->bind(1, m_clock.wall_ms());
        if (auto r = st->step(); r && *r) {
            s.entries = st->col_int(0);
            s.bytes = st->col_int(1);
            s.oldest_ms = st->col_int(2);
            s.newest_ms = st->col_int(3);
        }
    }
    s.exact_hits = read_counter(*m_db, CounterId::cache_exact_hits);
    s.semantic_hits = read_counter(*m_db, CounterId::cache_semantic_hits);
    s.misses = read_counter(*m_db, CounterId::cache_misses);
    s.evictions = read_counter(*m_db, CounterId::cache_evictions);
    s.expired = read_counter(*m_db, CounterId::cache_expired);
    s.stores = read_counter(*m_db, CounterId::cache_stores);
    s.embed_failures = read_counter(*m_db, CounterId::cache_embed_failures);
    return s;
}

Result<std::int64_t> ResponseCache::clear(const std::string& model, std::optional<std::int64_t> older_than_ms) {
    std::lock_guard lk(m_mu);
    std::string sql = "DELETE FROM cache_entries WHERE 1=1";
    if (!model.empty()) sql += " AND (model_id = ?1 OR target = ?1)";
    if (older_than_ms) sql += " AND created_ms < ?2";
    auto st = m_db->prepare(sql);
    if (!st) return fail(st.error());
    if (!model.empty()) st->bind(1, model);
    if (older_than_ms) st->bind(2, m_clock.wall_ms() - *older_than_ms);
    if (auto r = st->run(); !r) return fail(r.error());
    return static_cast<std::int64_t>(m_db->changes());
}

Result<std::int64_t> ResponseCache::prune() {
    std::lock_guard lk(m_mu);
    auto tx = Transaction::begin(*m_db);
    if (!tx) return fail(tx.error());
    auto r = evict_locked();
    if (!r) return r;
    if (auto c = tx->commit(); !c) return fail(c.error());
    return r;
}

}  // namespace l04
