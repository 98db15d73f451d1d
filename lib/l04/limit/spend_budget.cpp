#include <l04/limit/spend_budget.hpp>

#include <l04/core/strings.hpp>
#include <l04/store/schema.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace l04 {

namespace {

constexpr std::int64_t k_day_ms = 86'400'000;

std::optional<double> parse_usd(std::string_view s) {
    s = trim(s);
    if (s == "-") return 0.0;
    if (s.empty()) return std::nullopt;
    std::string str(s);
    char* end = nullptr;
    double v = std::strtod(str.c_str(), &end);
    if (*end != '\0' || !(v >= 0)) return std::nullopt;
    return v;
}

std::string usd(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "$%.2f", v);
    return buf;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

struct Spent {
    double day_usd = 0;
    double month_usd = 0;
};

// An agent's spend since the start of its UTC day and month: one pass over
// the month's rows (index usage_agent_time); a day lies within its month.
Result<Spent> spent_since(Db& db, const std::string& agent, std::int64_t day0, std::int64_t month0) {
    L04_TRY_ASSIGN(Stmt * st, db.cached("SELECT COALESCE(SUM(CASE WHEN time_ms >= ?1 THEN cost_usd ELSE 0 END), 0) "
                                        "AS day_usd, COALESCE(SUM(cost_usd), 0) AS month_usd "
                                        "FROM usage WHERE agent = ?2 AND time_ms >= ?3"));
    StmtReset done(*st);
    st->bind(1, day0).bind(2, agent).bind(3, month0);
    L04_TRY_ASSIGN(auto row, st->step());
    if (!row) return Spent{};
    return Spent{.day_usd = st->col_double("day_usd"), .month_usd = st->col_double("month_usd")};
}

}  // namespace

Result<std::map<std::string, BudgetLimits, std::less<>>> parse_budget_agents(std::string_view spec,
                                                                             const BudgetLimits& agent_default) {
    static constexpr std::string_view k_form = "agent=daily_usd[/monthly_usd], e.g. alice=5/100";
    L04_TRY_ASSIGN(auto entries, parse_pair_list(spec, "budget.agents", k_form));
    std::map<std::string, BudgetLimits, std::less<>> out;
    for (const auto& e : entries) {
        auto bad = [&](std::string_view why) { return fail(pair_list_error("budget.agents", e.entry, why, k_form)); };
        auto daily = parse_usd(e.first);
        if (!daily) return bad("the daily limit must be a non-negative number or '-'");
        BudgetLimits l{*daily, agent_default.monthly_usd};
        if (e.second) {
            auto monthly = parse_usd(*e.second);
            if (!monthly) return bad("the monthly limit must be a non-negative number or '-'");
            l.monthly_usd = *monthly;
        }
        out.emplace(e.key, l);
    }
    return out;
}

std::int64_t utc_day_start_ms(std::int64_t wall_ms) { return floor_div(wall_ms, k_day_ms) * k_day_ms; }

std::int64_t utc_month_start_ms(std::int64_t wall_ms) {
    using namespace std::chrono;
    const sys_days day{days{floor_div(wall_ms, k_day_ms)}};
    const year_month_day ymd{day};
    const sys_days first{ymd.year() / ymd.month() / 1};
    return static_cast<std::int64_t>(first.time_since_epoch().count()) * k_day_ms;
}

std::int64_t utc_next_month_start_ms(std::int64_t wall_ms) {
    using namespace std::chrono;
    const sys_days day{days{floor_div(wall_ms, k_day_ms)}};
    const year_month_day ymd{day};
    const sys_days first{(ymd.year() / ymd.month() / 1) + months{1}};
    return static_cast<std::int64_t>(first.time_since_epoch().count()) * k_day_ms;
}

bool SpendBudget::active() const {
    auto on = [](const BudgetLimits& l) { return l.daily_usd > 0 || l.monthly_usd > 0; };
    if (on(m_cfg.agent_default)) return true;
    return std::any_of(m_cfg.agents.begin(), m_cfg.agents.end(), [&](const auto& kv) { return on(kv.second); });
}

BudgetLimits SpendBudget::limits_for(std::string_view agent) const {
    if (auto it = m_cfg.agents.find(agent); it != m_cfg.agents.end()) return it->second;
    return m_cfg.agent_default;
}

Result<AgentSpend> SpendBudget::spend(const std::string& agent) {
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    const auto day0 = utc_day_start_ms(now);
    const auto month0 = utc_month_start_ms(now);
    AgentSpend s;
    s.agent = agent;
    s.limits = limits_for(agent);
    L04_TRY_ASSIGN(auto spent, spent_since(*m_db, agent, day0, month0));
    s.day_usd = spent.day_usd;
    s.month_usd = spent.month_usd;
    return s;
}

Result<std::int64_t> SpendBudget::reserve(const std::string& agent, double worst_usd) {
    const auto limits = limits_for(agent);
    if (limits.daily_usd <= 0 && limits.monthly_usd <= 0) return std::int64_t{0};
    L04_TRY(check(agent));
    std::lock_guard lk(m_mu);
    const auto now = m_clock.wall_ms();
    auto tx = Transaction::begin(*m_db);
    if (!tx) return std::int64_t{0};
    double reserved = 0;
    {
        auto held = m_db->cached("SELECT COALESCE(SUM(usd), 0) FROM budget_reservations WHERE agent = ? AND created_ms >= ?");
        if (!held) return std::int64_t{0};
        StmtReset done(**held);
        (*held)->bind(1, agent).bind(2, now - m_cfg.reservation_ttl_ms);
        auto hr = (*held)->step();
        if (!hr || !*hr) return std::int64_t{0};
        reserved = (*held)->col_double(0);
    }
    // Spend as of now, inside the same write transaction: no other process
    // can reserve between the read and the insert.
    const auto day0 = utc_day_start_ms(now);
    auto so_far = spent_since(*m_db, agent, day0, utc_month_start_ms(now));
    if (!so_far) return std::int64_t{0};
    const double day = so_far->day_usd, month = so_far->month_usd;
    auto refuse = [&](const char* budget, double spent, double limit, std::int64_t reset_ms) {
        Error e(ErrorCode::quota_exhausted,
                std::string(budget) + " budget of agent '" + agent + "' cannot cover this request: spent " + usd(spent) +
                    " of " + usd(limit) + (reserved > 0 ? ", " + usd(reserved) + " held by requests in flight" : "") +
                    ", and this one may cost up to " + usd(worst_usd) + " (its max_tokens at the model's price); "
                    "lower max_tokens, or wait for the budget to reset in " +
                    std::to_string((reset_ms - now + 59'999) / 60'000) + " min (UTC)");
        e.retryable = false;
        e.retry_after = std::chrono::milliseconds(std::max<std::int64_t>(1, reset_ms - now));
        (void)bump_counter(*m_db, CounterId::budget_rejections);
        (void)tx->commit();
        return fail(std::move(e));
    };
    if (limits.monthly_usd > 0 && month + reserved + worst_usd > limits.monthly_usd + 1e-12)
        return refuse("monthly", month, limits.monthly_usd, utc_next_month_start_ms(now));
    if (limits.daily_usd > 0 && day + reserved + worst_usd > limits.daily_usd + 1e-12)
        return refuse("daily", day, limits.daily_usd, day0 + k_day_ms);
    {
        auto ins = m_db->cached("INSERT INTO budget_reservations(agent, usd, created_ms) VALUES(?, ?, ?)");
        if (!ins) return std::int64_t{0};
        StmtReset done(**ins);
        (*ins)->bind(1, agent).bind(2, worst_usd).bind(3, now);
        if (!(*ins)->run()) return std::int64_t{0};
    }
    const auto id = m_db->last_insert_rowid();
    (void)m_db->exec("DELETE FROM budget_reservations WHERE created_ms < " + std::to_string(now - m_cfg.reservation_ttl_ms));
    if (!tx->commit()) return std::int64_t{0};
    return id;
}

void SpendBudget::release(std::int64_t id) {
    if (id <= 0) return;
    std::lock_guard lk(m_mu);
    if (auto d = m_db->cached("DELETE FROM budget_reservations WHERE id = ?")) {
        StmtReset done(**d);
        (*d)->bind(1, id);
        (void)(*d)->run();
    }
}

Status SpendBudget::check(const std::string& agent) {
    const auto limits = limits_for(agent);
    if (limits.daily_usd <= 0 && limits.monthly_usd <= 0) return {};
    auto s = spend(agent);
    if (!s) return {};
    const auto now = m_clock.wall_ms();
    auto refuse = [&](const char* budget, double spent, double limit, std::int64_t reset_ms) {
        Error e(ErrorCode::quota_exhausted, std::string(budget) + " budget of agent '" + agent + "' exhausted: spent " +
                                                usd(spent) + " of " + usd(limit) + "; it resets in " +
                                                std::to_string((reset_ms - now + 59'999) / 60'000) + " min (UTC)");
        e.retryable = false;
        e.retry_after = std::chrono::milliseconds(std::max<std::int64_t>(1, reset_ms - now));
        std::lock_guard lk(m_mu);
        (void)bump_counter(*m_db, CounterId::budget_rejections);
        return fail(std::move(e));
    };
    if (limits.monthly_usd > 0 && s->month_usd >= limits.monthly_usd)
        return refuse("monthly", s->month_usd, limits.monthly_usd, utc_next_month_start_ms(now));
    if (limits.daily_usd > 0 && s->day_usd >= limits.daily_usd)
        return refuse("daily", s->day_usd, limits.daily_usd, utc_day_start_ms(now) + k_day_ms);
    return {};
}

}  // namespace l04
