#pragma once
// Retry pacing: full-jitter exponential backoff (the delay before retry n,
// counted from 0, is uniform in [0, min(max, base * 2^n)) ) that never
// waits less than a Retry-After the provider sent. The random source is
// injected, as Envoy injects its RandomGenerator, so tests assert exact
// delays; the default is a seeded Mersenne twister behind a mutex.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace l04 {

struct BackoffPolicy {
    std::int64_t base_ms = 500;     // retry.base_delay
    std::int64_t max_ms = 30'000;   // retry.max_delay
};

class Backoff {
public:
    // A number uniform in [0, 1); called from many threads at once.
    using Random = std::function<double()>;
    explicit Backoff(BackoffPolicy policy = {}, Random random = {});
    // The upper bound of the delay before retry `retry` (0-based).
    double ceiling_ms(int retry) const;
    // The delay before retry `retry`: jittered below the ceiling, raised to
    // the provider's Retry-After when it sent one.
    double delay_ms(int retry, std::optional<std::chrono::milliseconds> retry_after = std::nullopt) const;
    const BackoffPolicy& policy() const { return m_policy; }

private:
    BackoffPolicy m_policy;
    Random m_random;
};

}  // namespace l04
