#include <l04/health.hpp>
#include <l04/gateway.hpp>
#include <l04/core/fiber.hpp>

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
    // Waiting on the probes' threads blocks: on a fiber (l04d) the wait is
    // on a helper thread, so a slow provider never stalls the loop thread.
    run_blocking([&] {
        for (auto& [id, fut] : running) {
            ProviderHealth ph = fut.get();
            std::lock_guard lk(m_mu);
            m_last[id] = {m_clock.now(), ph};
            out[id] = std::move(ph);
        }
    });
    return out;
}

// The gateway's health report (/health, `l04ctl health`) and the gauges
// /metrics reads: both describe the stages' state, neither changes it.

void Gateway::refresh_metrics() {
    const CacheStats cs = m_cache->stats();
    m_metrics.set("l04_cache_hits_total", {}, static_cast<double>(cs.exact_hits + cs.semantic_hits));
    m_metrics.set("l04_cache_semantic_hits_total", {}, static_cast<double>(cs.semantic_hits));
    m_metrics.set("l04_cache_misses_total", {}, static_cast<double>(cs.misses));
    m_metrics.set("l04_cache_semantic_refusals_total", {{"reason", "guard"}}, static_cast<double>(cs.guard_refusals));
    m_metrics.set("l04_cache_semantic_refusals_total", {{"reason", "ambiguous"}}, static_cast<double>(cs.ambiguous));
    m_metrics.set("l04_cache_entries", {}, static_cast<double>(cs.entries));
    const QueueStats qs = m_queue->stats();
    for (const char* p : {"high", "normal", "low"}) {
        auto it = qs.pending_by_priority.find(p);
        m_metrics.set("l04_queue_depth", {{"priority", p}}, it == qs.pending_by_priority.end() ? 0.0 : static_cast<double>(it->second));
    }
    for (const auto& [id, info] : m_registry.providers())
        m_metrics.set("l04_circuit_breaker_state", {{"provider", id}}, static_cast<double>(m_breaker->snapshot(id).state));
}

HealthReport Gateway::health(bool probe) {
    HealthReport h;
    h.timestamp_ms = m_clock->wall_ms();
    h.total_models = m_registry.models().size();
    h.cache = m_cache->stats();
    h.queue = m_queue->stats();
    std::vector<std::pair<std::string, Provider*>> to_probe;
    for (const auto& [id, info] : m_registry.providers()) {
        ProviderStatus ps;
        ps.id = id;
        ps.kind = info.kind;
        const auto& cfg = m_provider_cfg[id];
        ps.configured = cfg.configured;
        ps.circuit = m_breaker->snapshot(id);
        m_metrics.set("l04_circuit_breaker_state", {{"provider", id}}, static_cast<double>(ps.circuit.state));
        if (!cfg.configured) {
            ps.state = HealthState::unconfigured;
            ps.message = cfg.why_not;
        } else if (ps.circuit.state == CircuitState::open) {
            ps.state = HealthState::unhealthy;
            ps.message = "circuit open: " + ps.circuit.last_error;
        } else if (ps.circuit.state == CircuitState::half_open) {
            ps.state = HealthState::degraded;
            ps.message = "circuit half open";
        }
        if (probe && cfg.configured && ps.circuit.state != CircuitState::open) {
            if (auto prov = provider_for(id)) {
                to_probe.emplace_back(id, *prov);
            } else {
                ps.state = HealthState::unhealthy;
                ps.message = prov.error().message;
            }
        }
        h.providers.push_back(std::move(ps));
    }
    const auto probed = m_prober->probe(to_probe);
    for (auto& ps : h.providers) {
        auto it = probed.find(ps.id);
        if (it == probed.end()) continue;
        ps.state = it->second.state;
        ps.probe_latency_ms = it->second.latency_ms;
        if (!it->second.message.empty()) ps.message = it->second.message;
    }
    int configured = 0, healthy = 0;
    for (const auto& ps : h.providers) {
        if (!ps.configured) continue;
        ++configured;
        if (ps.state == HealthState::healthy) ++healthy;
    }
    if (configured == 0 || healthy == 0) h.gateway = "unhealthy";
    else if (healthy < configured) h.gateway = "degraded";
    else h.gateway = "healthy";
    return h;
}

}  // namespace l04
