#pragma once
// Spend budgets: an optional USD limit per agent per UTC day and per UTC
// calendar month, checked against the usage ledger (table usage: agent,
// time_ms, cost_usd) so every process sees the same spend. Before a call the
// gateway reserves the request's worst-case cost (reserve()): refused when
// spend + what requests in flight reserved + this worst case passes a limit,
// so concurrent requests cannot overshoot together. After the call the usage
// row holds the real cost and release() drops the reservation. Reservations
// of a process that died expire after reservation_ttl_ms.
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/store/db.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace l04 {

// USD per period; 0 = no limit.
struct BudgetLimits {
    double daily_usd = 0;
    double monthly_usd = 0;
    bool operator==(const BudgetLimits&) const = default;
};

struct BudgetConfig {
    BudgetLimits agent_default;                            // every agent without an entry
    std::map<std::string, BudgetLimits, std::less<>> agents;  // agent id → limits
    std::int64_t reservation_ttl_ms = 3'600'000;
};

// Parses the `budget.agents` setting: "agent=daily[/monthly]" entries
// separated by ',' or ';', e.g. "alice=5/100, cron=1". 0 or '-' = no limit;
// an omitted monthly is the default. Fails with E4004 naming the entry.
Result<std::map<std::string, BudgetLimits, std::less<>>> parse_budget_agents(std::string_view spec,
                                                                             const BudgetLimits& agent_default);

// Wall-clock ms of the start of the UTC day / month containing wall_ms.
std::int64_t utc_day_start_ms(std::int64_t wall_ms);
std::int64_t utc_month_start_ms(std::int64_t wall_ms);
std::int64_t utc_next_month_start_ms(std::int64_t wall_ms);

struct AgentSpend {
    std::string agent;
    double day_usd = 0;
    double month_usd = 0;
    BudgetLimits limits;
};

class SpendBudget {
public:
    SpendBudget(std::unique_ptr<Db> db, BudgetConfig cfg, Clock& clock)
        : m_db(std::move(db)), m_cfg(std::move(cfg)), m_clock(clock) {}

    // True when any agent has a limit (otherwise check() never reads).
    bool active() const;
    BudgetLimits limits_for(std::string_view agent) const;
    // The agent's spend today and this month (UTC) and its limits. E4300 on
    // database error.
    Result<AgentSpend> spend(const std::string& agent);
    // OK while the agent's spend is below each of its limits. Else E4402
    // quota_exhausted naming the budget, the spend and the limit, with
    // retry_after = time until the period resets. A database error admits
    // (the ledger is not the place to stop traffic) and is returned by spend().
    Status check(const std::string& agent);
    // check(), then holds worst_usd against the agent's budgets until
    // release(): E4402 naming the budget, the spend, what is reserved and
    // what this request may cost when they do not fit. Returns the
    // reservation id (0 when the agent has no budget or on database error,
    // which admits).
    Result<std::int64_t> reserve(const std::string& agent, double worst_usd);
    void release(std::int64_t id);

private:
    std::unique_ptr<Db> m_db;
    BudgetConfig m_cfg;
    Clock& m_clock;
    std::mutex m_mu;
};

}  // namespace l04
