#include <l04/usage/exporter.hpp>
#include <l04/core/strings.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cmath>

namespace l04 {

UsageExporter::UsageExporter(ExporterConfig cfg, std::shared_ptr<Transport> transport, Clock& clock, bool background)
    : m_cfg(std::move(cfg)), m_transport(std::move(transport)), m_clock(clock) {
    if (background) m_thread = std::thread([this] { loop(); });
}

UsageExporter::~UsageExporter() {
    m_stop = true;
    m_cv.notify_all();
    if (m_thread.joinable()) m_thread.join();
}

void UsageExporter::enqueue(const UsageRow& row) {
    std::lock_guard lk(m_mu);
    if (m_queue.size() >= m_cfg.max_queue) {
        m_queue.pop_front();
        ++m_stats.dropped;
    }
    m_queue.push_back(row);
    if (m_queue.size() >= m_cfg.batch_size) m_cv.notify_all();
}

std::string UsageExporter::batch_json(const std::vector<UsageRow>& rows) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
        nlohmann::json j{{"request_id", r.request_id},
                         {"timestamp", iso8601_utc(r.time_ms)},
                         {"agent_did", r.agent},
                         {"model", r.model},
                         {"provider", r.provider},
                         {"prompt_tokens", r.usage.prompt_tokens},
                         {"completion_tokens", r.usage.completion_tokens},
                         {"total_tokens", r.usage.prompt_tokens + r.usage.completion_tokens},
                         {"tokens_estimated", r.usage.estimated},
                         {"cost_usd", r.cost_usd},
                         {"latency_ms", r.latency_ms},
                         {"cached", r.cached != CacheHit::none},
                         {"cache_hit", cache_hit_name(r.cached)},
                         {"stream", r.stream},
                         {"status", r.status},
                         {"attempts", r.attempts}};
        if (r.ttft_ms) j["time_to_first_token_ms"] = *r.ttft_ms;
        if (r.error_code) j["error_code"] = "E" + std::to_string(*r.error_code);
        if (!r.metadata.empty()) j["metadata"] = r.metadata;
        arr.push_back(std::move(j));
    }
    return nlohmann::json{{"source", "l04"}, {"records", arr}}.dump();
}

bool UsageExporter::send_batch(const std::vector<UsageRow>& rows) {
    HttpRequest req;
    req.method = "POST";
    req.url = m_cfg.url;
    req.body = batch_json(rows);
    req.headers = {{"Content-Type", "application/json"}};
    if (!m_cfg.api_key.empty()) req.headers.emplace_back("Authorization", "Bearer " + m_cfg.api_key);
    req.total_timeout = std::chrono::milliseconds(10000);
    for (int attempt = 0; attempt < m_cfg.max_attempts; ++attempt) {
        if (attempt > 0) {
            if (m_stop && attempt > 1) break;
            m_clock.sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(250 * std::pow(2.0, attempt - 1))));
        }
        auto r = perform_buffered(*m_transport, req);
        if (r && r->head.status >= 200 && r->head.status < 300) return true;
        const bool retry = !r || r->head.status == 429 || r->head.status >= 500;
        spdlog::warn("usage export of {} rows failed ({}){}", rows.size(),
                     r ? "HTTP " + std::to_string(r->head.status) : r.error().message, retry ? "; retrying" : "");
        if (!retry) break;
    }
    return false;
}

bool UsageExporter::flush() {
    while (true) {
        std::vector<UsageRow> batch;
        {
            std::lock_guard lk(m_mu);
            while (!m_queue.empty() && batch.size() < m_cfg.batch_size) {
                batch.push_back(std::move(m_queue.front()));
                m_queue.pop_front();
            }
        }
        if (batch.empty()) return true;
        if (send_batch(batch)) {
            std::lock_guard lk(m_mu);
            m_stats.sent += batch.size();
        } else {
            std::lock_guard lk(m_mu);
            ++m_stats.failed_batches;
            m_stats.dropped += batch.size();
            return false;
        }
    }
}

ExporterStats UsageExporter::stats() {
    std::lock_guard lk(m_mu);
    ExporterStats s = m_stats;
    s.queued = m_queue.size();
    return s;
}

void UsageExporter::loop() {
    while (!m_stop) {
        {
            std::unique_lock lk(m_mu);
            m_clock.wait_for(m_cv, lk, m_cfg.interval, [&] { return m_stop.load() || m_queue.size() >= m_cfg.batch_size; });
        }
        flush();
    }
    flush();
}

}  // namespace l04
