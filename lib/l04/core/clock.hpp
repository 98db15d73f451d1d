#pragma once
// Time source. Every stage takes a Clock& so tests can advance a ManualClock
// instead of sleeping. now() is monotonic (steady); wall() is UTC wall time in
// milliseconds since the epoch, for persisted timestamps.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace l04 {

class Clock {
public:
    using duration = std::chrono::nanoseconds;
    virtual ~Clock() = default;
    // Monotonic time since an arbitrary origin.
    virtual duration now() const = 0;
    // Milliseconds since the Unix epoch (UTC).
    virtual std::int64_t wall_ms() const = 0;
    // Blocks for d (ManualClock: advances instead of blocking).
    virtual void sleep_for(duration d) = 0;
};

class SystemClock final : public Clock {
public:
    duration now() const override;
    std::int64_t wall_ms() const override;
    void sleep_for(duration d) override;
    static SystemClock& instance();
};

// Test clock: time moves only when told. sleep_for advances it.
class ManualClock final : public Clock {
public:
    explicit ManualClock(std::int64_t wall_ms_start = 1'700'000'000'000) : m_wall0(wall_ms_start) {}
    duration now() const override { return duration(m_ns.load()); }
    std::int64_t wall_ms() const override { return m_wall0 + m_ns.load() / 1'000'000; }
    void sleep_for(duration d) override { advance(d); }
    void advance(duration d) { m_ns += d.count(); }

private:
    std::atomic<std::int64_t> m_ns{0};
    std::int64_t m_wall0;
};

}  // namespace l04
