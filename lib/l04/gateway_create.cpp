// Gateway::create: each stage built from its typed config, or taken from the
// options when a test injects it.
#include <l04/gateway.hpp>
#include <l04/config/environment.hpp>
#include <l04/http/http1_transport.hpp>
#include <l04/limit/factory.hpp>
#include <l04/provider/factory.hpp>
#include <l04/store/schema.hpp>

#include <algorithm>

namespace l04 {

namespace {
constexpr std::int64_t k_daemon_cache_count_flush_ms = 1000;
}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::create(GatewayOptions opts) {
    std::unique_ptr<Gateway> g(new Gateway());
    g->m_settings = std::move(opts.settings);
    g->m_secrets = g->m_settings.secret_values();
    g->m_registry = std::move(opts.registry);
    g->m_clock = opts.clock ? opts.clock : &SystemClock::instance();
    g->m_transport = opts.transport ? opts.transport : make_transport(http_proxy_in_environment());
    Clock& clock = *g->m_clock;
    const std::string state_dir = opts.state_dir.empty() ? g->m_settings.state_dir() : opts.state_dir;

    L04_TRY_ASSIGN(g->m_cfg, GatewayConfig::from(g->m_settings, g->m_registry));
    const GatewayConfig& cfg = g->m_cfg;
    g->m_backoff = std::make_unique<Backoff>(cfg.backoff, std::move(opts.random));
    g->m_router = std::make_unique<Router>(g->m_registry, cfg.router);
    g->m_prober = std::make_unique<HealthProber>(clock);
    L04_TRY_ASSIGN(auto cache_db, open_state_db(state_dir));
    L04_TRY_ASSIGN(auto embedder, make_embedder(cfg.embedder, g->m_transport));
    L04_TRY_ASSIGN(g->m_embed_db, open_state_db(state_dir));
    CacheConfig cache_cfg = cfg.cache;
    // l04d counts cache hits in memory and writes them every second, so a
    // hit costs no write transaction; a short run writes each one.
    if (opts.daemon) cache_cfg.count_flush_ms = k_daemon_cache_count_flush_ms;
    g->m_cache = std::make_unique<ResponseCache>(std::move(cache_db), cache_cfg, clock, std::move(embedder));

    L04_TRY_ASSIGN(auto ledger_db, open_state_db(state_dir));
    LedgerOptions lo;
    if (state_dir != ":memory:") lo.journal_dir = state_dir + "/ledger-journal";
    g->m_ledger = std::make_unique<Ledger>(std::move(ledger_db), lo);

    if (opts.rate_limiter) {
        g->m_limiter = opts.rate_limiter;
    } else {
        L04_TRY_ASSIGN(g->m_limiter, make_rate_limiter(g->m_settings, state_dir, clock, opts.daemon));
    }
    if (opts.breaker) {
        g->m_breaker = opts.breaker;
    } else {
        L04_TRY_ASSIGN(g->m_breaker, make_circuit_breaker(g->m_settings, state_dir, clock));
    }
    if (opts.budget) {
        g->m_budget = opts.budget;
    } else {
        L04_TRY_ASSIGN(g->m_budget, make_spend_budget(g->m_settings, state_dir, clock));
    }
    g->m_queue = std::make_unique<RequestQueue>(cfg.queue, clock);

    for (const auto& [id, info] : g->m_registry.providers()) {
        g->m_provider_cfg[id] = resolve_provider_config(info, g->m_settings);
        // Keys of providers defined in models.toml (their own api_key_env)
        // are secrets too.
        if (const auto& key = g->m_provider_cfg[id].api_key; key.size() >= 8 &&
            std::find(g->m_secrets.begin(), g->m_secrets.end(), key) == g->m_secrets.end())
            g->m_secrets.push_back(key);
    }
    for (auto& [id, p] : opts.provider_overrides) {
        g->m_providers[id] = p;
        g->m_provider_cfg[id].configured = true;
    }
    std::shared_ptr<UsageExporter> exporter = opts.exporter;
    if (!exporter && !cfg.export_url.empty()) {
        ExporterConfig ec;
        ec.url = cfg.export_url;
        ec.api_key = cfg.export_api_key;
        exporter = std::make_shared<UsageExporter>(ec, g->m_transport, clock);
    }
    g->m_recorder = std::make_unique<Recorder>(g->m_metrics, *g->m_ledger, std::move(exporter), g->m_registry, clock,
                                               cfg.agent, g->m_secrets);
    g->refresh_metrics();
    return g;
}

}  // namespace l04
