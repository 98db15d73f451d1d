#include <l04/recorder.hpp>
#include <l04/core/strings.hpp>

#include <spdlog/spdlog.h>

namespace l04 {

Recorder::Recorder(Metrics& metrics, Ledger& ledger, std::shared_ptr<UsageExporter> exporter, const Registry& registry,
                   Clock& clock, std::string default_agent, const std::vector<std::string>& secrets)
    : m_metrics(metrics),
      m_ledger(ledger),
      m_exporter(std::move(exporter)),
      m_registry(registry),
      m_clock(clock),
      m_default_agent(std::move(default_agent)),
      m_secrets(secrets) {
    declare();
    seed_from_ledger();
}

void Recorder::declare() {
    Metrics& m = m_metrics;
    m.declare("l04_inference_requests_total", "counter", "Finished inference requests by provider, model and status.");
    m.declare("l04_inference_latency_seconds", "histogram", "End-to-end request latency.");
    m.declare("l04_gateway_overhead_seconds", "histogram", "Request latency minus time spent waiting on providers.");
    m.declare("l04_time_to_first_token_seconds", "histogram", "Time to the first streamed token.");
    m.declare("l04_cache_hits_total", "counter", "Cache hits (exact and semantic).");
    m.declare("l04_cache_semantic_hits_total", "counter", "Semantic cache hits.");
    m.declare("l04_cache_misses_total", "counter", "Cache misses.");
    m.declare("l04_cache_semantic_refusals_total", "counter",
              "Semantic lookups that had a candidate above the threshold and still missed, by reason (guard, ambiguous).");
    m.declare("l04_rate_limit_rejections_total", "counter", "Requests rejected by rate limits.");
    m.declare("l04_rate_limit_shadow_rejections_total", "counter", "Requests over a limit admitted in shadow mode.");
    m.declare("l04_circuit_breaker_state", "gauge", "Circuit state per provider (0 closed, 1 half open, 2 open).");
    m.declare("l04_active_requests", "gauge", "Requests in flight per provider.");
    m.declare("l04_token_usage_total", "counter", "Tokens by direction and model.");
    m.declare("l04_cost_usd_total", "counter", "Cost in USD by model.");
    m.declare("l04_retries_total", "counter", "Retries of a provider call.");
    m.declare("l04_fallbacks_total", "counter", "Failovers to the next model in the chain.");
    m.declare("l04_gateway_info", "gauge", "Gateway build information.");
    m.declare("l04_queue_depth", "gauge", "Requests waiting in the queue by priority.");
    m.declare("l04_cache_entries", "gauge", "Entries in the response cache.");
    m.set("l04_gateway_info", {{"version", L04_VERSION}, {"layer", "L04"}}, 1);
}

void Recorder::seed_from_ledger() {
    auto agg = m_ledger.aggregates();
    if (!agg) return;
    for (const auto& a : *agg) {
        const std::string model = model_label(a.model);
        const std::string provider = m_registry.provider(a.provider) ? a.provider : std::string();
        m_metrics.add("l04_inference_requests_total", {{"provider", provider}, {"model", model}, {"status", a.status}},
                      static_cast<double>(a.requests));
        if (a.status != "ok") continue;
        m_metrics.add("l04_token_usage_total", {{"direction", "input"}, {"model", model}}, static_cast<double>(a.prompt_tokens));
        m_metrics.add("l04_token_usage_total", {{"direction", "output"}, {"model", model}},
                      static_cast<double>(a.completion_tokens));
        m_metrics.add("l04_cost_usd_total", {{"model", model}}, a.cost_usd);
    }
}

std::string Recorder::model_label(const std::string& model) const {
    // Metric labels come only from the registry: a client string (an unknown
    // model name) never becomes a series of its own.
    if (model.empty()) return "";
    const ModelInfo* m = m_registry.find(model);
    return m ? m->id : std::string("other");
}

std::string Recorder::agent_label(const std::string& agent) {
    std::lock_guard lk(m_label_mu);
    if (m_agent_labels.count(agent)) return agent;
    if (m_agent_labels.size() >= k_max_agent_labels) return "other";
    m_agent_labels.insert(agent);
    return agent;
}

const Recorder::Series& Recorder::series(const std::string& provider, const std::string& model) {
    thread_local std::string key;  // reused: no allocation per request
    key.assign(provider);
    key += '\x1f';
    key += model;
    return m_series.get(key, [&] {
        const Labels pm{{"provider", provider}, {"model", model}};
        auto requests = [&](const char* status) {
            Labels l = pm;
            l.emplace_back("status", status);
            return m_metrics.series("l04_inference_requests_total", l);
        };
        return Series{requests("ok"),
                      requests("error"),
                      requests("cancelled"),
                      m_metrics.histogram("l04_inference_latency_seconds", pm),
                      m_metrics.histogram("l04_time_to_first_token_seconds", pm),
                      m_metrics.series("l04_token_usage_total", {{"direction", "input"}, {"model", model}}),
                      m_metrics.series("l04_token_usage_total", {{"direction", "output"}, {"model", model}}),
                      m_metrics.series("l04_cost_usd_total", {{"model", model}})};
    });
}

void Recorder::record(const InferenceRequest& req, const Result<InferenceResponse>& r, const Outcome& o) {
    const std::string model = model_label(o.model);
    const Series& s = series(o.provider, model);
    UsageRow row;
    row.request_id = req.request_id;
    row.time_ms = m_clock.wall_ms();
    row.agent = req.agent_did.empty() ? m_default_agent : req.agent_did;
    row.model = o.model.substr(0, 128);  // what was asked (bounded); metrics use the label
    row.provider = o.provider;
    row.latency_ms = o.latency_ms;
    row.ttft_ms = o.ttft_ms;
    row.stream = req.stream;
    row.attempts = o.attempts;
    row.saved_usd = o.saved_usd;
    row.metadata = req.metadata;
    std::string status = "ok";
    if (r) {
        row.usage = r->token_usage;
        row.cost_usd = r->cost_usd;
        row.cached = r->cache_hit;
        const bool spent = r->cache_hit == CacheHit::none;  // a hit used no provider tokens
        s.tokens_in.add(static_cast<double>(spent ? r->token_usage.prompt_tokens : 0));
        s.tokens_out.add(static_cast<double>(spent ? r->token_usage.completion_tokens : 0));
        s.cost.add(r->cost_usd);
        spdlog::info("request {} agent={} model={} provider={} status=ok tokens={}/{} cost={:.6f} latency={:.1f}ms cached={}",
                     req.request_id, row.agent, model, o.provider, r->token_usage.prompt_tokens,
                     r->token_usage.completion_tokens, r->cost_usd, o.latency_ms, cache_hit_name(r->cache_hit));
    } else {
        // A caller that went away (a closed pipe, a dropped connection) is
        // recorded as such, not as a provider error.
        status = o.cancelled ? "cancelled" : "error";
        row.error_code = static_cast<int>(r.error().code);
        spdlog::info("request {} agent={} model={} provider={} status={} code={} latency={:.1f}ms: {}", req.request_id,
                     row.agent, model, o.provider, status, code_string(r.error().code), o.latency_ms,
                     redact_secrets(r.error().message, m_secrets));
    }
    row.status = status;
    (r ? s.ok : o.cancelled ? s.cancelled : s.error).inc();
    s.latency.observe(o.latency_ms / 1000.0);
    if (o.ttft_ms) s.ttft.observe(*o.ttft_ms / 1000.0);
    if (auto st = m_ledger.record(row); !st) spdlog::warn("usage ledger write failed: {}", st.error().to_string());
    if (m_exporter) m_exporter->enqueue(row);
}

}  // namespace l04
