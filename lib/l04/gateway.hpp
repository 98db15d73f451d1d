#pragma once
// The pipeline: the one place that knows every stage.
//   validate → route → cache → (per candidate: breaker → rate limit → queue →
//   provider with retries) → failover → settle limits → store in cache →
//   usage ledger → metrics.
// execute() returns the whole answer; stream() delivers deltas to the sink as
// they arrive and returns the final response (usage, cost, cache facts).
// Thread-safe: l04d calls it from many connection threads.
#include <l04/cache/response_cache.hpp>
#include <l04/config/registry.hpp>
#include <l04/config/settings.hpp>
#include <l04/provider/embedders.hpp>
#include <l04/core/backoff.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/health.hpp>
#include <l04/recorder.hpp>
#include <l04/http/transport.hpp>
#include <l04/limit/circuit_breaker.hpp>
#include <l04/limit/rate_limiter.hpp>
#include <l04/limit/spend_budget.hpp>
#include <l04/metrics/metrics.hpp>
#include <l04/provider/provider.hpp>
#include <l04/queue/request_queue.hpp>
#include <l04/router/router.hpp>
#include <l04/usage/exporter.hpp>
#include <l04/usage/ledger.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace l04 {

// The settings the pipeline reads, typed once when the Gateway is built
// (l04d reads its configuration at start; a new Gateway gets a new one).
// Each stage's own config is built here from Settings, so no stage and no
// request path looks a setting up by name.
struct GatewayConfig {
    std::string agent = "default";         // agent: the agent of a request that names none
    std::int64_t request_timeout_ms = 0;   // request.timeout
    int max_retries = 0;                   // retry.max_retries
    BackoffPolicy backoff;                 // retry.base_delay, retry.max_delay
    bool context_fallback = true;          // routing.context_fallback
    std::int64_t usage_retention_ms = 0;   // usage.retention (0 = keep)
    RouterConfig router;                   // routing.*
    CacheConfig cache;                     // cache.*
    EmbedderConfig embedder;               // cache.embedder, embedding.*, providers' URLs and keys
    QueueConfig queue;                     // queue.*
    std::string export_url;                // usage.export_url ("" = no export)
    std::string export_api_key;            // usage.export_api_key
    // Fails with E4101 (routing.strategy), E4001 (routing.default_model not
    // in the registry) or the routing tables' own errors.
    static Result<GatewayConfig> from(const Settings& s, const Registry& registry);
};

struct GatewayOptions {
    Settings settings = Settings::defaults();
    Registry registry;
    Clock* clock = nullptr;                       // default: SystemClock
    std::shared_ptr<Transport> transport;         // default: libcurl
    std::string state_dir;                        // default: settings.state_dir()
    // Tests: replace a provider's adapter by id.
    std::map<std::string, std::shared_ptr<Provider>> provider_overrides;
    // l04d: the long-lived process (rate-limit leases, rate_limit.lease).
    bool daemon = false;
    std::shared_ptr<RateLimiter> rate_limiter;    // default from settings
    std::shared_ptr<CircuitBreaker> breaker;      // default from settings
    std::shared_ptr<SpendBudget> budget;          // default from settings
    // Usage export (usage.export_url); tests inject one without a thread.
    std::shared_ptr<UsageExporter> exporter;
    // The backoff's random source (uniform in [0, 1)); tests inject one to
    // assert exact delays. Default: a seeded Mersenne twister.
    Backoff::Random random;
};

struct ProviderStatus {
    std::string id;
    std::string kind;
    HealthState state = HealthState::healthy;
    bool configured = true;
    std::string message;
    CircuitSnapshot circuit;
    double probe_latency_ms = 0;
};

// What the admin endpoints read (gateway_admin.cpp).
struct LimitsReport {
    std::vector<BucketState> buckets;
    std::vector<std::pair<std::string, CircuitSnapshot>> circuits;  // one per provider, by id
};
struct CacheSearchReport {
    double threshold = 0;
    std::string embedder;
    std::vector<CacheSearchHit> hits;
};
struct CacheCleared {
    std::int64_t answers = 0;
    std::int64_t embeddings = 0;
};
struct UsageReport {
    UsageGroup total;
    std::vector<UsageGroup> groups;
};

struct HealthReport {
    std::string gateway = "healthy";  // healthy, degraded, unhealthy
    std::int64_t timestamp_ms = 0;
    std::size_t total_models = 0;
    CacheStats cache;
    QueueStats queue;
    std::vector<ProviderStatus> providers;
};

class Gateway {
public:
    static Result<std::unique_ptr<Gateway>> create(GatewayOptions opts);
    ~Gateway();

    Result<InferenceResponse> execute(InferenceRequest req);
    Result<InferenceResponse> stream(InferenceRequest req, const ChunkSink& sink, const CancelToken* cancel = nullptr);
    // Embeddings (/v1/embeddings): model resolution, an exact cache per
    // input text, then breaker → rate limit → queue → provider with
    // retries, ledger and metrics, like a completion (gateway_extra.cpp).
    Result<EmbedResponse> embed(EmbedRequest req);
    // Stored /v1/responses turns (previous_response_id): each row one turn
    // (a JSON text the API layer writes) and the id it continued ("" for a
    // first turn). Rows older than 30 days are dropped as new ones come.
    struct StoredTurn {
        std::string parent;
        std::string turn;
    };
    Status store_turn(const std::string& response_id, const std::string& parent, const std::string& model,
                      const std::string& turn_json);
    // nullopt when there is no such response (never stored, or expired).
    Result<std::optional<StoredTurn>> load_turn(const std::string& response_id);
    // Drops cached embeddings (all, or one model's, or those older than).
    Result<std::int64_t> clear_embeddings(const std::string& model, std::optional<std::int64_t> older_than_ms);
    // Routing only, no provider called (l04ctl prompt --explain).
    Result<RoutingDecision> explain(const InferenceRequest& req);

    // probe=false reports circuit/config state without calling providers.
    HealthReport health(bool probe);
    CacheStats cache_stats();

    // Admin operations (gateway_admin.cpp): what the HTTP API and l04d need
    // of the stages, so that neither reaches into them.
    std::string metrics_text();  // refreshed, in Prometheus' text format
    LimitsReport limits();
    // E4000 (config_error) when the semantic cache is off.
    Result<CacheSearchReport> search_cache(const std::string& text, std::size_t k);
    // Answers and cached embeddings (all, one model's, or older than).
    Result<CacheCleared> clear_cache(const std::string& model, std::optional<std::int64_t> older_than_ms);
    Result<std::int64_t> prune_cache();
    Result<UsageReport> usage_report(std::int64_t since_ms, const std::string& by, const std::string& agent);
    // Writes the ledger's queued rows and checkpoints its WAL.
    Status checkpoint();
    Status flush_ledger();
    // Gives the rate limiter's leases back to the shared buckets and writes
    // the cache's pending hit and miss counts (l04d: every second, so an idle
    // daemon holds neither for long).
    void flush_pending();
    // Loads the semantic cache's index (l04d, at start, off the loop threads).
    void warm_cache();
    // Updates gauges and the counters kept in SQLite (cache hits/misses,
    // circuit states, queue depth) before /metrics is rendered.
    void refresh_metrics();
    // Deletes ledger rows older than usage.retention; returns how many.
    Result<std::int64_t> prune_usage();
    const Registry& registry() const { return m_registry; }
    const Settings& settings() const { return m_settings; }
    const GatewayConfig& config() const { return m_cfg; }
    Clock& clock() { return *m_clock; }
    // Inspection for tests (the API and l04d use the reports above).
    Metrics& metrics() { return m_metrics; }
    CircuitBreaker& breaker() { return *m_breaker; }
    Ledger& ledger() { return *m_ledger; }
    // Fills in defaults and checks the request (E4500/E4501/E4502).
    Status validate(InferenceRequest& req) const;

private:
    Gateway() = default;
    Result<InferenceResponse> run(InferenceRequest& req, const ChunkSink* sink, const CancelToken* cancel);
    Result<InferenceResponse> redacted(Result<InferenceResponse> r) const;
    std::string agent_label(const std::string& agent) { return m_recorder->agent_label(agent); }
    // A spend-budget hold (limit/spend_budget.hpp), given back when the
    // request is done: after the ledger is flushed, so that the real cost is
    // counted before the hold goes.
    class BudgetHold {
    public:
        BudgetHold(Gateway& gw, std::int64_t id = 0) : m_gw(gw), m_id(id) {}
        BudgetHold(const BudgetHold&) = delete;
        BudgetHold& operator=(const BudgetHold&) = delete;
        ~BudgetHold();
        void hold(std::int64_t id) { m_id = id; }
    private:
        Gateway& m_gw;
        std::int64_t m_id;
    };
    // One model of the chain: breaker → rate limit → queue → provider, with
    // retries. What the caller needs beside the answer comes back with it.
    struct Attempt {
        Result<InferenceResponse> response = fail(ErrorCode::internal_error, "not run");
        int calls = 0;                  // provider calls made
        bool delivered = false;         // chunks reached the caller
        std::optional<double> ttft_ms;  // time to the first delivered chunk
    };
    // What a call holds while it runs: its rate-limit reservation (settled
    // with the real token count after the call) and its provider slot.
    struct Admission {
        Reservation reservation;
        QueueTicket ticket;
    };
    // Rate limits (sleeping out a bucket's refill when wait_for_limits and
    // the deadline allow), then a queue slot. On failure nothing is held.
    Result<Admission> admit(const LimitRequest& lr, Priority priority, bool wait_for_limits, Deadline deadline);
    Attempt attempt_model(InferenceRequest& req, const ModelInfo& model, const ChunkSink* sink,
                          const CancelToken* cancel, Deadline deadline);
    Result<Provider*> provider_for(const std::string& id);
    Result<const ModelInfo*> embedding_model(const EmbedRequest& req);
    // "provider/name" that no catalogue entry describes (any Ollama model):
    // made into a registry model (capabilities and context from Ollama's
    // /api/show, conservative defaults otherwise). A no-op for known names.
    Status ensure_model(const std::string& name);
    Result<EmbedResult> call_embed(const EmbedRequest& req, const ModelInfo& model,
                                   const std::vector<std::string>& inputs, Deadline deadline, int& attempts);
    bool provider_available(const std::string& id, std::string& why);
    void record(const InferenceRequest& req, const Result<InferenceResponse>& r, Recorder::Outcome o) {
        m_recorder->record(req, r, o);
    }
    // A cache hit, answered (and replayed to a streaming caller) and recorded.
    InferenceResponse serve_hit(const InferenceRequest& req, InferenceResponse hit, const ChunkSink* sink,
                                Clock::duration t0);

    Settings m_settings;
    GatewayConfig m_cfg;
    std::unique_ptr<Backoff> m_backoff;
    std::vector<std::string> m_secrets;  // m_settings.secret_values(), redacted from every error
    Registry m_registry;
    Clock* m_clock = nullptr;
    std::shared_ptr<Transport> m_transport;
    std::unique_ptr<Router> m_router;
    std::unique_ptr<ResponseCache> m_cache;
    std::unique_ptr<Db> m_embed_db;  // the embedding cache's connection (state db)
    std::mutex m_embed_mu;
    std::unique_ptr<Ledger> m_ledger;
    std::shared_ptr<RateLimiter> m_limiter;
    std::shared_ptr<CircuitBreaker> m_breaker;
    std::shared_ptr<SpendBudget> m_budget;
    std::unique_ptr<RequestQueue> m_queue;
    Metrics m_metrics;
    // Request-path metric handles (l04_active_requests by provider,
    // l04_gateway_overhead_seconds), resolved on first use.
    HandleCache<Metrics::Series> m_active;
    HandleCache<Metrics::Histogram> m_overhead;
    const Metrics::Series& active_requests(const std::string& provider) {
        return m_active.get(provider, [&] { return m_metrics.series("l04_active_requests", {{"provider", provider}}); });
    }
    std::mutex m_providers_mu;
    std::map<std::string, std::shared_ptr<Provider>> m_providers;
    std::map<std::string, ProviderConfig> m_provider_cfg;
    std::unique_ptr<HealthProber> m_prober;  // provider probes, remembered a few seconds
    std::unique_ptr<Recorder> m_recorder;    // ledger rows, metrics, log lines of finished requests
};

// A fresh request id ("req_" + 16 hex digits).
std::string new_request_id();

}  // namespace l04
