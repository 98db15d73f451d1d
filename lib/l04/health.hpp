#pragma once
// Provider health probes for /health and `l04ctl health`: each provider's
// cheap probe (Provider::health_check) run in parallel, bounded by a
// timeout, and remembered for a few seconds so that a monitor polling
// /health does not turn into a stream of upstream calls.
#include <l04/core/clock.hpp>
#include <l04/provider/provider.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace l04 {

class HealthProber {
public:
    explicit HealthProber(Clock& clock, std::chrono::milliseconds ttl = std::chrono::seconds(5),
                          std::chrono::milliseconds timeout = std::chrono::seconds(2))
        : m_clock(clock), m_ttl(ttl), m_timeout(timeout) {}
    // One result per provider given: a fresh probe (all run at once, each
    // bounded by the timeout), or the last one when it is younger than ttl.
    std::map<std::string, ProviderHealth> probe(const std::vector<std::pair<std::string, Provider*>>& providers);

private:
    Clock& m_clock;
    std::chrono::milliseconds m_ttl;
    std::chrono::milliseconds m_timeout;
    std::mutex m_mu;
    std::map<std::string, std::pair<Clock::duration, ProviderHealth>> m_last;
};

}  // namespace l04
