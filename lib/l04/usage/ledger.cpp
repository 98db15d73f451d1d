#include <l04/usage/ledger.hpp>
#include <l04/core/strings.hpp>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <iterator>
#include <map>

namespace l04 {

Ledger::Ledger(std::unique_ptr<Db> db, bool background) : m_db(std::move(db)) {
    if (background) m_writer = std::thread([this] { writer_loop(); });
}

Ledger::~Ledger() {
    {
        std::lock_guard lk(m_q_mu);
        m_stop = true;
    }
    m_cv.notify_all();
    if (m_writer.joinable()) m_writer.join();
    (void)flush();
}

Status Ledger::record(const UsageRow& r) {
    if (!m_writer.joinable()) {
        std::lock_guard lk(m_mu);
        return write_locked({r});
    }
    bool wake;
    {
        std::lock_guard lk(m_q_mu);
        m_pending.push_back(r);
        // Wake the writer only to start a batch or to cut a full one: a
        // wake-up per row would cost a context switch per request.
        wake = m_pending.size() == 1 || m_pending.size() == 256;
    }
    if (wake) m_cv.notify_one();
    return {};
}

Status Ledger::flush() {
    // Holding the connection across take-and-write means a flush returns only
    // once every row queued before it is committed (budget checks rely on it).
    std::lock_guard lk(m_mu);
    std::vector<UsageRow> rows;
    {
        std::lock_guard q(m_q_mu);
        rows.swap(m_pending);
    }
    if (rows.empty()) return {};
    auto st = write_locked(rows);
    if (!st) {
        // Keep the rows (in order) for the next flush instead of losing them.
        std::lock_guard q(m_q_mu);
        rows.insert(rows.end(), std::make_move_iterator(m_pending.begin()), std::make_move_iterator(m_pending.end()));
        m_pending.swap(rows);
    }
    return st;
}

void Ledger::writer_loop() {
    std::unique_lock lk(m_q_mu);
    while (!m_stop) {
        m_cv.wait(lk, [&] { return m_stop || !m_pending.empty(); });
        if (m_stop) break;
        // Let a few more rows join the batch.
        m_cv.wait_for(lk, std::chrono::milliseconds(25), [&] { return m_stop || m_pending.size() >= 256; });
        lk.unlock();
        if (auto st = flush(); !st) spdlog::warn("usage ledger write failed: {}", st.error().to_string());
        lk.lock();
    }
}

Status Ledger::checkpoint() {
    if (auto f = flush(); !f) return f;
    std::lock_guard lk(m_mu);
    return m_db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

Status Ledger::write_locked(const std::vector<UsageRow>& rows) {
    auto tx = Transaction::begin(*m_db);
    if (!tx) return fail(tx.error());
    auto st = m_db->prepare(
        "INSERT INTO usage(request_id, time_ms, agent, model, provider, prompt_tokens, completion_tokens, estimated, "
        "cost_usd, saved_usd, latency_ms, ttft_ms, cached, stream, status, error_code, attempts, metadata) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st) return fail(st.error());
    for (const auto& r : rows) {
        st->reset();
        st->bind(1, r.request_id).bind(2, r.time_ms).bind(3, r.agent).bind(4, r.model).bind(5, r.provider);
        st->bind(6, r.usage.prompt_tokens).bind(7, r.usage.completion_tokens).bind(8, r.usage.estimated ? 1 : 0);
        st->bind(9, r.cost_usd).bind(10, r.saved_usd).bind(11, r.latency_ms);
        if (r.ttft_ms) st->bind(12, *r.ttft_ms);
        else st->bind_null(12);
        st->bind(13, static_cast<int>(r.cached)).bind(14, r.stream ? 1 : 0).bind(15, r.status);
        if (r.error_code) st->bind(16, *r.error_code);
        else st->bind_null(16);
        st->bind(17, r.attempts);
        st->bind(18, r.metadata.empty() ? std::string() : nlohmann::json(r.metadata).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        if (auto rr = st->run(); !rr) return rr;
    }
    return tx->commit();
}

Result<UsageTotals> Ledger::totals(std::int64_t since_ms, const std::string& agent) {
    if (auto f = flush(); !f) return fail(f.error());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare(
        "SELECT COUNT(*), COALESCE(SUM(status != 'ok'),0), COALESCE(SUM(cached != 0),0), "
        "COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), COALESCE(SUM(cost_usd),0), "
        "COALESCE(SUM(saved_usd),0) FROM usage WHERE time_ms >= ?1 AND (?2 = '' OR agent = ?2)");
    if (!st) return fail(st.error());
    st->bind(1, since_ms).bind(2, agent);
    auto r = st->step();
    if (!r) return fail(r.error());
    UsageTotals t;
    t.requests = st->col_int(0);
    t.errors = st->col_int(1);
    t.cached = st->col_int(2);
    t.prompt_tokens = st->col_int(3);
    t.completion_tokens = st->col_int(4);
    t.cost_usd = st->col_double(5);
    t.saved_usd = st->col_double(6);
    return t;
}

Result<std::vector<UsageRow>> Ledger::rows_since(std::int64_t since_ms) {
    if (auto f = flush(); !f) return fail(f.error());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare(
        "SELECT request_id, time_ms, agent, model, provider, prompt_tokens, completion_tokens, estimated, cost_usd, "
        "saved_usd, latency_ms, ttft_ms, cached, stream, status, error_code, attempts, metadata FROM usage "
        "WHERE time_ms >= ? "
        "ORDER BY time_ms, id");
    if (!st) return fail(st.error());
    st->bind(1, since_ms);
    std::vector<UsageRow> out;
    while (true) {
        auto r = st->step();
        if (!r) return fail(r.error());
        if (!*r) break;
        UsageRow u;
        u.request_id = st->col_text(0);
        u.time_ms = st->col_int(1);
        u.agent = st->col_text(2);
        u.model = st->col_text(3);
        u.provider = st->col_text(4);
        u.usage.prompt_tokens = st->col_int(5);
        u.usage.completion_tokens = st->col_int(6);
        u.usage.total_tokens = u.usage.prompt_tokens + u.usage.completion_tokens;
        u.usage.estimated = st->col_int(7) != 0;
        u.cost_usd = st->col_double(8);
        u.saved_usd = st->col_double(9);
        u.latency_ms = st->col_double(10);
        if (!st->col_null(11)) u.ttft_ms = st->col_double(11);
        u.cached = static_cast<CacheHit>(st->col_int(12));
        u.stream = st->col_int(13) != 0;
        u.status = st->col_text(14);
        if (!st->col_null(15)) u.error_code = static_cast<int>(st->col_int(15));
        u.attempts = static_cast<int>(st->col_int(16));
        if (const std::string md = st->col_text(17); !md.empty()) {
            auto j = nlohmann::json::parse(md, nullptr, false);
            if (j.is_object())
                for (const auto& [k, v] : j.items()) u.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
        out.push_back(std::move(u));
    }
    return out;
}

Result<std::vector<UsageGroup>> Ledger::report(std::int64_t since_ms, const std::string& by, const std::string& agent) {
    if (!by.empty() && by != "model" && by != "provider" && by != "agent" && by != "day")
        return fail(ErrorCode::invalid_parameter, "--by must be model, provider, agent or day");
    auto rows = rows_since(since_ms);
    if (!rows) return fail(rows.error());
    std::map<std::string, UsageGroup> groups;
    std::map<std::string, std::vector<double>> latencies;
    for (const auto& r : *rows) {
        if (!agent.empty() && r.agent != agent) continue;
        std::string key = by == "model" ? r.model
                          : by == "provider" ? r.provider
                          : by == "agent" ? r.agent
                          : by == "day" ? iso8601_utc(r.time_ms).substr(0, 10)
                                        : std::string("total");
        if (key.empty()) key = "(none)";
        auto& g = groups[key];
        g.key = key;
        ++g.requests;
        if (r.status != "ok") ++g.errors;
        if (r.cached != CacheHit::none) ++g.cached;
        g.prompt_tokens += r.usage.prompt_tokens;
        g.completion_tokens += r.usage.completion_tokens;
        g.cost_usd += r.cost_usd;
        g.saved_usd += r.saved_usd;
        latencies[key].push_back(r.latency_ms);
    }
    std::vector<UsageGroup> out;
    for (auto& [k, g] : groups) {
        auto& l = latencies[k];
        std::sort(l.begin(), l.end());
        auto pct = [&](double p) {
            std::size_t i = static_cast<std::size_t>(p * static_cast<double>(l.size() - 1) + 0.5);
            return l[std::min(i, l.size() - 1)];
        };
        g.p50_latency_ms = pct(0.50);
        g.p95_latency_ms = pct(0.95);
        out.push_back(g);
    }
    return out;
}

Result<std::vector<UsageAggregate>> Ledger::aggregates() {
    if (auto f = flush(); !f) return fail(f.error());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare(
        "SELECT provider, model, status, COUNT(*), SUM(CASE WHEN cached = 0 THEN prompt_tokens ELSE 0 END), "
        "SUM(CASE WHEN cached = 0 THEN completion_tokens ELSE 0 END), SUM(cost_usd) FROM usage "
        "GROUP BY provider, model, status");
    if (!st) return fail(st.error());
    std::vector<UsageAggregate> out;
    while (true) {
        auto r = st->step();
        if (!r) return fail(r.error());
        if (!*r) break;
        out.push_back({st->col_text(0), st->col_text(1), st->col_text(2), st->col_int(3), st->col_int(4), st->col_int(5),
                       st->col_double(6)});
    }
    return out;
}

Result<std::int64_t> Ledger::prune(std::int64_t before_ms) {
    if (auto f = flush(); !f) return fail(f.error());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare("DELETE FROM usage WHERE time_ms < ?");
    if (!st) return fail(st.error());
    st->bind(1, before_ms);
    if (auto r = st->run(); !r) return fail(r.error());
    return static_cast<std::int64_t>(m_db->changes());
}

}  // namespace l04
