#include <l04/limit/factory.hpp>

#include <l04/store/schema.hpp>

#include <algorithm>

namespace l04 {

Result<RateLimitConfig> rate_limit_config_from(const Settings& s) {
    RateLimitConfig cfg;
    cfg.enforced = s.get_bool("rate_limit.enforced");
    cfg.allow_oversized = s.get_bool("rate_limit.allow_oversized");
    cfg.agent_default.requests_per_minute = std::max<std::int64_t>(0, s.get_int("rate_limit.requests_per_minute"));
    cfg.agent_default.tokens_per_minute = std::max<std::int64_t>(0, s.get_int("rate_limit.tokens_per_minute"));
    L04_TRY_ASSIGN(auto scopes, parse_scope_limits(s.get("rate_limit.scopes"), cfg.agent_default));
    cfg.scopes = std::move(scopes);
    return cfg;
}

Result<CircuitBreakerConfig> circuit_breaker_config_from(const Settings& s) {
    CircuitBreakerConfig cfg;
    const auto threshold = s.get_int("circuit_breaker.failure_threshold");
    if (threshold < 1 || threshold > 1'000'000)
        return fail(ErrorCode::config_invalid,
                    "circuit_breaker.failure_threshold must be at least 1 (got " + std::to_string(threshold) + ")");
    cfg.failure_threshold = static_cast<int>(threshold);
    cfg.recovery_timeout_ms = s.get_duration_ms("circuit_breaker.recovery_timeout");
    cfg.probe_timeout_ms = std::max<std::int64_t>(1000, s.get_duration_ms("request.timeout"));
    return cfg;
}

Result<BudgetConfig> budget_config_from(const Settings& s) {
    BudgetConfig cfg;
    cfg.agent_default.daily_usd = std::max(0.0, s.get_double("budget.daily_usd"));
    cfg.agent_default.monthly_usd = std::max(0.0, s.get_double("budget.monthly_usd"));
    L04_TRY_ASSIGN(auto agents, parse_budget_agents(s.get("budget.agents"), cfg.agent_default));
    cfg.agents = std::move(agents);
    return cfg;
}

Result<std::shared_ptr<RateLimiter>> make_rate_limiter(const Settings& s, const std::string& state_dir,
                                                       Clock& clock, bool daemon) {
    if (!s.get_bool("rate_limit.enabled")) return std::shared_ptr<RateLimiter>(std::make_shared<UnlimitedRateLimiter>());
    L04_TRY_ASSIGN(auto cfg, rate_limit_config_from(s));
    cfg.lease_ms = std::max<std::int64_t>(0, s.get_duration_ms("rate_limit.lease"));
    cfg.lease_only_when_busy = !daemon;
    L04_TRY_ASSIGN(auto db, open_state_db(state_dir));
    L04_TRY_ASSIGN(auto rl, SqliteRateLimiter::create(std::move(db), std::move(cfg), clock));
    return std::shared_ptr<RateLimiter>(std::move(rl));
}

Result<std::shared_ptr<CircuitBreaker>> make_circuit_breaker(const Settings& s, const std::string& state_dir,
                                                             Clock& clock) {
    L04_TRY_ASSIGN(auto cfg, circuit_breaker_config_from(s));
    L04_TRY_ASSIGN(auto db, open_state_db(state_dir));
    L04_TRY_ASSIGN(auto cb, SqliteCircuitBreaker::create(std::move(db), cfg, clock));
    return std::shared_ptr<CircuitBreaker>(std::move(cb));
}

Result<std::shared_ptr<SpendBudget>> make_spend_budget(const Settings& s, const std::string& state_dir,
                                                       Clock& clock) {
    L04_TRY_ASSIGN(auto cfg, budget_config_from(s));
    L04_TRY_ASSIGN(auto db, open_state_db(state_dir));
    return std::make_shared<SpendBudget>(std::move(db), std::move(cfg), clock);
}

}  // namespace l04
