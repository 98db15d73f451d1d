#pragma once
// The circuit breaker l04 uses: one row per provider in the state database
// (table circuit_breakers), so l04d and `l04ctl --no-daemon` runs see the
// same circuit.
//
//   CLOSED --N consecutive faults--> OPEN --recovery timeout--> HALF_OPEN
//   HALF_OPEN: exactly one probe is admitted (claimed in a transaction, so
//   across processes); success → CLOSED, fault → OPEN again.
//
// A 429 (E4401) with retry_after keeps the provider out until then
// (blocked_until_ms) without counting a fault. Errors that are the caller's
// (auth, invalid request, context length, model not found upstream) and
// errors l04 makes itself (rate limits, deadlines) are not faults; see
// counts_as_fault(). A claimed probe whose outcome never arrives is given
// up after probe_timeout_ms and the next allow() claims a new one; a probe
// whose process died (its pid gone, or reused: the start time in
// /proc/<pid>/stat differs) is free at once. Processes that share a state
// directory must share a pid namespace for that check (they already share
// a machine: SQLite is not shared across hosts).
#include <l04/core/clock.hpp>
#include <l04/limit/circuit_breaker.hpp>
#include <l04/store/change_counter.hpp>
#include <l04/store/db.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace l04 {

struct CircuitBreakerConfig {
    int failure_threshold = 5;                  // consecutive faults that open the circuit (>= 1)
    std::int64_t recovery_timeout_ms = 60'000;  // OPEN → HALF_OPEN after this
    std::int64_t probe_timeout_ms = 120'000;    // a claimed probe with no outcome expires after this
    std::int64_t busy_timeout_ms = 5'000;       // wait for other processes' transactions
};

// Whether an error from a provider is the provider's fault: unavailable,
// timeout, overloaded, generic provider errors and broken responses
// (E4200, E4201, E4202, E4207, E4600-E4699). Everything else is not.
bool counts_as_fault(const Error& e);

class SqliteCircuitBreaker final : public CircuitBreaker {
public:
    // Uses db (the state database, migrated). Fails with E4300 if a statement
    // cannot be prepared.
    static Result<std::unique_ptr<SqliteCircuitBreaker>> create(std::unique_ptr<Db> db, CircuitBreakerConfig cfg,
                                                                Clock& clock);
    ~SqliteCircuitBreaker() override;

    // OK when the provider may be called now: CLOSED and not kept out by a
    // 429, or HALF_OPEN/expired OPEN and this call claimed the probe. Else
    // E4701 (retryable) with retry_after: until blocked_until_ms, or 1 s while
    // another caller's probe is in flight. No query while no process has
    // changed any circuit since this one last read the provider's row (the
    // ChangeCounter beside the database says so): a CLOSED provider costs a
    // map lookup. A database error admits (fail open: the breaker protects
    // providers, it must not stop traffic by itself).
    Status allow(const std::string& provider) override;
    // CLOSED and clears the failure count (from HALF_OPEN, or any state but
    // OPEN: results of calls started before the circuit opened are ignored).
    // No write when already CLOSED with no failures.
    void on_success(const std::string& provider) override;
    // Faults count (and open/re-open the circuit); 429 with retry_after sets
    // blocked_until_ms; a non-fault in HALF_OPEN releases the probe.
    void on_failure(const std::string& provider, const Error& e) override;
    // The stored state (an OPEN past its blocked_until_ms is still reported
    // OPEN until a probe is claimed). Defaults for unknown providers.
    CircuitSnapshot snapshot(const std::string& provider) override;
    // Every provider with a row, sorted by name.
    std::vector<CircuitSnapshot> snapshots();
    // Forgets a provider's state (admin reset). Fails with E4300.
    Status reset(const std::string& provider);

    const CircuitBreakerConfig& config() const { return m_cfg; }

private:
    struct Row;
    SqliteCircuitBreaker(std::unique_ptr<Db> db, CircuitBreakerConfig cfg, Clock& clock);
    Status prepare();
    Result<bool> load(const std::string& provider, Row& row);
    // The provider's row as of the last change any process committed: from
    // the mirror while the change counter has not moved (and the copy is
    // younger than k_mirror_max_age), else loaded and mirrored.
    Result<bool> read(const std::string& provider, Row& row);
    // After a commit: tell every process (and forget this one's copy).
    void changed(const std::string& provider);
    Status store(const std::string& provider, const Row& row);
    // Runs fn(row) in a BEGIN IMMEDIATE transaction; fn returns whether to
    // write the row back.
    template <class Fn>
    Status update(const std::string& provider, Fn&& fn);

    std::unique_ptr<Db> m_db;
    CircuitBreakerConfig m_cfg;
    Clock& m_clock;
    std::mutex m_mu;
    std::int64_t m_self_start = 0;  // this process's start time (ticks since boot)
    Stmt m_select, m_upsert;
    // Rows read, with the change counter's value read before them. Guarded
    // by m_mu.
    struct Mirror;
    ChangeCounter m_changes;
    std::unordered_map<std::string, std::unique_ptr<Mirror>> m_mirror;
};

}  // namespace l04
