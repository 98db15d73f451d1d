#include <l04/core/clock.hpp>
#include <l04/core/fiber.hpp>

#include <thread>

namespace l04 {

Clock::duration SystemClock::now() const {
    return std::chrono::duration_cast<duration>(std::chrono::steady_clock::now().time_since_epoch());
}

std::int64_t SystemClock::wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void SystemClock::sleep_for(duration d) {
    if (on_fiber()) sleep_real(d);
    else std::this_thread::sleep_for(d);
}

void Clock::wait(Condition& c, std::unique_lock<std::mutex>& lk, std::optional<duration> d) {
    if (!on_fiber()) {
        wait(c.cv(), lk, d);
        return;
    }
    if (d && *d <= duration::zero()) return;
    std::optional<duration> until;
    if (d) until = SystemClock::instance().now() + *d;
    c.wait_fiber(lk, until);
}

void Clock::wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, std::optional<duration> d) {
    if (!d) {
        cv.wait(lk);
        return;
    }
    if (*d <= duration::zero()) return;
    cv.wait_for(lk, *d);
}

void ManualClock::wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, std::optional<duration> d) {
    // A timed wait lasts one real millisecond, whatever d: the caller then
    // re-reads this clock, which only advance() moves.
    if (d && *d > duration::zero()) d = std::chrono::milliseconds(1);
    Clock::wait(cv, lk, d);
}

void ManualClock::wait(Condition& c, std::unique_lock<std::mutex>& lk, std::optional<duration> d) {
    if (d && *d > duration::zero()) d = std::chrono::milliseconds(1);
    Clock::wait(c, lk, d);
}

SystemClock& SystemClock::instance() {
    static SystemClock c;
    return c;
}

}  // namespace l04
