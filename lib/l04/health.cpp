#include <l04/health.hpp>

#include <future>

namespace l04 {

std::map<std::string, ProviderHealth> HealthProber::probe(const std::vector<std::pair<std::string, Provider*>>& providers) {
    std::map<std::string, ProviderHealth> out;
    std::vector<std::pair<std::string, std::future<ProviderHealth>>> running;
    {
        std::lock_guard lk(m_mu);
        for (const auto& entry : providers) {
            const std::string& id = entry.first;
            Provider* p = entry.second;
            auto it = m_last.find(id);
            if (it != m_last.end() && m_clock.now() - it->second.first < m_ttl) {
                out[id] = it->second.second;
                continue;
            }
            const auto timeout = m_timeout;
            running.emplace_back(id, std::async(std::launch::async, [p, timeout] { return p->health_check(timeout); }));
        }
    }
    for (auto& [id, fut] : running) {
        ProviderHealth ph = fut.get();
        std::lock_guard lk(m_mu);
        m_last[id] = {m_clock.now(), ph};
        out[id] = std::move(ph);
    }
    return out;
}

}  // namespace l04
