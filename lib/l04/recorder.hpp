#pragma once
// What every finished request leaves behind: one ledger row (and the usage
// export's copy), the request's metrics and one log line. The Gateway and
// the embeddings pipeline report each request here once, whatever its end.
// Metric labels are bounded: models and providers only from the registry,
// the first 100 agents seen (then "other"). Thread-safe.
#include <l04/config/registry.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/metrics/metrics.hpp>
#include <l04/usage/exporter.hpp>
#include <l04/usage/ledger.hpp>

#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace l04 {

class Recorder {
public:
    // Declares the gateway's metric families and starts the counters that
    // must survive a restart (requests, tokens, cost) from the ledger.
    Recorder(Metrics& metrics, Ledger& ledger, std::shared_ptr<UsageExporter> exporter, const Registry& registry,
             Clock& clock, std::string default_agent, const std::vector<std::string>& secrets);

    // How a request ended, beside its answer or error.
    struct Outcome {
        std::string model{};   // what was asked or served (bounded in the row; a label in metrics)
        std::string provider{};  // "" before a provider was chosen
        double latency_ms = 0;
        std::optional<double> ttft_ms{};
        int attempts = 0;       // provider calls made
        double saved_usd = 0;   // a cache hit's cost, not spent
        bool cancelled = false; // the caller went away
    };
    void record(const InferenceRequest& req, const Result<InferenceResponse>& r, const Outcome& o);

    std::string model_label(const std::string& model) const;
    std::string agent_label(const std::string& agent);
    Metrics& metrics() { return m_metrics; }
    UsageExporter* exporter() { return m_exporter.get(); }

private:
    void declare();
    void seed_from_ledger();

    // The handles one request's record() updates, per (provider, model).
    struct Series {
        Metrics::Series ok, error, cancelled;  // l04_inference_requests_total by status
        Metrics::Histogram latency, ttft;
        Metrics::Series tokens_in, tokens_out, cost;
    };
    const Series& series(const std::string& provider, const std::string& model);

    Metrics& m_metrics;
    HandleCache<Series> m_series;
    Ledger& m_ledger;
    std::shared_ptr<UsageExporter> m_exporter;
    const Registry& m_registry;
    Clock& m_clock;
    std::string m_default_agent;
    const std::vector<std::string>& m_secrets;
    static constexpr std::size_t k_max_agent_labels = 100;
    std::mutex m_label_mu;
    std::set<std::string> m_agent_labels;
};

}  // namespace l04
