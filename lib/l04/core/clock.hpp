#pragma once
// Time source. Every stage takes a Clock& so tests can advance a ManualClock
// instead of sleeping. now() is monotonic (steady); wall() is UTC wall time in
// milliseconds since the epoch, for persisted timestamps.
//
// This is the one place in lib/ that reads a clock, sleeps or waits with a
// timeout (tests/unit/test_layering.cpp checks it). Code that bounds real
// I/O (sockets, child processes, SQLite's busy handler) uses
// SystemClock::instance(): those deadlines are real by nature.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

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
    // Blocks on cv (lk held) until it is notified or `d` of this clock's time
    // has passed (nullopt: until notified). Wake-ups may be spurious: callers
    // loop on their condition.
    virtual void wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, std::optional<duration> d);
    // As std::condition_variable::wait_for with a predicate, on this clock:
    // true when pred() holds, false when `d` passed first.
    template <class Pred>
    bool wait_for(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, duration d, Pred pred) {
        const duration until = now() + d;
        while (!pred()) {
            const duration left = until - now();
            if (left <= duration::zero()) return pred();
            wait(cv, lk, left);
        }
        return true;
    }
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
    // Time moves only by advance(), which notifies no one: a timed wait
    // returns after a short real slice (1 ms) so that its caller re-reads the
    // time; an untimed wait is an ordinary wait.
    void wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, std::optional<duration> d) override;
    void advance(duration d) { m_ns += d.count(); }

private:
    std::atomic<std::int64_t> m_ns{0};
    std::int64_t m_wall0;
};

}  // namespace l04
