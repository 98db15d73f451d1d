#include <l04/limit/sqlite_rate_limiter.hpp>

#include <l04/core/strings.hpp>
#include <l04/store/schema.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

namespace l04 {

std::string_view bucket_kind_name(BucketKind k) {
    switch (k) {
        case BucketKind::requests: return "requests";
        case BucketKind::tokens: return "tokens";
    }
    return "requests";
}

namespace {

// "0", "-" → 0 (unlimited); digits → value; else nullopt.
std::optional<std::int64_t> parse_limit(std::string_view s) {
    s = trim(s);
    if (s == "-") return 0;
    if (s.empty() || s.size() > 15) return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

// A lease holds back its whole amount while it may be used (until until_ms),
// then less and less at the bucket's refill rate: the refill it stood for is
// paid back as the bucket alone would have refilled after spending it, so
// its end never releases a step of capacity at once. In SQL over
// limit_leases (?4 = now in ms) and the same in C++.
constexpr const char* k_lease_hold = "MAX(0.0, amount - MAX(0, ?4 - until_ms) / 1000.0 * refill_per_s)";
constexpr const char* k_lease_live = "until_ms + amount * 1000.0 / refill_per_s > ?4";

double lease_hold(double amount, double refill_per_s, std::int64_t until_ms, std::int64_t now_ms) {
    return std::max(0.0, amount - static_cast<double>(std::max<std::int64_t>(0, now_ms - until_ms)) / 1000.0 * refill_per_s);
}

std::string fmt_num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

}  // namespace

Result<std::map<std::string, Limits, std::less<>>> parse_scope_limits(std::string_view spec,
                                                                      const Limits& agent_default) {
    static constexpr std::string_view k_form = "scope=rpm[/tpm], e.g. provider:openai=500/200000";
    L04_TRY_ASSIGN(auto entries, parse_pair_list(spec, "rate_limit.scopes", k_form));
    std::map<std::string, Limits, std::less<>> out;
    for (const auto& e : entries) {
        auto bad = [&](std::string_view why) { return fail(pair_list_error("rate_limit.scopes", e.entry, why, k_form)); };
        const std::string& scope = e.key;
        auto colon = scope.find(':');
        if (colon == std::string::npos || colon + 1 == scope.size()) return bad("scope must be kind:id");
        auto kind = std::string_view(scope).substr(0, colon);
        if (kind != "agent" && kind != "provider" && kind != "model")
            return bad("scope kind must be agent, provider or model");
        auto rpm = parse_limit(e.first);
        if (!rpm) return bad("requests per minute must be a non-negative integer or '-'");
        Limits l;
        l.requests_per_minute = *rpm;
        if (e.second) {
            auto tpm = parse_limit(*e.second);
            if (!tpm) return bad("tokens per minute must be a non-negative integer or '-'");
            l.tokens_per_minute = *tpm;
        } else if (kind == "agent") {
            l.tokens_per_minute = agent_default.tokens_per_minute;
        }
        out.emplace(scope, l);
    }
    return out;
}

// One bucket a request touches, with the limits of the current config.
struct SqliteRateLimiter::Need {
    std::string scope;
    BucketKind kind;
    double amount;
    double capacity;
    double refill_per_s;
};

SqliteRateLimiter::SqliteRateLimiter(std::unique_ptr<Db> db, RateLimitConfig cfg, Clock& clock)
    : m_db(std::move(db)), m_cfg(std::move(cfg)), m_clock(clock) {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(::getpid())};
    m_rng.seed(seq);
}

Result<std::unique_ptr<SqliteRateLimiter>> SqliteRateLimiter::create(std::unique_ptr<Db> db, RateLimitConfig cfg,
                                                                     Clock& clock) {
    db->set_short_busy_wait(std::chrono::milliseconds(cfg.busy_timeout_ms));
    std::unique_ptr<SqliteRateLimiter> rl(new SqliteRateLimiter(std::move(db), std::move(cfg), clock));
    L04_TRY(rl->prepare());
    (void)rl->prune_reservations();
    return rl;
}

Status SqliteRateLimiter::prepare() {
    // What each lease holds back (see k_lease_hold), summed per bucket.
    const std::string select_leased = std::string("SELECT scope, kind, SUM(") + k_lease_hold +
                                      ") FROM limit_leases WHERE scope IN (?1, ?2, ?3) AND " + k_lease_live +
                                      " GROUP BY scope, kind";
    const std::pair<Stmt*, std::string_view> statements[] = {
        {&m_select_bucket, "SELECT scope, kind, level, updated_ms FROM limit_buckets WHERE scope IN (?, ?, ?)"},
        {&m_upsert_bucket,
         "INSERT INTO limit_buckets(scope, kind, level, capacity, refill_per_s, updated_ms) "
         "VALUES(?,?,?,?,?,?) ON CONFLICT(scope, kind) DO UPDATE SET level = excluded.level, "
         "capacity = excluded.capacity, refill_per_s = excluded.refill_per_s, "
         "updated_ms = max(updated_ms, excluded.updated_ms)"},
        {&m_insert_reservation,
         "INSERT INTO limit_reservations(id, agent, provider, model, tokens, created_ms) VALUES(?,?,?,?,?,?)"},
        {&m_select_reservation, "SELECT agent, provider, model, tokens FROM limit_reservations WHERE id = ?"},
        {&m_delete_reservation, "DELETE FROM limit_reservations WHERE id = ?"},
        {&m_select_leased, select_leased},
        {&m_insert_lease,
         "INSERT INTO limit_leases(id, scope, kind, amount, refill_per_s, until_ms) VALUES(?,?,?,?,?,?)"},
        {&m_delete_lease, "DELETE FROM limit_leases WHERE id = ?"},
    };
    for (const auto& [stmt, sql] : statements) L04_TRY(m_db->prepare_into(*stmt, sql));
    return {};
}

Limits SqliteRateLimiter::limits_for(std::string_view scope) const {
    if (auto it = m_cfg.scopes.find(scope); it != m_cfg.scopes.end()) return it->second;
    if (scope.substr(0, 6) == "agent:") return m_cfg.agent_default;
    return {};
}

std::vector<SqliteRateLimiter::Need> SqliteRateLimiter::needs_for(const std::string& agent,
                                                                   const std::string& provider,
                                                                   const std::string& model, std::int64_t tokens,
                                                                   bool tokens_only) const {
    std::vector<Need> out;
    auto add = [&](std::string scope) {
        Limits l = limits_for(scope);
        if (l.requests_per_minute > 0 && !tokens_only) {
            const double cap = static_cast<double>(l.requests_per_minute);
            out.push_back(Need{scope, BucketKind::requests, 1.0, cap, cap / 60.0});
        }
        if (l.tokens_per_minute > 0) {
            const double cap = static_cast<double>(l.tokens_per_minute);
            out.push_back(Need{scope, BucketKind::tokens, static_cast<double>(std::max<std::int64_t>(0, tokens)),
                               cap, cap / 60.0});
        }
    };
    if (!agent.empty()) add("agent:" + agent);
    if (!provider.empty()) add("provider:" + provider);
    if (!model.empty()) add("model:" + model);
    return out;
}

Result<std::vector<double>> SqliteRateLimiter::load_levels(const std::vector<Need>& needs, std::int64_t now_ms,
                                                           std::vector<double>* leased) {
    std::vector<double> levels;
    levels.reserve(needs.size());
    for (const auto& n : needs) levels.push_back(n.capacity);  // new buckets start full
    if (leased) leased->assign(needs.size(), 0.0);
    if (needs.empty()) return levels;
    // Up to three distinct scopes; unused placeholders repeat the first.
    std::vector<const std::string*> scopes;
    for (const auto& n : needs)
        if (std::none_of(scopes.begin(), scopes.end(), [&](const std::string* s) { return *s == n.scope; }))
            scopes.push_back(&n.scope);
    StmtReset reset(m_select_bucket);
    for (int i = 0; i < 3; ++i)
        m_select_bucket.bind(i + 1, *scopes[std::min<std::size_t>(static_cast<std::size_t>(i), scopes.size() - 1)]);
    while (true) {
        L04_TRY_ASSIGN(auto row, m_select_bucket.step());
        if (!row) break;
        const auto scope = m_select_bucket.col_text("scope");
        const auto kind = static_cast<BucketKind>(m_select_bucket.col_int("kind"));
        for (std::size_t i = 0; i < needs.size(); ++i) {
            const auto& n = needs[i];
            if (n.kind != kind || n.scope != scope) continue;
            const double elapsed_s =
                static_cast<double>(std::max<std::int64_t>(0, now_ms - m_select_bucket.col_int("updated_ms"))) / 1000.0;
            levels[i] = std::min(n.capacity, m_select_bucket.col_double("level") + elapsed_s * n.refill_per_s);
        }
    }
    // Leases out on these buckets: what they hold back (k_lease_hold) is
    // outside the level, so the level refills only up to the capacity
    // minus it.
    StmtReset reset_leased(m_select_leased);
    for (int i = 0; i < 3; ++i)
        m_select_leased.bind(i + 1, *scopes[std::min<std::size_t>(static_cast<std::size_t>(i), scopes.size() - 1)]);
    m_select_leased.bind(4, now_ms);
    while (true) {
        L04_TRY_ASSIGN(auto row, m_select_leased.step());
        if (!row) break;
        const auto scope = m_select_leased.col_text(0);
        const auto kind = static_cast<BucketKind>(m_select_leased.col_int(1));
        const double out = m_select_leased.col_double(2);
        for (std::size_t i = 0; i < needs.size(); ++i) {
            if (needs[i].kind != kind || needs[i].scope != scope) continue;
            levels[i] = std::min(levels[i], needs[i].capacity - out);
            if (leased) (*leased)[i] = out;
        }
    }
    return levels;
}

Status SqliteRateLimiter::store_level(const Need& n, double level, std::int64_t now_ms) {
    StmtReset reset(m_upsert_bucket);
    m_upsert_bucket.bind(1, n.scope)
        .bind(2, static_cast<int>(n.kind))
        .bind(3, level)
        .bind(4, n.capacity)
        .bind(5, n.refill_per_s)
        .bind(6, now_ms);
    return m_upsert_bucket.run();
}

Result<Reservation> SqliteRateLimiter::reserve(const LimitRequest& req) {
    Reservation res;
    res.request = req;
    auto needs = needs_for(req.agent, req.provider, req.model, req.estimated_tokens, false);
    if (needs.empty()) return res;

    std::lock_guard lk(m_mu);
    if (take_from_leases(needs)) {
        res.local = true;
        return res;
    }
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    // Take the time inside the lock: transactions then see non-decreasing
    // times. A new lease's use ends lease_ms after this moment, as its row
    // does: never later than the refill it stands for.
    const auto now_ms = m_clock.wall_ms();
    const auto mono_now = m_clock.now();

    std::vector<double> out_on;  // leases out on each bucket (all processes')
    L04_TRY_ASSIGN(auto levels, load_levels(needs, now_ms, &out_on));
    // This process's leases of these buckets go back first: the decision is
    // made on everything not yet admitted. They leave the lease map only
    // once this transaction has committed (a refusal before any write, or a
    // failed write, keeps them, and their rows).
    std::vector<bool> given_back(needs.size(), false);
    for (std::size_t i = 0; i < needs.size(); ++i) {
        L04_TRY_ASSIGN(const bool back, add_lease_back(needs[i], levels[i], out_on[i], now_ms));
        given_back[i] = back;
    }
    double wait_s = 0;
    const Need* limiting = nullptr;
    double limiting_level = 0;
    for (std::size_t i = 0; i < needs.size(); ++i) {
        const auto& n = needs[i];
        const double must = n.kind == BucketKind::tokens && req.required_tokens >= 0
                                ? static_cast<double>(req.required_tokens)
                                : n.amount;
        if (must > n.capacity + 1e-9 && !m_cfg.allow_oversized && m_cfg.enforced) {
            // Waiting cannot help: say so instead of naming a retry time.
            Error e(ErrorCode::rate_limit_exceeded,
                    "this request needs about " + fmt_num(must) + " " + std::string(bucket_kind_name(n.kind)) +
                        " but the limit for " + n.scope + " is " + fmt_num(n.capacity) +
                        "/min, so it can never fit; shorten it, raise the limit (rate_limit.scopes or "
                        "rate_limit.tokens_per_minute) or set rate_limit.allow_oversized = true");
            e.retryable = false;
            return fail(std::move(e));
        }
        // A request whose estimate (with its guessed output) is larger than
        // the capacity, or any with allow_oversized, is admitted when the
        // bucket is full and the bucket goes into debt.
        const double want = std::min(n.amount, n.capacity);
        if (levels[i] + 1e-9 < want) {
            const double w = (want - levels[i]) / n.refill_per_s;
            if (!limiting || w > wait_s) {
                wait_s = w;
                limiting = &n;
                limiting_level = levels[i];
            }
        }
    }

    if (limiting) {
        for (std::size_t i = 0; i < needs.size(); ++i)
            if (given_back[i]) L04_TRY(store_level(needs[i], levels[i], now_ms));
        const bool shadow = !m_cfg.enforced;
        if (auto st = bump_counter(*m_db, shadow ? CounterId::rate_limit_shadow_rejections
                                                 : CounterId::rate_limit_rejections);
            !st)
            return fail(st.error());
        L04_TRY(tx.commit());
        forget_leases(needs, given_back);
        if (shadow) {
            res.shadow_rejected = true;
            return res;
        }
        const auto retry_ms = static_cast<std::int64_t>(std::ceil(wait_s * 1000.0));
        Error e(ErrorCode::rate_limit_exceeded,
                "rate limit exceeded for " + limiting->scope + " (" + std::string(bucket_kind_name(limiting->kind)) +
                    ": " + fmt_num(std::max(0.0, limiting_level)) + " of " + fmt_num(limiting->capacity) +
                    "/min available, " + fmt_num(limiting->amount) + " needed); retry in " +
                    fmt_num(static_cast<double>(retry_ms) / 1000.0) + " s");
        e.retryable = true;
        e.retry_after = std::chrono::milliseconds(std::max<std::int64_t>(1, retry_ms));
        return fail(std::move(e));
    }

    bool has_tokens = false;
    // A lease only helps when every bucket of the request has one (the
    // memory path needs them all): otherwise none is taken.
    // A run that is not busy on these buckets takes none either (busy()
    // notes this decision whatever the lease sizes).
    const bool may_lease = !m_cfg.lease_only_when_busy || busy(needs);
    std::vector<double> leased(needs.size(), 0.0);
    for (std::size_t i = 0; i < needs.size(); ++i) leased[i] = lease_size(needs[i], levels[i] - needs[i].amount);
    if (!may_lease || std::any_of(leased.begin(), leased.end(), [](double l) { return l <= 0; }))
        std::fill(leased.begin(), leased.end(), 0.0);
    std::vector<std::int64_t> lease_rows(needs.size(), 0);
    for (std::size_t i = 0; i < needs.size(); ++i) {
        L04_TRY(store_level(needs[i], levels[i] - needs[i].amount - leased[i], now_ms));
        has_tokens = has_tokens || needs[i].kind == BucketKind::tokens;
        if (leased[i] > 0) {
            // Random ids, never reused: a holder deletes its own row by id
            // long after it may have expired and been pruned.
            Status inserted;
            for (int attempt = 0; attempt < 3; ++attempt) {
                lease_rows[i] = static_cast<std::int64_t>(m_rng() >> 1) | 1;
                StmtReset reset(m_insert_lease);
                m_insert_lease.bind(1, lease_rows[i])
                    .bind(2, needs[i].scope)
                    .bind(3, static_cast<int>(needs[i].kind))
                    .bind(4, leased[i])
                    .bind(5, needs[i].refill_per_s)
                    .bind(6, now_ms + m_cfg.lease_ms);
                inserted = m_insert_lease.run();
                if (inserted) break;
            }
            if (!inserted) return fail(inserted.error());
        }
    }
    if (has_tokens) {
        // Random 63-bit ids: never reused (a late second settle cannot hit
        // someone else's reservation) and no sqlite_sequence write.
        Status inserted;
        for (int attempt = 0; attempt < 3; ++attempt) {
            res.id = static_cast<std::int64_t>(m_rng() >> 1) | 1;
            StmtReset reset(m_insert_reservation);
            m_insert_reservation.bind(1, res.id)
                .bind(2, req.agent)
                .bind(3, req.provider)
                .bind(4, req.model)
                .bind(5, std::max<std::int64_t>(0, req.estimated_tokens))
                .bind(6, now_ms);
            inserted = m_insert_reservation.run();
            if (inserted) break;
        }
        if (!inserted) return fail(inserted.error());
    }
    L04_TRY(tx.commit());
    forget_leases(needs, given_back);
    // The leases exist once the transaction that debited them has committed.
    const auto until = mono_now + std::chrono::milliseconds(m_cfg.lease_ms);
    for (std::size_t i = 0; i < needs.size(); ++i)
        if (leased[i] > 0)
            m_leases[{needs[i].scope, needs[i].kind}] = Lease{.held = leased[i],
                                                              .capacity = needs[i].capacity,
                                                              .refill_per_s = needs[i].refill_per_s,
                                                              .until = until,
                                                              .row_id = lease_rows[i],
                                                              .amount = leased[i],
                                                              .row_until_ms = now_ms + m_cfg.lease_ms};
    if (++m_reserves % 1024 == 0) (void)prune_reservations_locked(now_ms);
    return res;
}

bool SqliteRateLimiter::take_from_leases(const std::vector<Need>& needs) {
    if (m_leases.empty()) return false;
    // Check every bucket, then debit them all. A request has at most six
    // buckets (agent, provider, model × requests, tokens): a fixed array, no
    // allocation on the path that serves most of a busy daemon's requests.
    std::array<Lease*, 6> found{};
    if (needs.size() > found.size()) return false;
    const auto now = m_clock.now();
    for (std::size_t i = 0; i < needs.size(); ++i) {
        auto it = m_leases.find({needs[i].scope, needs[i].kind});
        if (it == m_leases.end() || now >= it->second.until || it->second.held + 1e-9 < needs[i].amount) return false;
        found[i] = &it->second;
    }
    for (std::size_t i = 0; i < needs.size(); ++i) found[i]->held -= needs[i].amount;
    return true;
}

bool SqliteRateLimiter::busy(const std::vector<Need>& needs) {
    const auto now = m_clock.now();
    const auto window = std::chrono::milliseconds(m_cfg.lease_ms);
    bool all = true;
    for (const auto& n : needs) {
        auto [it, added] = m_last_decided.try_emplace({n.scope, n.kind}, now);
        if (added || now - it->second >= window) all = false;
        it->second = now;
    }
    return all;
}

Result<bool> SqliteRateLimiter::add_lease_back(const Need& n, double& level, double leased, std::int64_t now_ms) {
    auto it = m_leases.find({n.scope, n.kind});
    if (it == m_leases.end()) return false;
    const Lease& l = it->second;
    // Its own row no longer holds the level down; the others' still do.
    const double own = l.row_id != 0 ? lease_hold(l.amount, n.refill_per_s, l.row_until_ms, now_ms) : 0.0;
    const double cap = n.capacity - std::max(0.0, leased - own);
    level = std::max(-n.capacity, std::min(level + l.held, cap));
    if (l.row_id != 0) {
        StmtReset reset(m_delete_lease);
        m_delete_lease.bind(1, l.row_id);
        L04_TRY(m_delete_lease.run());
    }
    return true;
}

void SqliteRateLimiter::forget_leases(const std::vector<Need>& needs, const std::vector<bool>& given_back) {
    for (std::size_t i = 0; i < needs.size(); ++i)
        if (given_back[i]) m_leases.erase({needs[i].scope, needs[i].kind});
}

double SqliteRateLimiter::lease_size(const Need& n, double level_after) const {
    if (m_cfg.lease_ms <= 0) return 0;
    const double size = std::floor(n.refill_per_s * static_cast<double>(m_cfg.lease_ms) / 1000.0);
    if (size < 1 || level_after - size < n.capacity / 2) return 0;
    return size;
}

void SqliteRateLimiter::flush() {
    std::lock_guard lk(m_mu);
    if (m_leases.empty()) return;
    auto tx = Transaction::begin(*m_db);
    if (!tx) return;
    const auto now_ms = m_clock.wall_ms();
    for (const auto& [key, lease] : m_leases) {
        const Need n{key.first, key.second, 0.0, lease.capacity, lease.refill_per_s};
        std::vector<double> out_on;
        auto levels = load_levels({n}, now_ms, &out_on);
        if (!levels) return;
        double level = (*levels)[0];
        auto back = add_lease_back(n, level, out_on[0], now_ms);
        if (!back || !store_level(n, level, now_ms)) return;
    }
    if (tx->commit()) m_leases.clear();
}

SqliteRateLimiter::~SqliteRateLimiter() { flush(); }

void SqliteRateLimiter::settle(const Reservation& r, std::int64_t actual_tokens) {
    (void)settle_checked(r, actual_tokens);
}

Status SqliteRateLimiter::settle_checked(const Reservation& r, std::int64_t actual_tokens) {
    if (r.local) {
        // Admitted from a lease: the difference goes to the lease of each
        // token bucket (a refund to use or give back, or a charge), and
        // reaches the database when the lease is given back.
        const double delta = static_cast<double>(std::max<std::int64_t>(0, r.request.estimated_tokens) -
                                                 std::max<std::int64_t>(0, actual_tokens));
        if (delta == 0) return {};
        std::lock_guard lk(m_mu);
        const auto until = m_clock.now() + std::chrono::milliseconds(m_cfg.lease_ms);
        for (const auto& n : needs_for(r.request.agent, r.request.provider, r.request.model, 0, true)) {
            auto [it, added] = m_leases.try_emplace({n.scope, n.kind});
            if (added) it->second = Lease{.held = 0, .capacity = n.capacity, .refill_per_s = n.refill_per_s, .until = until};
            it->second.held += delta;
        }
        return {};
    }
    if (r.id == 0) return {};
    std::lock_guard lk(m_mu);
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    const auto now_ms = m_clock.wall_ms();
    std::string agent, provider, model;
    std::int64_t reserved = 0;
    {
        StmtReset reset(m_select_reservation);
        m_select_reservation.bind(1, r.id);
        L04_TRY_ASSIGN(auto row, m_select_reservation.step());
        if (!row) return {};  // settled already, or pruned
        agent = m_select_reservation.col_text("agent");
        provider = m_select_reservation.col_text("provider");
        model = m_select_reservation.col_text("model");
        reserved = m_select_reservation.col_int("tokens");
    }
    const double delta = static_cast<double>(reserved - std::max<std::int64_t>(0, actual_tokens));
    if (delta != 0) {
        const auto needs = needs_for(agent, provider, model, 0, true);
        std::vector<double> out_on;
        L04_TRY_ASSIGN(auto levels, load_levels(needs, now_ms, &out_on));
        for (std::size_t i = 0; i < needs.size(); ++i) {
            // A refund fills the level up to the capacity minus the leases
            // out, as the refill does.
            const double cap = needs[i].capacity - out_on[i];
            const double next = std::max(-needs[i].capacity, std::min(levels[i] + delta, cap));
            L04_TRY(store_level(needs[i], next, now_ms));
        }
    }
    {
        StmtReset reset(m_delete_reservation);
        m_delete_reservation.bind(1, r.id);
        L04_TRY(m_delete_reservation.run());
    }
    return tx.commit();
}

std::vector<BucketState> SqliteRateLimiter::buckets() {
    std::lock_guard lk(m_mu);
    const auto now_ms = m_clock.wall_ms();
    std::map<std::pair<std::string, int>, BucketState> out;
    // Leases out, per bucket: outside the level, which refills up to the
    // capacity minus them.
    std::map<std::pair<std::string, int>, double> out_on;
    if (auto lq = m_db->prepare(std::string("SELECT scope, kind, SUM(") + k_lease_hold + ") FROM limit_leases WHERE " +
                                k_lease_live + " GROUP BY scope, kind")) {
        lq->bind(4, now_ms);
        while (true) {
            auto row = lq->step();
            if (!row || !*row) break;
            out_on[{lq->col_text(0), static_cast<int>(lq->col_int(1))}] = lq->col_double(2);
        }
    }
    auto cap_of = [&](const std::string& scope, BucketKind kind, double capacity) {
        auto it = out_on.find({scope, static_cast<int>(kind)});
        return it == out_on.end() ? capacity : capacity - it->second;
    };
    auto st = m_db->prepare("SELECT scope, kind, level, updated_ms FROM limit_buckets");
    if (!st) return {};
    while (true) {
        auto row = st->step();
        if (!row || !*row) break;
        const auto scope = st->col_text("scope");
        const auto kind = static_cast<BucketKind>(st->col_int("kind"));
        const Limits l = limits_for(scope);
        const auto limit = kind == BucketKind::requests ? l.requests_per_minute : l.tokens_per_minute;
        if (limit <= 0) continue;  // no longer limited
        BucketState b;
        b.scope = scope;
        b.kind = std::string(bucket_kind_name(kind));
        b.capacity = static_cast<double>(limit);
        b.refill_per_s = b.capacity / 60.0;
        const double elapsed_s = static_cast<double>(std::max<std::int64_t>(0, now_ms - st->col_int("updated_ms"))) / 1000.0;
        b.level = std::min(cap_of(scope, kind, b.capacity), st->col_double("level") + elapsed_s * b.refill_per_s);
        out[{scope, static_cast<int>(kind)}] = b;
    }
    for (const auto& [scope, l] : m_cfg.scopes) {
        for (auto kind : {BucketKind::requests, BucketKind::tokens}) {
            const auto limit = kind == BucketKind::requests ? l.requests_per_minute : l.tokens_per_minute;
            if (limit <= 0 || out.count({scope, static_cast<int>(kind)})) continue;
            BucketState b;
            b.scope = scope;
            b.kind = std::string(bucket_kind_name(kind));
            b.capacity = static_cast<double>(limit);
            b.refill_per_s = b.capacity / 60.0;
            b.level = cap_of(scope, kind, b.capacity);
            out[{scope, static_cast<int>(kind)}] = b;
        }
    }
    // What this process holds in leases is not used yet: shown as available.
    for (const auto& [key, lease] : m_leases)
        if (auto it = out.find({key.first, static_cast<int>(key.second)}); it != out.end())
            it->second.level = std::clamp(it->second.level + lease.held, -it->second.capacity, it->second.capacity);
    std::vector<BucketState> v;
    v.reserve(out.size());
    for (auto& [k, b] : out) v.push_back(std::move(b));
    return v;
}

Result<std::int64_t> SqliteRateLimiter::prune_reservations() {
    std::lock_guard lk(m_mu);
    return prune_reservations_locked(m_clock.wall_ms());
}

Result<std::int64_t> SqliteRateLimiter::prune_reservations_locked(std::int64_t now_ms) {
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM limit_reservations WHERE created_ms < ?"));
    st.bind(1, now_ms - m_cfg.reservation_ttl_ms);
    L04_TRY(st.run());
    const auto pruned = static_cast<std::int64_t>(m_db->changes());
    // Leases whose hold has ended (expired, then faded at the refill rate)
    // hold nothing back any more (a live holder deletes its own row when it
    // gives the rest back; a dead one never will).
    auto expired = m_db->prepare(std::string("DELETE FROM limit_leases WHERE NOT ") + k_lease_live);
    if (!expired) return fail(expired.error());
    expired->bind(4, now_ms);
    L04_TRY(expired->run());
    // A bucket that has refilled to its capacity is the same as no row (new
    // buckets start full): rows of idle scopes (one per `user` or agent
    // ever seen) go, so the table holds only the scopes of the last minute.
    auto idle = m_db->prepare(
        "DELETE FROM limit_buckets WHERE level + (MAX(0, ?1 - updated_ms) / 1000.0) * refill_per_s >= capacity");
    if (!idle) return fail(idle.error());
    idle->bind(1, now_ms);
    L04_TRY(idle->run());
    return pruned;
}

}  // namespace l04
