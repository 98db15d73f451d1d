#pragma once
// Builds the limit stage from settings, on the state database under
// state_dir (":memory:" works for tests, but then nothing is shared).
#include <l04/config/settings.hpp>
#include <l04/core/clock.hpp>
#include <l04/limit/circuit_breaker.hpp>
#include <l04/limit/rate_limiter.hpp>
#include <l04/limit/spend_budget.hpp>
#include <l04/limit/sqlite_circuit_breaker.hpp>
#include <l04/limit/sqlite_rate_limiter.hpp>

#include <memory>
#include <string>

namespace l04 {

// rate_limit.enforced, rate_limit.requests_per_minute / tokens_per_minute
// (agent defaults; <= 0 = unlimited) and rate_limit.scopes. Fails with E4004
// on a malformed scopes string.
Result<RateLimitConfig> rate_limit_config_from(const Settings& s);
// circuit_breaker.failure_threshold (must be >= 1, else E4004),
// circuit_breaker.recovery_timeout; the probe timeout is request.timeout.
Result<CircuitBreakerConfig> circuit_breaker_config_from(const Settings& s);
// budget.daily_usd, budget.monthly_usd, budget.agents. E4004 when malformed.
Result<BudgetConfig> budget_config_from(const Settings& s);

// SqliteRateLimiter on $state_dir/l04.db, or UnlimitedRateLimiter when
// rate_limit.enabled is false; leases of rate_limit.lease from the first
// decision when `daemon` (l04d), else only of busy buckets.
// Fails with E4004 (config) or E4000/E4300 (state directory or database).
Result<std::shared_ptr<RateLimiter>> make_rate_limiter(const Settings& s, const std::string& state_dir,
                                                       Clock& clock, bool daemon = false);
// SqliteCircuitBreaker on $state_dir/l04.db. Same failures.
Result<std::shared_ptr<CircuitBreaker>> make_circuit_breaker(const Settings& s, const std::string& state_dir,
                                                             Clock& clock);
// SpendBudget on $state_dir/l04.db (always returned; check() is free when no
// budget is configured). Same failures.
Result<std::shared_ptr<SpendBudget>> make_spend_budget(const Settings& s, const std::string& state_dir,
                                                       Clock& clock);

}  // namespace l04
