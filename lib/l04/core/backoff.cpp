#include <l04/core/backoff.hpp>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>

namespace l04 {

namespace {

Backoff::Random default_random() {
    struct State {
        std::mutex mu;
        std::mt19937_64 rng{std::random_device{}()};
        std::uniform_real_distribution<double> unit{0.0, 1.0};
    };
    auto state = std::make_shared<State>();
    return [state] {
        std::lock_guard lk(state->mu);
        return state->unit(state->rng);
    };
}

}  // namespace

Backoff::Backoff(BackoffPolicy policy, Random random)
    : m_policy(policy), m_random(random ? std::move(random) : default_random()) {}

double Backoff::ceiling_ms(int retry) const {
    const double base = static_cast<double>(std::max<std::int64_t>(0, m_policy.base_ms));
    const double cap = static_cast<double>(std::max<std::int64_t>(0, m_policy.max_ms));
    return std::min(cap, base * std::pow(2.0, std::clamp(retry, 0, 62)));
}

double Backoff::delay_ms(int retry, std::optional<std::chrono::milliseconds> retry_after) const {
    const double u = std::clamp(m_random(), 0.0, 1.0);
    double wait = u * ceiling_ms(retry);
    if (retry_after) wait = std::max(wait, static_cast<double>(retry_after->count()));
    return wait;
}

}  // namespace l04
