#pragma once
// The router: filters the registry's models for a request (capabilities,
// context window, provider available, constraints) and orders the survivors
// by a strategy into a RoutingDecision (primary + fallback chain + why each
// candidate was kept or dropped). An explicit model skips scoring.
#include <l04/config/registry.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <mutex>
#include <string>
#include <vector>

namespace l04 {

enum class Strategy : std::uint8_t {
    capability_match = 0,
    fastest = 1,
    cheapest = 2,
    best_quality = 3,
    balanced = 4,
    fallback = 5,
    round_robin = 6,
    weighted = 7,
};
std::string_view strategy_name(Strategy s);
// Canonical names and every alias, case-insensitive, '-' = '_'.
std::optional<Strategy> parse_strategy(std::string_view s);
struct StrategyAlias {
    const char* name;
    Strategy strategy;
};
const std::vector<StrategyAlias>& strategy_aliases();
// One line for --help and errors: each canonical name with its aliases.
std::string strategy_help();

struct RouterConfig {
    Strategy default_strategy = Strategy::balanced;
    std::string default_model;                 // used when a request names none
    std::vector<std::string> fallback_chain;   // for Strategy::fallback
    std::map<std::string, std::vector<std::string>> model_fallbacks;  // explicit model → fallbacks
    std::map<std::string, double> weights;     // model id → weight (Strategy::weighted)
    double w_quality = 0.5, w_cost = 0.3, w_latency = 0.2;  // balanced
};

struct CandidateNote {
    std::string model;
    bool kept = false;
    double score = 0;
    std::string reason;
};

struct RoutingDecision {
    const ModelInfo* primary = nullptr;
    std::vector<const ModelInfo*> fallbacks;
    std::string strategy;
    std::string target;  // what the cache keys on
    bool explicit_model = false;
    std::vector<CandidateNote> notes;
    std::string note;  // how the strategy was applied, when that is not obvious
};

// Answers whether a provider can take requests now; `why` says why not.
using ProviderAvailable = std::function<bool(const std::string& provider, std::string& why)>;

// Parses the routing.* settings strings into cfg (fallback_chain,
// model_fallbacks, weights, balanced weights). Unknown model names are
// refused with E4004 naming the key; E4101 never happens here.
Status parse_routing_settings(const Registry& reg, const std::string& chain, const std::string& fallbacks,
                              const std::string& weights, const std::string& balanced, RouterConfig& cfg);

// Why `m` cannot serve `req` (an image for a model without vision, a field
// its provider kind cannot honour), or nullopt when it can.
std::optional<std::string> cannot_serve(const Registry& reg, const ModelInfo& m, const InferenceRequest& req);

// A model whose context window is larger than `than`'s and that has its
// capabilities, among those `available` accepts: the same provider's
// cheapest first, else the cheapest overall.
const ModelInfo* larger_context_model(const Registry& reg, const ModelInfo& than, const ProviderAvailable& available);

class Router {
public:
    Router(const Registry& reg, RouterConfig cfg, std::uint64_t seed = 0x104);
    // E4001 (unknown model, with the closest names), E4101 (unknown
    // strategy), E4100 (nothing fits, with each drop reason).
    Result<RoutingDecision> route(const InferenceRequest& req, const ProviderAvailable& available);
    const RouterConfig& config() const { return m_cfg; }

private:
    // A model named by the request (or routing.default_model): it, then its
    // configured fallbacks that can serve the request.
    Result<RoutingDecision> route_named(const InferenceRequest& req, const std::string& name,
                                        const ProviderAvailable& available);
    // The models that can serve a routed request; each one left out gets a
    // note saying why.
    std::vector<const ModelInfo*> candidates(const InferenceRequest& req, const CapabilitySet& need,
                                             const ProviderAvailable& available, std::vector<CandidateNote>& notes) const;
    // The candidates ordered by the strategy (sort=false keeps the given
    // order: a configured fallback chain), preferred providers first, then
    // round robin's rotation or weighted's pick in front.
    std::vector<std::pair<double, const ModelInfo*>> rank(Strategy strategy, const CapabilitySet& need,
                                                          const std::vector<const ModelInfo*>& kept, bool sort,
                                                          const std::vector<std::string>& preferred);

    const Registry& m_reg;
    RouterConfig m_cfg;
    std::atomic<std::uint64_t> m_rr{0};
    std::mutex m_rng_mu;
    std::mt19937_64 m_rng;
};

}  // namespace l04
