#pragma once
// Circuit breaker per provider: CLOSED → OPEN after N consecutive faults →
// HALF_OPEN after the recovery timeout (one probe) → CLOSED or OPEN.
#include <l04/core/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace l04 {

// Stable numbers (persisted, and the value of l04_circuit_breaker_state).
enum class CircuitState : std::uint8_t { closed = 0, half_open = 1, open = 2 };
std::string_view circuit_state_name(CircuitState s);

struct CircuitSnapshot {
    std::string provider;
    CircuitState state = CircuitState::closed;
    int consecutive_failures = 0;
    std::int64_t opened_at_ms = 0;
    std::int64_t blocked_until_ms = 0;  // open, or kept out by a 429 Retry-After
    std::string last_error;
};

class CircuitBreaker {
public:
    virtual ~CircuitBreaker() = default;
    // OK when a request may go to the provider now (in HALF_OPEN: the one
    // probe). Otherwise E4701 with retry_after.
    virtual Status allow(const std::string& provider) = 0;
    virtual void on_success(const std::string& provider) = 0;
    // Counts a fault unless the error is the caller's (auth, invalid request);
    // a 429 with retry_after keeps the provider out without counting.
    virtual void on_failure(const std::string& provider, const Error& e) = 0;
    virtual CircuitSnapshot snapshot(const std::string& provider) = 0;
};

// Never opens (used where no state is wanted).
class NullCircuitBreaker final : public CircuitBreaker {
public:
    Status allow(const std::string&) override { return {}; }
    void on_success(const std::string&) override {}
    void on_failure(const std::string&, const Error&) override {}
    CircuitSnapshot snapshot(const std::string& p) override {
        CircuitSnapshot s;
        s.provider = p;
        return s;
    }
};

}  // namespace l04
