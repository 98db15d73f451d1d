#include <l04/usage/ledger.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/strings.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <iterator>
#include <map>

namespace l04 {

namespace {

constexpr std::int64_t k_journal_rotate_bytes = 1 << 20;
constexpr const char* k_journal_suffix = ".jsonl";

std::string dump_json(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string row_to_line(const UsageRow& r) {
    nlohmann::json j = {{"request_id", r.request_id},
                        {"time_ms", r.time_ms},
                        {"agent", r.agent},
                        {"model", r.model},
                        {"provider", r.provider},
                        {"prompt_tokens", r.usage.prompt_tokens},
                        {"completion_tokens", r.usage.completion_tokens},
                        {"estimated", r.usage.estimated},
                        {"cost_usd", r.cost_usd},
                        {"saved_usd", r.saved_usd},
                        {"latency_ms", r.latency_ms},
                        {"cached", static_cast<int>(r.cached)},
                        {"stream", r.stream},
                        {"status", r.status},
                        {"attempts", r.attempts}};
    if (r.ttft_ms) j["ttft_ms"] = *r.ttft_ms;
    if (r.error_code) j["error_code"] = *r.error_code;
    if (!r.metadata.empty()) j["metadata"] = r.metadata;
    return dump_json(j) + "\n";
}

std::optional<UsageRow> row_from_line(std::string_view line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    try {
        UsageRow r;
        r.request_id = j.value("request_id", "");
        r.time_ms = j.value("time_ms", std::int64_t{0});
        r.agent = j.value("agent", "");
        r.model = j.value("model", "");
        r.provider = j.value("provider", "");
        r.usage.prompt_tokens = j.value("prompt_tokens", std::int64_t{0});
        r.usage.completion_tokens = j.value("completion_tokens", std::int64_t{0});
        r.usage.total_tokens = r.usage.prompt_tokens + r.usage.completion_tokens;
        r.usage.estimated = j.value("estimated", false);
        r.cost_usd = j.value("cost_usd", 0.0);
        r.saved_usd = j.value("saved_usd", 0.0);
        r.latency_ms = j.value("latency_ms", 0.0);
        r.cached = static_cast<CacheHit>(j.value("cached", 0));
        r.stream = j.value("stream", false);
        r.status = j.value("status", "ok");
        r.attempts = j.value("attempts", 1);
        if (j.contains("ttft_ms")) r.ttft_ms = j["ttft_ms"].get<double>();
        if (j.contains("error_code")) r.error_code = j["error_code"].get<int>();
        if (auto m = j.find("metadata"); m != j.end() && m->is_object())
            for (const auto& [k, v] : m->items()) r.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
        return r;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string random_hex() {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return buf;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

}  // namespace

Ledger::Ledger(std::unique_ptr<Db> db, LedgerOptions opts)
    : m_db(std::move(db)), m_min_backoff(opts.min_backoff), m_max_backoff(std::max(opts.min_backoff, opts.max_backoff)),
      m_journal_dir(opts.background ? std::move(opts.journal_dir) : std::string()) {
    const bool background = opts.background;
    if (!m_journal_dir.empty()) {
        if (auto st = ensure_private_dir(m_journal_dir); !st) {
            spdlog::warn("usage ledger: no crash journal ({}); a crash can lose the last rows", st.error().message);
            m_journal_dir.clear();
        } else {
            replay_journals(m_journal_dir);
            open_journal(m_journal_dir);
        }
    }
    if (background) m_writer = std::thread([this] { writer_loop(); });
}

Ledger::~Ledger() {
    {
        std::lock_guard lk(m_q_mu);
        m_stop = true;
    }
    m_cv.notify_all();
    if (m_writer.joinable()) m_writer.join();
    const auto st = flush();
    const std::size_t left = pending();
    if (m_journal_fd >= 0) {
        ::close(m_journal_fd);  // releases the flock: the next start replays what is left
        if (st && left == 0) {
            ::unlink(m_journal_path.c_str());
            std::lock_guard lk(m_mu);
            if (auto d = m_db->prepare("DELETE FROM ledger_journal WHERE file = ?")) {
                d->bind(1, base_name(m_journal_path));
                (void)d->run();
            }
        }
    }
    if (!st) {
        if (!m_journal_path.empty())
            spdlog::error("usage ledger: {} row(s) could not be written at stop ({}); they stay in {} and are written "
                          "at the next start",
                          left, st.error().to_string(), m_journal_path);
        else
            spdlog::error("usage ledger: {} row(s) could not be written at stop and are lost: {}", left,
                          st.error().to_string());
    }
}

void Ledger::open_journal(const std::string& dir) {
    // Created under a hidden name, locked, then renamed: a replaying process
    // never sees a journal of a live process without its lock.
    for (int tries = 0; tries < 8; ++tries) {
        const std::string name = std::to_string(::getpid()) + "-" + random_hex();
        const std::string tmp = dir + "/.tmp-" + name;
        const std::string path = dir + "/" + name + k_journal_suffix;
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            spdlog::warn("usage ledger: cannot create a crash journal in {}: {}", dir, std::strerror(errno));
            return;
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
            // Another process took it for a dead one's and removed it.
            ::close(fd);
            continue;
        }
        m_journal_fd = fd;
        m_journal_path = path;
        m_journal_size = 0;
        return;
    }
    spdlog::warn("usage ledger: cannot create a crash journal in {}", dir);
}

void Ledger::replay_journals(const std::string& dir) {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
    for (const auto& name : names) {
        const std::string path = dir + "/" + name;
        const bool tmp = name.rfind(".tmp-", 0) == 0;
        if (!tmp && (name.size() <= 6 || name.compare(name.size() - 6, 6, k_journal_suffix) != 0)) continue;
        const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // its process is alive
            ::close(fd);
            continue;
        }
        if (tmp) {  // a process died between creating and naming it
            ::unlink(path.c_str());
            ::close(fd);
            continue;
        }
        std::int64_t committed = 0;
        {
            std::lock_guard lk(m_mu);
            if (auto q = m_db->prepare("SELECT committed FROM ledger_journal WHERE file = ?")) {
                q->bind(1, name);
                if (auto r = q->step(); r && *r) committed = q->col_int(0);
            }
        }
        std::string data;
        struct stat sb {};
        if (::fstat(fd, &sb) == 0 && sb.st_size > committed) {
            data.resize(static_cast<std::size_t>(sb.st_size - committed));
            const ssize_t n = ::pread(fd, data.data(), data.size(), committed);
            data.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        }
        std::vector<Pending> rows;
        std::size_t pos = 0;
        std::int64_t bad = 0;
        while (true) {
            const auto nl = data.find('\n', pos);
            if (nl == std::string::npos) break;  // a torn last line was never acknowledged
            if (auto r = row_from_line(std::string_view(data).substr(pos, nl - pos)))
                rows.push_back({std::move(*r), committed + static_cast<std::int64_t>(nl + 1)});
            else
                ++bad;
            pos = nl + 1;
        }
        Status st;
        if (!rows.empty()) {
            std::lock_guard lk(m_mu);
            st = write_locked(rows, name);
        }
        if (!st) {
            spdlog::warn("usage ledger: cannot replay {} row(s) from {} yet: {}", rows.size(), path,
                         st.error().to_string());
            ::close(fd);
            continue;
        }
        ::unlink(path.c_str());
        ::close(fd);
        {
            std::lock_guard lk(m_mu);
            if (auto d = m_db->prepare("DELETE FROM ledger_journal WHERE file = ?")) {
                d->bind(1, name);
                (void)d->run();
            }
        }
        m_replayed += static_cast<std::int64_t>(rows.size());
        if (!rows.empty() || bad)
            spdlog::warn("usage ledger: wrote {} row(s) left by a process that stopped without writing them ({}{})",
                         rows.size(), name, bad ? ", " + std::to_string(bad) + " unreadable line(s) skipped" : "");
    }
    // Offsets of journals that no longer exist (removed after their rows
    // were written) are dropped.
    std::lock_guard lk(m_mu);
    std::vector<std::string> stale;
    if (auto q = m_db->prepare("SELECT file FROM ledger_journal")) {
        while (true) {
            auto r = q->step();
            if (!r || !*r) break;
            std::string f = q->col_text(0);
            if (!std::filesystem::exists(dir + "/" + f, ec)) stale.push_back(std::move(f));
        }
    }
    for (const auto& f : stale) {
        if (auto d = m_db->prepare("DELETE FROM ledger_journal WHERE file = ?")) {
            d->bind(1, f);
            (void)d->run();
        }
    }
}

void Ledger::rotate_journal_if_idle() {
    // Called with m_mu held after a successful write. A journal whose every
    // row is committed is replaced by a fresh one once it is large.
    std::string old;
    {
        std::lock_guard q(m_q_mu);
        if (m_journal_fd < 0 || !m_pending.empty() || m_journal_size < k_journal_rotate_bytes) return;
        const int old_fd = m_journal_fd;
        old = m_journal_path;
        m_journal_fd = -1;
        m_journal_path.clear();
        open_journal(m_journal_dir);
        ::close(old_fd);
    }
    ::unlink(old.c_str());
    if (auto d = m_db->prepare("DELETE FROM ledger_journal WHERE file = ?")) {
        d->bind(1, base_name(old));
        (void)d->run();
    }
}

Status Ledger::record(const UsageRow& r) {
    if (!m_writer.joinable()) {
        std::lock_guard lk(m_mu);
        return write_locked({Pending{r, -1}}, {});
    }
    const std::string line = m_journal_dir.empty() ? std::string() : row_to_line(r);
    bool wake;
    Status out;
    {
        std::lock_guard lk(m_q_mu);
        Pending p{r, -1};
        if (m_journal_fd >= 0 && !line.empty()) {
            // Appended in queue order, before the caller releases the answer:
            // a SIGKILL after this line cannot lose the row.
            if (write_all(m_journal_fd, line)) {
                m_journal_size += static_cast<std::int64_t>(line.size());
                p.journal_end = m_journal_size;
            } else {
                const int err = errno;
                // Cut a torn line so the next one starts clean.
                (void)!::ftruncate(m_journal_fd, m_journal_size);
                if (m_journal_errors++ % 1000 == 0)
                    spdlog::warn("usage ledger: cannot append to the crash journal {}: {} (the row is kept in memory)",
                                 m_journal_path, std::strerror(err));
                out = fail(ErrorCode::cache_error, std::string("crash journal: ") + std::strerror(err));
            }
        }
        m_pending.push_back(std::move(p));
        // Wake the writer only to start a batch or to cut a full one: a
        // wake-up per row would cost a context switch per request (the
        // writer also wakes by itself every second).
        wake = m_pending.size() == 1 || m_pending.size() == 256;
    }
    if (wake) m_cv.notify_one();
    return out;
}

std::size_t Ledger::pending() const {
    std::lock_guard q(m_q_mu);
    return m_pending.size();
}

Status Ledger::flush() {
    // Holding the connection across take-and-write means a flush returns only
    // once every row queued before it is committed (budget checks rely on it).
    std::lock_guard lk(m_mu);
    std::vector<Pending> rows;
    {
        std::lock_guard q(m_q_mu);
        rows.swap(m_pending);
    }
    if (rows.empty()) return {};
    auto st = write_locked(rows, base_name(m_journal_path));
    if (!st) {
        // Keep the rows (in order) for the next flush instead of losing them,
        // and make sure the writer retries them.
        {
            std::lock_guard q(m_q_mu);
            rows.insert(rows.end(), std::make_move_iterator(m_pending.begin()),
                        std::make_move_iterator(m_pending.end()));
            m_pending.swap(rows);
        }
        m_cv.notify_one();
        return st;
    }
    rotate_journal_if_idle();
    return st;
}

void Ledger::writer_loop() {
    using namespace std::chrono_literals;
    const auto k_min_backoff = m_min_backoff;
    const auto k_max_backoff = m_max_backoff;
    auto backoff = k_min_backoff;
    std::int64_t failures = 0;
    // A background batching window and a retry timer: real time.
    Clock& clock = SystemClock::instance();
    std::unique_lock lk(m_q_mu);
    while (!m_stop) {
        // Timed: a row put back by a failed flush elsewhere is never left
        // waiting for the next record().
        clock.wait_for(m_cv, lk, 1s, [&] { return m_stop || !m_pending.empty(); });
        if (m_stop) break;
        if (m_pending.empty()) continue;
        // Let a few more rows join the batch.
        clock.wait_for(m_cv, lk, 25ms, [&] { return m_stop || m_pending.size() >= 256; });
        lk.unlock();
        const auto st = flush();
        lk.lock();
        if (st) {
            if (failures > 0)
                spdlog::info("usage ledger: writing again after {} failed attempt(s)", failures);
            failures = 0;
            backoff = k_min_backoff;
            continue;
        }
        if (failures++ == 0 || backoff == k_max_backoff)
            spdlog::warn("usage ledger write failed ({} row(s) waiting, retrying in {} ms): {}", m_pending.size(),
                         backoff.count(), st.error().to_string());
        // Back off while the database cannot be written (a full disk): a
        // tight retry loop would take a core and starve other writers.
        clock.wait_for(m_cv, lk, backoff, [&] { return m_stop; });
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, k_max_backoff);
    }
}

Status Ledger::checkpoint() {
    if (auto f = flush(); !f) return f;
    std::lock_guard lk(m_mu);
    return m_db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

Status Ledger::write_locked(const std::vector<Pending>& rows, const std::string& journal_file) {
    L04_TRY_ASSIGN(auto tx, Transaction::begin(*m_db));
    L04_TRY_ASSIGN(Stmt * st, m_db->cached(
        "INSERT INTO usage(request_id, time_ms, agent, model, provider, prompt_tokens, completion_tokens, estimated, "
        "cost_usd, saved_usd, latency_ms, ttft_ms, cached, stream, status, error_code, attempts, metadata) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    StmtReset done(*st);
    std::int64_t journal_end = -1;
    for (const auto& p : rows) {
        const UsageRow& r = p.row;
        journal_end = std::max(journal_end, p.journal_end);
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
        st->bind(18, r.metadata.empty() ? std::string() : dump_json(nlohmann::json(r.metadata)));
        if (auto rr = st->run(); !rr) return rr;
    }
    if (journal_end >= 0 && !journal_file.empty()) {
        // The journal offset these rows reach, in the same transaction: a
        // replay after a crash starts exactly after them.
        L04_TRY_ASSIGN(Stmt * j, m_db->cached(
            "INSERT INTO ledger_journal(file, committed) VALUES(?1, ?2) "
            "ON CONFLICT(file) DO UPDATE SET committed = MAX(committed, excluded.committed)"));
        StmtReset j_done(*j);
        j->bind(1, journal_file).bind(2, journal_end);
        if (auto rr = j->run(); !rr) return rr;
    }
    return tx.commit();
}

Result<UsageTotals> Ledger::totals(std::int64_t since_ms, const std::string& agent) {
    L04_TRY(flush());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare(
        "SELECT COUNT(*) AS requests, COALESCE(SUM(status != 'ok'),0) AS errors, "
        "COALESCE(SUM(cached != 0),0) AS cached, COALESCE(SUM(prompt_tokens),0) AS prompt_tokens, "
        "COALESCE(SUM(completion_tokens),0) AS completion_tokens, COALESCE(SUM(cost_usd),0) AS cost_usd, "
        "COALESCE(SUM(saved_usd),0) AS saved_usd FROM usage WHERE time_ms >= ?1 AND (?2 = '' OR agent = ?2)");
    if (!st) return fail(st.error());
    st->bind(1, since_ms).bind(2, agent);
    L04_TRY(st->step());
    UsageTotals t;
    t.requests = st->col_int("requests");
    t.errors = st->col_int("errors");
    t.cached = st->col_int("cached");
    t.prompt_tokens = st->col_int("prompt_tokens");
    t.completion_tokens = st->col_int("completion_tokens");
    t.cost_usd = st->col_double("cost_usd");
    t.saved_usd = st->col_double("saved_usd");
    return t;
}

Result<std::vector<UsageRow>> Ledger::rows_since(std::int64_t since_ms) {
    L04_TRY(flush());
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
        L04_TRY_ASSIGN(auto r, st->step());
        if (!r) break;
        UsageRow u;
        u.request_id = st->col_text("request_id");
        u.time_ms = st->col_int("time_ms");
        u.agent = st->col_text("agent");
        u.model = st->col_text("model");
        u.provider = st->col_text("provider");
        u.usage.prompt_tokens = st->col_int("prompt_tokens");
        u.usage.completion_tokens = st->col_int("completion_tokens");
        u.usage.total_tokens = u.usage.prompt_tokens + u.usage.completion_tokens;
        u.usage.estimated = st->col_int("estimated") != 0;
        u.cost_usd = st->col_double("cost_usd");
        u.saved_usd = st->col_double("saved_usd");
        u.latency_ms = st->col_double("latency_ms");
        if (!st->col_null("ttft_ms")) u.ttft_ms = st->col_double("ttft_ms");
        u.cached = static_cast<CacheHit>(st->col_int("cached"));
        u.stream = st->col_int("stream") != 0;
        u.status = st->col_text("status");
        if (!st->col_null("error_code")) u.error_code = static_cast<int>(st->col_int("error_code"));
        u.attempts = static_cast<int>(st->col_int("attempts"));
        if (const std::string md = st->col_text("metadata"); !md.empty()) {
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
    L04_TRY_ASSIGN(auto rows, rows_since(since_ms));
    std::map<std::string, UsageGroup> groups;
    std::map<std::string, std::vector<double>> latencies;
    for (const auto& r : rows) {
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
    L04_TRY(flush());
    std::lock_guard lk(m_mu);
    auto st = m_db->prepare(
        "SELECT provider, model, status, COUNT(*) AS requests, "
        "SUM(CASE WHEN cached = 0 THEN prompt_tokens ELSE 0 END) AS prompt_tokens, "
        "SUM(CASE WHEN cached = 0 THEN completion_tokens ELSE 0 END) AS completion_tokens, "
        "SUM(cost_usd) AS cost_usd FROM usage GROUP BY provider, model, status");
    if (!st) return fail(st.error());
    std::vector<UsageAggregate> out;
    while (true) {
        L04_TRY_ASSIGN(auto r, st->step());
        if (!r) break;
        out.push_back({st->col_text("provider"), st->col_text("model"), st->col_text("status"), st->col_int("requests"),
                       st->col_int("prompt_tokens"), st->col_int("completion_tokens"), st->col_double("cost_usd")});
    }
    return out;
}

Result<std::int64_t> Ledger::prune(std::int64_t before_ms) {
    L04_TRY(flush());
    std::lock_guard lk(m_mu);
    L04_TRY_ASSIGN(auto st, m_db->prepare("DELETE FROM usage WHERE time_ms < ?"));
    st.bind(1, before_ms);
    L04_TRY(st.run());
    return static_cast<std::int64_t>(m_db->changes());
}

}  // namespace l04
