#include <l04/core/clock.hpp>

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

void SystemClock::sleep_for(duration d) { std::this_thread::sleep_for(d); }

SystemClock& SystemClock::instance() {
    static SystemClock c;
    return c;
}

}  // namespace l04
