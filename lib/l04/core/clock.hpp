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
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

namespace l04 {

class Condition;  // core/fiber.hpp: a condition variable fibers can wait on too

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
    // The same on a Condition: on a fiber the fiber parks (the loop thread
    // serves others meanwhile); elsewhere as above.
    virtual void wait(Condition& c, std::unique_lock<std::mutex>& lk, std::optional<duration> d);
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

// Two kinds of time, never mixed (as Envoy separates MonotonicTime and
// SystemTime): a MonotonicTime is a point on Clock::now(), which never
// jumps; deadlines, timeouts and waits use it. Wall time (Clock::wall_ms)
// is only for what users read (timestamps, ledger rows, Retry-After dates)
// and for a deadline a caller gives as a date, converted once on arrival.
using MonotonicTime = Clock::duration;

// Milliseconds from a to b (latencies, time to first token).
inline double ms_between(MonotonicTime a, MonotonicTime b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// When a request must be done by. A wall-clock date becomes a monotonic
// point once (Deadline::at_wall), so a clock step afterwards (NTP, a
// suspended laptop) neither cuts a request short nor lets it run on.
//
// Durations come in as milliseconds and are clamped to ±100 years before
// they become nanoseconds (which overflow at 292 years): a timeout of
// "20000w", a deadline in the year 3000 or a Retry-After of 1e15 ms is a
// long time, never a wrapped negative one that has already passed.
class Deadline {
public:
    static constexpr std::int64_t k_max_ms = 100LL * 365 * 24 * 3600 * 1000;

    Deadline() = default;  // never
    static Deadline at(MonotonicTime t) { return Deadline(t); }
    static Deadline after(const Clock& c, std::chrono::milliseconds d) {
        return Deadline(c.now() + std::chrono::milliseconds(std::clamp<std::int64_t>(d.count(), -k_max_ms, k_max_ms)));
    }
    static Deadline at_wall(const Clock& c, std::int64_t wall_ms) {
        const std::int64_t now = c.wall_ms();
        // Both are dates in milliseconds: clamp before subtracting.
        const std::int64_t at = std::clamp<std::int64_t>(wall_ms, now - k_max_ms, now + k_max_ms);
        return after(c, std::chrono::milliseconds(at - now));
    }
    bool never() const { return !m_at; }
    // Time left (zero or negative once passed); a large value for never.
    Clock::duration remaining(const Clock& c) const {
        return m_at ? *m_at - c.now() : std::chrono::duration_cast<Clock::duration>(std::chrono::hours(24 * 365));
    }
    std::int64_t remaining_ms(const Clock& c) const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(remaining(c)).count();
    }
    bool passed(const Clock& c) const { return m_at && *m_at <= c.now(); }
    // Whether waiting `d` from now would reach the deadline (compared in
    // milliseconds: any `d` is safe).
    bool reached_after(const Clock& c, std::chrono::milliseconds d) const {
        return m_at && d.count() >= remaining_ms(c);
    }
    std::optional<MonotonicTime> when() const { return m_at; }

private:
    explicit Deadline(MonotonicTime t) : m_at(t) {}
    std::optional<MonotonicTime> m_at;
};

class SystemClock final : public Clock {
public:
    duration now() const override;
    std::int64_t wall_ms() const override;
    // On a fiber (core/fiber.hpp) the fiber sleeps and its thread serves
    // others; elsewhere the thread sleeps.
    void sleep_for(duration d) override;
    static SystemClock& instance();
};

// Test clock: time moves only when told. sleep_for advances it.
class ManualClock final : public Clock {
public:
    explicit ManualClock(std::int64_t wall_ms_start = 1'700'000'000'000) : m_wall0(wall_ms_start) {}
    duration now() const override { return duration(m_ns.load()); }
    std::int64_t wall_ms() const override { return m_wall0.load() + m_ns.load() / 1'000'000; }
    void sleep_for(duration d) override { advance(d); }
    // Time moves only by advance(), which notifies no one: a timed wait
    // returns after a short real slice (1 ms) so that its caller re-reads the
    // time; an untimed wait is an ordinary wait.
    void wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, std::optional<duration> d) override;
    void wait(Condition& c, std::unique_lock<std::mutex>& lk, std::optional<duration> d) override;
    void advance(duration d) { m_ns += d.count(); }
    // The wall clock is set (NTP, a person, a resumed laptop): wall_ms()
    // jumps by d, the monotonic clock does not move.
    void step_wall(std::chrono::milliseconds d) { m_wall0 += d.count(); }

private:
    std::atomic<std::int64_t> m_ns{0};
    std::atomic<std::int64_t> m_wall0;
};

}  // namespace l04
