#include <l04/limit/sqlite_circuit_breaker.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>


#include <algorithm>
#include <chrono>

namespace l04 {

bool counts_as_fault(const Error& e) {
    const auto c = static_cast<int>(e.code);
    switch (e.code) {
        case ErrorCode::provider_error:
        case ErrorCode::provider_unavailable:
        case ErrorCode::timeout:
        case ErrorCode::provider_overloaded: return true;
        default: return c >= 4600 && c <= 4699;
    }
}

struct SqliteCircuitBreaker::Row {
    CircuitState state = CircuitState::closed;
    int failures = 0;
    std::int64_t opened_at_ms = 0;
    std::int64_t blocked_until_ms = 0;
    std::int64_t probe_until_ms = 0;
    std::string last_error;
    // The process holding the probe (pid, start time in clock ticks since
    // boot, from /proc/<pid>/stat): 0 when unknown.
    std::int64_t probe_pid = 0;
    std::int64_t probe_start = 0;
};

namespace {

constexpr std::int64_t k_probe_busy_retry_ms = 1000;
constexpr std::size_t k_last_error_max = 300;

std::string secs(std::int64_t ms) { return std::to_string((ms + 999) / 1000) + " s"; }

Error circuit_error(const std::string& provider, std::int64_t retry_ms, std::string why) {
    Error e(ErrorCode::circuit_open, "provider '" + provider + "' is unavailable: " + std::move(why) +
                                         "; retry in " + secs(retry_ms));
    e.retryable = true;
    e.retry_after = std::chrono::milliseconds(std::max<std::int64_t>(1, retry_ms));
    return e;
}

// A process's start time (field 22 of /proc/<pid>/stat), 0 when unknown.
std::int64_t process_start(std::int64_t pid) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (!f) return -1;  // no such process
    char buf[1024];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted after its last ')'.
    const char* p = std::strrchr(buf, ')');
    if (!p) return 0;
    int field = 2;
    for (++p; *p && field < 22; ++p)
        if (*p == ' ') ++field;
    return field == 22 ? std::strtoll(p, nullptr, 10) : 0;
}

// Whether the process that claimed a probe has gone (so its probe can never
// report): the pid is gone, or now names another process. Unknown owners
// (rows of older versions, no /proc) count as alive until the probe expires.
bool probe_owner_gone(std::int64_t pid, std::int64_t start) {
    if (pid <= 0) return false;
    if (pid == ::getpid()) return false;
    const std::int64_t now_start = process_start(pid);
    if (now_start < 0) return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    return start > 0 && now_start > 0 && now_start != start;
}

CircuitState state_from(std::int64_t v) {
    switch (v) {
        case 1: return CircuitState::half_open;
        case 2: return CircuitState::open;
        default: return CircuitState::closed;
    }
}

}  // namespace

struct SqliteCircuitBreaker::Mirror {
    Row row;
    bool found = false;
    std::uint64_t changes = 0;
    Clock::duration read_at{};
};

namespace {
// How long a mirrored row is trusted when the counter has not moved: only a
// writer that does not bump the counter (an older l04, sqlite3 by hand, a
// process whose counter file could not be mapped) can make it stale.
constexpr auto k_mirror_max_age = std::chrono::seconds(1);
}  // namespace

SqliteCircuitBreaker::SqliteCircuitBreaker(std::unique_ptr<Db> db, CircuitBreakerConfig cfg, Clock& clock)
    : m_db(std::move(db)), m_cfg(cfg), m_clock(clock), m_changes(m_db->path()) {
    m_cfg.failure_threshold = std::max(1, m_cfg.failure_threshold);
    m_cfg.recovery_timeout_ms = std::max<std::int64_t>(0, m_cfg.recovery_timeout_ms);
    m_cfg.probe_timeout_ms = std::max<std::int64_t>(1, m_cfg.probe_timeout_ms);
    m_self_start = std::max<std::int64_t>(0, process_start(::getpid()));
}

SqliteCircuitBreaker::~SqliteCircuitBreaker() = default;

Result<std::unique_ptr<SqliteCircuitBreaker>> SqliteCircuitBreaker::create(std::unique_ptr<Db> db,
                                                                           CircuitBreakerConfig cfg, Clock& clock) {
    db->set_short_busy_wait(std::chrono::milliseconds(cfg.busy_timeout_ms));
    std::unique_ptr<SqliteCircuitBreaker> cb(new SqliteCircuitBreaker(std::move(db), cfg, clock));
    L04_TRY(cb->prepare());
    return cb;
}

Status SqliteCircuitBreaker::prepare() {
    auto p = [&](Stmt& out, std::string_view sql) { return m_db->prepare_into(out, sql); };
    if (auto s = p(m_select,
                   "SELECT state, consecutive_failures, opened_at_ms, blocked_until_ms, probe_until_ms, last_error, "
                   "probe_pid, probe_start FROM circuit_breakers WHERE provider = ?");
        !s)
        return s;
    return p(m_upsert,
             "INSERT INTO circuit_breakers(provider, state, consecutive_failures, opened_at_ms, blocked_until_ms, "
             "probe_until_ms, last_error, updated_ms, probe_pid, probe_start) VALUES(?,?,?,?,?,?,?,?,?,?) "
             "ON CONFLICT(provider) DO UPDATE SET "
             "state = excluded.state, consecutive_failures = excluded.consecutive_failures, "
             "opened_at_ms = excluded.opened_at_ms, blocked_until_ms = excluded.blocked_until_ms, "
             "probe_until_ms = excluded.probe_until_ms, last_error = excluded.last_error, "
             "updated_ms = excluded.updated_ms, probe_pid = excluded.probe_pid, probe_start = excluded.probe_start");
}

Result<bool> SqliteCircuitBreaker::load(const std::string& provider, Row& row) {
    StmtReset reset(m_select);
    m_select.bind(1, provider);
    L04_TRY_ASSIGN(auto r, m_select.step());
    if (!r) {
        row = Row{};
        return false;
    }
    row.state = state_from(m_select.col_int("state"));
    row.failures = static_cast<int>(m_select.col_int("consecutive_failures"));
    row.opened_at_ms = m_select.col_int("opened_at_ms");
    row.blocked_until_ms = m_select.col_int("blocked_until_ms");
    row.probe_until_ms = m_select.col_int("probe_until_ms");
    row.last_error = m_select.col_text("last_error");
    row.probe_pid = m_select.col_int("probe_pid");
    row.probe_start = m_select.col_int("probe_start");
    return true;
}

Result<bool> SqliteCircuitBreaker::read(const std::string& provider, Row& row) {
    const std::uint64_t changes = m_changes.value();  // before the read: see change_counter.hpp
    const auto now = m_clock.now();
    auto it = m_mirror.find(provider);
    if (it != m_mirror.end() && it->second->changes == changes && now - it->second->read_at < k_mirror_max_age) {
        row = it->second->row;
        return it->second->found;
    }
    L04_TRY_ASSIGN(const bool found, load(provider, row));
    auto& m = m_mirror[provider];
    if (!m) m = std::make_unique<Mirror>();
    m->row = row;
    m->found = found;
    m->changes = changes;
    m->read_at = now;
    return found;
}

void SqliteCircuitBreaker::changed(const std::string& provider) {
    m_changes.bump();
    m_mirror.erase(provider);
}

Status SqliteCircuitBreaker::store(const std::string& provider, const Row& row) {
    StmtReset reset(m_upsert);
    m_upsert.bind(1, provider)
        .bind(2, static_cast<int>(row.state))
        .bind(3, row.failures)
        .bind(4, row.opened_at_ms)
        .bind(5, row.blocked_until_ms)
        .bind(6, row.probe_until_ms)
        .bind(7, row.last_error)
        .bind(8, m_clock.wall_ms())
        .bind(9, row.probe_until_ms ? row.probe_pid : 0)
        .bind(10, row.probe_until_ms ? row.probe_start : 0);
    return m_upsert.run();
}

template <class Fn>
Status SqliteCircuitBreaker::update(const std::string& provider, Fn&& fn) {
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    Row row;
    L04_TRY(load(provider, row));
    if (!fn(row)) return {};  // nothing to write: the destructor rolls back
    if (auto st = store(provider, row); !st) return st;
    auto st = tx.commit();
    if (st) changed(provider);
    return st;
}

Status SqliteCircuitBreaker::allow(const std::string& provider) {
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    // Why a provider in this row is kept out now, or nullopt when the caller
    // may go ahead (possibly after claiming the probe).
    auto refusal = [&](const Row& row) -> std::optional<Error> {
        if (row.blocked_until_ms > now) {
            const auto wait = row.blocked_until_ms - now;
            if (row.state != CircuitState::open) {
                // Not a circuit matter: the provider said "too many requests"
                // and when to come back. Callers see a rate limit (E4401,
                // HTTP 429, exit 5) with the time that is left.
                Error e(ErrorCode::rate_limit_exceeded, "provider '" + provider +
                                                            "' is rate limited upstream (429 with Retry-After); retry in " +
                                                            secs(wait));
                e.retryable = true;
                e.retry_after = std::chrono::milliseconds(std::max<std::int64_t>(1, wait));
                if (!row.last_error.empty()) e.details = row.last_error;
                return e;
            }
            return circuit_error(provider, wait,
                                 "circuit open after " + std::to_string(row.failures) + " consecutive failures" +
                                     (row.last_error.empty() ? "" : " (last: " + row.last_error + ")"));
        }
        if (row.state == CircuitState::half_open && row.probe_until_ms > now &&
            !probe_owner_gone(row.probe_pid, row.probe_start))
            return circuit_error(provider, std::min(k_probe_busy_retry_ms, row.probe_until_ms - now),
                                 "circuit half-open, a probe request is in flight");
        return std::nullopt;
    };

    Row row;
    auto found = read(provider, row);
    if (!found || !*found) return {};  // no state, or database trouble: admit
    if (auto e = refusal(row)) return fail(std::move(*e));
    if (row.state == CircuitState::closed) return {};

    // OPEN past its timeout, or HALF_OPEN with no live probe: claim the probe.
    std::optional<Error> refused;
    auto st = update(provider, [&](Row& r) {
        if (r.state == CircuitState::closed) return false;  // closed meanwhile
        if ((refused = refusal(r))) return false;           // another caller claimed it
        r.state = CircuitState::half_open;
        r.probe_until_ms = now + m_cfg.probe_timeout_ms;
        r.probe_pid = ::getpid();
        r.probe_start = m_self_start;
        return true;
    });
    if (!st) return {};  // fail open
    if (refused) return fail(std::move(*refused));
    return {};
}

void SqliteCircuitBreaker::on_success(const std::string& provider) {
    std::lock_guard lk(m_mu);
    Row row;
    auto found = read(provider, row);
    if (!found || !*found) return;
    if (row.state == CircuitState::open) return;
    if (row.state == CircuitState::closed && row.failures == 0) return;
    (void)update(provider, [&](Row& r) {
        if (r.state == CircuitState::open) return false;
        if (r.state == CircuitState::half_open) r.blocked_until_ms = 0;
        r.state = CircuitState::closed;
        r.failures = 0;
        r.opened_at_ms = 0;
        r.probe_until_ms = 0;
        return true;
    });
}

void SqliteCircuitBreaker::on_failure(const std::string& provider, const Error& e) {
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    std::string what = e.to_string();
    if (what.size() > k_last_error_max) what.resize(k_last_error_max);

    if (e.code == ErrorCode::rate_limit_exceeded) {
        if (!e.retry_after || e.retry_after->count() <= 0) {
            // No Retry-After: nothing to hold the provider out for; the
            // retry loop backs off. Only a live probe is released.
            Row row;
            auto found = read(provider, row);
            if (!found || !*found || row.state != CircuitState::half_open || row.probe_until_ms == 0) return;
        }
        (void)update(provider, [&](Row& r) {
            if (e.retry_after && e.retry_after->count() > 0)
                r.blocked_until_ms = std::max(r.blocked_until_ms, now + e.retry_after->count());
            if (r.state == CircuitState::half_open) r.probe_until_ms = 0;
            r.last_error = what;
            return true;
        });
        return;
    }

    if (!counts_as_fault(e)) {
        Row row;
        auto found = read(provider, row);
        if (!found || !*found || row.state != CircuitState::half_open || row.probe_until_ms == 0) return;
        (void)update(provider, [&](Row& r) {
            if (r.state != CircuitState::half_open) return false;
            r.probe_until_ms = 0;  // no verdict: let the next caller probe
            return true;
        });
        return;
    }

    (void)update(provider, [&](Row& r) {
        switch (r.state) {
            case CircuitState::open: return false;  // a straggler: already open
            case CircuitState::closed:
                r.failures += 1;
                if (r.failures >= m_cfg.failure_threshold) {
                    r.state = CircuitState::open;
                    r.opened_at_ms = now;
                    r.blocked_until_ms = std::max(r.blocked_until_ms, now + m_cfg.recovery_timeout_ms);
                }
                break;
            case CircuitState::half_open:
                r.failures += 1;
                r.state = CircuitState::open;
                r.opened_at_ms = now;
                r.blocked_until_ms = std::max(r.blocked_until_ms, now + m_cfg.recovery_timeout_ms);
                r.probe_until_ms = 0;
                break;
        }
        r.last_error = what;
        return true;
    });
}

CircuitSnapshot SqliteCircuitBreaker::snapshot(const std::string& provider) {
    std::lock_guard lk(m_mu);
    CircuitSnapshot s;
    s.provider = provider;
    Row row;
    if (auto found = load(provider, row); !found || !*found) return s;
    s.state = row.state;
    s.consecutive_failures = row.failures;
    s.opened_at_ms = row.opened_at_ms;
    s.blocked_until_ms = row.blocked_until_ms;
    s.last_error = row.last_error;
    return s;
}

std::vector<CircuitSnapshot> SqliteCircuitBreaker::snapshots() {
    std::vector<std::string> names;
    {
        std::lock_guard lk(m_mu);
        auto st = m_db->prepare("SELECT provider FROM circuit_breakers ORDER BY provider");
        if (!st) return {};
        while (true) {
            auto r = st->step();
            if (!r || !*r) break;
            names.push_back(st->col_text(0));
        }
    }
    std::vector<CircuitSnapshot> out;
    out.reserve(names.size());
    for (const auto& n : names) out.push_back(snapshot(n));
    return out;
}

Status SqliteCircuitBreaker::reset(const std::string& provider) {
    std::lock_guard lk(m_mu);
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM circuit_breakers WHERE provider = ?"));
    st.bind(1, provider);
    auto r = st.run();
    if (r) changed(provider);
    return r;
}

}  // namespace l04
