#include <l04/router/router.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/core/strings.hpp>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <tuple>

namespace l04 {

std::string_view strategy_name(Strategy s) {
    switch (s) {
        case Strategy::capability_match: return "capability_match";
        case Strategy::fastest: return "fastest";
        case Strategy::cheapest: return "cheapest";
        case Strategy::best_quality: return "best_quality";
        case Strategy::balanced: return "balanced";
        case Strategy::fallback: return "fallback";
        case Strategy::round_robin: return "round_robin";
        case Strategy::weighted: return "weighted";
    }
    return "balanced";
}

const std::vector<StrategyAlias>& strategy_aliases() {
    // Every spelling callers use: the OpenAI-compatible peers' names, the
    // specification's enum (FASTEST, BEST_QUALITY, ...) and the names of its
    // progress log (cost_optimized, capability_first, ...).
    static const std::vector<StrategyAlias> t = {
        {"quality", Strategy::best_quality},        {"quality_optimized", Strategy::best_quality},
        {"best", Strategy::best_quality},           {"cost", Strategy::cheapest},
        {"cost_optimized", Strategy::cheapest},     {"cheap", Strategy::cheapest},
        {"latency", Strategy::fastest},             {"latency_optimized", Strategy::fastest},
        {"fast", Strategy::fastest},                {"capability_first", Strategy::capability_match},
        {"capability", Strategy::capability_match}, {"capabilities", Strategy::capability_match},
        {"fallback_chain", Strategy::fallback},     {"failover", Strategy::fallback},
        {"roundrobin", Strategy::round_robin},      {"weighted_random", Strategy::weighted},
        {"auto", Strategy::balanced},               {"default", Strategy::balanced},
    };
    return t;
}

std::optional<Strategy> parse_strategy(std::string_view s) {
    // Case-insensitive, and '-' or ' ' stand for '_': BEST_QUALITY,
    // best-quality and "Best Quality" are one name.
    if (s.empty() || s.size() > 64) return std::nullopt;
    std::string n;
    for (char c : s) n += (c == '-' || c == ' ') ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i <= 7; ++i)
        if (strategy_name(static_cast<Strategy>(i)) == n) return static_cast<Strategy>(i);
    for (const auto& a : strategy_aliases())
        if (a.name == n) return a.strategy;
    return std::nullopt;
}

std::string strategy_help() {
    std::string out;
    for (int i = 0; i <= 7; ++i) {
        const auto s = static_cast<Strategy>(i);
        out += std::string(i ? "; " : "") + std::string(strategy_name(s));
        bool first = true;
        for (const auto& a : strategy_aliases())
            if (a.strategy == s) {
                out += std::string(first ? " (also " : ", ") + a.name;
                first = false;
            }
        if (!first) out += ")";
    }
    return out + ". Case does not matter; - and _ are the same";
}

Router::Router(const Registry& reg, RouterConfig cfg, std::uint64_t seed) : m_reg(reg), m_cfg(std::move(cfg)), m_rng(seed) {}

namespace {

std::string fmt_num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

double blended_price(const ModelInfo& m) { return m.input_price + m.output_price; }

}  // namespace

std::optional<std::string> cannot_serve(const Registry& reg, const ModelInfo& m, const InferenceRequest& req) {
    if (has_images(req) && !m.capabilities.has(Capability::vision))
        return "model " + m.id + " cannot read images (no vision capability)";
    const ProviderInfo* p = reg.provider(m.provider);
    auto kind = p ? parse_provider_kind(p->kind) : std::nullopt;
    if (!kind) return std::nullopt;  // an unknown kind fails when the provider is built
    if (auto r = refused_field(req, *kind)) return "cannot honour '" + r->field + "': " + r->reason;
    return std::nullopt;
}

namespace {

// What a request needs of a model beyond capabilities: its size, and the
// limits its routing hints set.
struct RequestFit {
    const InferenceRequest& req;
    std::int64_t prompt_est = 0;
    std::int64_t out_need = 0;

    explicit RequestFit(const InferenceRequest& r)
        : req(r),
          prompt_est(estimate_prompt_tokens(r)),
          out_need(std::max<std::int64_t>(r.max_tokens.value_or(0), r.requirements.max_output_tokens)) {}

    std::int64_t context_need() const {
        return std::max<std::int64_t>(prompt_est + out_need, req.requirements.min_context_length);
    }

    // Why the request's constraints rule `m` out, or nullopt.
    std::optional<std::string> violates(const ModelInfo& m) const {
        const auto& ex = req.constraints.excluded_providers;
        if (std::find(ex.begin(), ex.end(), m.provider) != ex.end()) return "provider " + m.provider + " excluded by the request";
        if (req.constraints.max_latency_ms && m.latency_ms > *req.constraints.max_latency_ms)
            return "typical latency " + fmt_num(m.latency_ms) + " ms > max " + fmt_num(*req.constraints.max_latency_ms);
        if (req.constraints.max_cost_cents) {
            const double est_cents = (static_cast<double>(prompt_est) * m.input_price +
                                      static_cast<double>(std::max<std::int64_t>(out_need, 256)) * m.output_price) /
                                     1e6 * 100.0;
            if (est_cents > *req.constraints.max_cost_cents)
                return "estimated cost " + fmt_num(est_cents) + "c > max " + fmt_num(*req.constraints.max_cost_cents) + "c";
        }
        return std::nullopt;
    }
};

// Hints are checked whether or not a model is named: a misspelt provider
// would exclude nothing, and an unknown strategy is an error even when a
// model makes it moot.
Status check_hints(const Registry& reg, const InferenceRequest& req) {
    for (const auto* list : {&req.constraints.excluded_providers, &req.constraints.preferred_providers})
        for (const auto& p : *list)
            if (!reg.provider(p)) {
                std::vector<std::string> known;
                for (const auto& [id, info] : reg.providers()) known.push_back(id);
                auto near = p.size() <= 64 ? closest_names(p, known, 1) : std::vector<std::string>{};
                std::string all;
                for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
                return fail(ErrorCode::invalid_parameter,
                            "unknown provider '" + p.substr(0, 64) + "' in the routing hints" +
                                (near.empty() ? "" : " (did you mean '" + near[0] + "'?)") + "; providers: " + all);
            }
    if (!req.strategy.empty() && !parse_strategy(req.strategy))
        return fail(ErrorCode::invalid_strategy,
                    "unknown routing strategy '" + (req.strategy.size() <= 64 ? req.strategy : req.strategy.substr(0, 64) + "...") +
                        "' (expected capability_match, fastest, cheapest, best_quality, balanced, fallback, "
                        "round_robin or weighted, or an alias such as cost_optimized; see `l04ctl prompt --help`)");
    return {};
}

Error unknown_model(const Registry& reg, const std::string& name) {
    // "Did you mean" only for names a person could have typed: a huge one
    // would cost seconds of edit-distance work and is echoed clipped.
    auto near = name.size() <= 128 ? closest_names(name, reg.names()) : std::vector<std::string>{};
    std::string msg = "unknown model '" + (name.size() <= 128 ? name : name.substr(0, 128) + "...") + "'";
    if (!near.empty()) {
        msg += " (did you mean ";
        for (std::size_t i = 0; i < near.size(); ++i) msg += (i ? ", " : "") + std::string("'") + near[i] + "'";
        msg += "?)";
    }
    msg += "; run `l04ctl models list` to see every model";
    return Error(ErrorCode::model_not_found, msg);
}

// The capabilities a routed request needs: text, the ones it names, and
// what its shape implies (streaming, tools, images).
Result<CapabilitySet> needed_capabilities(const InferenceRequest& req) {
    CapabilitySet need;
    need.add(Capability::text);
    std::vector<std::string> cap_names = req.capabilities;
    cap_names.insert(cap_names.end(), req.requirements.capabilities.begin(), req.requirements.capabilities.end());
    for (const auto& c : cap_names) {
        auto cap = parse_capability(c);
        if (!cap) return fail(ErrorCode::invalid_parameter, "unknown capability '" + c + "'");
        need.add(*cap);
    }
    if (req.stream) need.add(Capability::streaming);
    if (!req.tools.empty()) need.add(Capability::tool_use);
    if (has_images(req)) need.add(Capability::vision);
    return need;
}

// The cache keys on the target: everything that changes which models may
// answer is in it (streaming is not: a cached answer replays either way).
std::string route_target(const std::string& strategy, const CapabilitySet& need, const InferenceRequest& req) {
    std::string target = "route:" + strategy + ":";
    bool first_cap = true;
    for (const auto& c : need.names()) {
        if (c == "streaming") continue;
        target += (first_cap ? "" : ",") + c;
        first_cap = false;
    }
    auto add_list = [&](const char* tag, std::vector<std::string> v) {
        if (v.empty()) return;
        std::sort(v.begin(), v.end());
        target += std::string(";") + tag + "=";
        for (std::size_t i = 0; i < v.size(); ++i) target += (i ? "," : "") + v[i];
    };
    add_list("exclude", req.constraints.excluded_providers);
    add_list("prefer", req.constraints.preferred_providers);
    if (req.constraints.max_cost_cents) target += ";max_cost_cents=" + fmt_num(*req.constraints.max_cost_cents);
    if (req.constraints.max_latency_ms) target += ";max_latency_ms=" + fmt_num(*req.constraints.max_latency_ms);
    if (req.requirements.min_context_length > 0)
        target += ";min_context=" + std::to_string(req.requirements.min_context_length);
    return target;
}

}  // namespace

Result<RoutingDecision> Router::route(const InferenceRequest& req, const ProviderAvailable& available) {
    L04_TRY(check_hints(m_reg, req));
    const RequestFit fit(req);
    std::string model_name = req.model.empty() ? m_cfg.default_model : req.model;
    // The configured default model gives way to the hints (the caller did
    // not name it): routing by strategy then picks a model that fits.
    if (req.model.empty() && !model_name.empty())
        if (const ModelInfo* dm = m_reg.find(model_name); dm && fit.violates(*dm)) model_name.clear();
    if (!model_name.empty()) return route_named(req, model_name, available);

    RoutingDecision d;
    const Strategy strategy = req.strategy.empty() ? m_cfg.default_strategy : *parse_strategy(req.strategy);  // checked
    d.strategy = std::string(strategy_name(strategy));
    L04_TRY_ASSIGN(const CapabilitySet need, needed_capabilities(req));
    d.target = route_target(d.strategy, need, req);

    std::vector<const ModelInfo*> kept = candidates(req, need, available, d.notes);
    const auto drop = [&](const ModelInfo& m, std::string why) { d.notes.push_back({m.id, false, 0, std::move(why)}); };

    // `fallback` with no configured chain: the balanced ranking is the chain
    // (the walkthrough's default strategy must not fail on a fresh install).
    const bool fallback_ranked = strategy == Strategy::fallback && m_cfg.fallback_chain.empty();
    if (fallback_ranked)
        d.note = "no routing.fallback_chain is configured: the balanced ranking is used as the fallback chain";
    if (strategy == Strategy::fallback && !fallback_ranked) {
        std::vector<const ModelInfo*> ordered;
        for (const auto& id : m_cfg.fallback_chain)
            for (const ModelInfo* m : kept)
                if (m->id == id || std::find(m->aliases.begin(), m->aliases.end(), id) != m->aliases.end())
                    ordered.push_back(m);
        for (const ModelInfo* m : kept)
            if (std::find(ordered.begin(), ordered.end(), m) == ordered.end())
                drop(*m, "not in the configured fallback chain");
        kept = ordered;
    }

    if (kept.empty()) {
        std::string msg = "no model fits this request";
        int shown = 0;
        for (const auto& n : d.notes)
            if (!n.kept && shown < 6) {
                msg += (shown++ ? "; " : ": ") + n.model + " (" + n.reason + ")";
            }
        msg += ". Name a model with -m, or configure a provider (e.g. set OPENAI_API_KEY)";
        return fail(ErrorCode::no_suitable_model, msg);
    }

    const auto scored = rank(strategy, need, kept, !(strategy == Strategy::fallback && !fallback_ranked),
                             req.constraints.preferred_providers);
    d.primary = scored.front().second;
    for (std::size_t i = 0; i < scored.size(); ++i) {
        if (i > 0) d.fallbacks.push_back(scored[i].second);
        d.notes.push_back({scored[i].second->id, true, scored[i].first, i == 0 ? "primary" : "fallback #" + std::to_string(i)});
    }
    return d;
}

Result<RoutingDecision> Router::route_named(const InferenceRequest& req, const std::string& name,
                                            const ProviderAvailable& available) {
    const RequestFit fit(req);
    const ModelInfo* m = m_reg.find(name);
    if (!m) return fail(unknown_model(m_reg, name));
    if (auto why = cannot_serve(m_reg, *m, req)) {
        const ProviderInfo* p = m_reg.provider(m->provider);
        auto kind = p ? parse_provider_kind(p->kind) : std::nullopt;
        auto r = kind ? refused_field(req, *kind) : std::nullopt;
        if (r && !(has_images(req) && !m->capabilities.has(Capability::vision)))
            return fail(refusal_error(*r, m->provider, m->id));
        Error e(ErrorCode::invalid_parameter, *why + "; name a model with vision, or route with --capability vision");
        e.details = "messages[].content[image_url]";
        return fail(std::move(e));
    }
    // A named model is still bound by the hints: never a silent exception.
    if (auto why = fit.violates(*m))
        return fail(ErrorCode::invalid_parameter,
                    "model " + m->id + " contradicts the request's routing hints: " + *why +
                        "; name another model or drop the hint");
    RoutingDecision d;
    d.primary = m;
    d.explicit_model = true;
    d.strategy = "explicit";
    d.target = m->id;
    d.notes.push_back({m->id, true, 0, "named by the request"});
    if (auto it = m_cfg.model_fallbacks.find(m->id); it != m_cfg.model_fallbacks.end()) {
        for (const auto& f : it->second)
            if (const ModelInfo* fm = m_reg.find(f); fm && fm != m) {
                std::string why;
                if (auto no = cannot_serve(m_reg, *fm, req)) {
                    d.notes.push_back({fm->id, false, 0, "configured fallback dropped: " + *no});
                } else if (auto v = fit.violates(*fm)) {
                    d.notes.push_back({fm->id, false, 0, "configured fallback dropped: " + *v});
                } else if (available(fm->provider, why)) {
                    d.fallbacks.push_back(fm);
                    d.notes.push_back({fm->id, true, 0, "configured fallback"});
                } else {
                    d.notes.push_back({fm->id, false, 0, "configured fallback dropped: " + why});
                }
            }
    }
    return d;
}

std::vector<const ModelInfo*> Router::candidates(const InferenceRequest& req, const CapabilitySet& need,
                                                 const ProviderAvailable& available, std::vector<CandidateNote>& notes) const {
    const RequestFit fit(req);
    const std::int64_t ctx_need = fit.context_need();
    std::vector<const ModelInfo*> kept;
    auto drop = [&](const ModelInfo& m, std::string why) { notes.push_back({m.id, false, 0, std::move(why)}); };
    for (const ModelInfo* m : m_reg.models().empty() ? std::vector<const ModelInfo*>{} : m_reg.with_capabilities({})) {
        const ProviderInfo* p = m_reg.provider(m->provider);
        if (m->capabilities.has(Capability::embedding) && !m->capabilities.has(Capability::text)) continue;
        if (p && p->kind == "mock") {
            drop(*m, "the mock provider is used only when named");
            continue;
        }
        if (!m->capabilities.contains_all(need)) {
            std::string missing;
            for (const auto& c : need.names())
                if (!m->capabilities.has(*parse_capability(c))) missing += (missing.empty() ? "" : ",") + c;
            drop(*m, "lacks capability " + missing);
            continue;
        }
        if (m->context_window > 0 && m->context_window < ctx_need) {
            drop(*m, "context window " + std::to_string(m->context_window) + " < needed " + std::to_string(ctx_need));
            continue;
        }
        if (fit.out_need > 0 && m->max_output_tokens > 0 && m->max_output_tokens < fit.out_need) {
            drop(*m, "max output " + std::to_string(m->max_output_tokens) + " < requested " + std::to_string(fit.out_need));
            continue;
        }
        if (auto no = cannot_serve(m_reg, *m, req)) {
            drop(*m, *no);
            continue;
        }
        if (auto v = fit.violates(*m)) {
            drop(*m, *v);
            continue;
        }
        std::string why;
        if (!available(m->provider, why)) {
            drop(*m, why);
            continue;
        }
        kept.push_back(m);
    }
    return kept;
}

std::vector<std::pair<double, const ModelInfo*>> Router::rank(Strategy strategy, const CapabilitySet& need,
                                                              const std::vector<const ModelInfo*>& kept, bool sort,
                                                              const std::vector<std::string>& preferred) {
    // Score: higher is better.
    double max_price = 0, max_lat = 0;
    for (const ModelInfo* m : kept) {
        max_price = std::max(max_price, blended_price(*m));
        max_lat = std::max(max_lat, m->latency_ms);
    }
    auto score = [&](const ModelInfo& m) -> double {
        switch (strategy) {
            case Strategy::fastest: return -m.latency_ms;
            case Strategy::cheapest: return -blended_price(m) - m.latency_ms * 1e-9;
            case Strategy::best_quality: return m.quality;
            case Strategy::capability_match: {
                // Fewest unneeded capabilities, then quality.
                int extra = 0;
                for (int c = 0; c < k_capability_count; ++c)
                    if (m.capabilities.has(static_cast<Capability>(c)) && !need.has(static_cast<Capability>(c))) ++extra;
                return -extra + m.quality * 0.5;
            }
            case Strategy::balanced:
            case Strategy::round_robin:
            case Strategy::weighted:
            case Strategy::fallback: {
                double cost = max_price > 0 ? blended_price(m) / max_price : 0;
                double lat = max_lat > 0 ? m.latency_ms / max_lat : 0;
                return m_cfg.w_quality * m.quality + m_cfg.w_cost * (1 - cost) + m_cfg.w_latency * (1 - lat);
            }
        }
        return 0;
    };
    std::vector<std::pair<double, const ModelInfo*>> scored;
    for (const ModelInfo* m : kept) scored.emplace_back(score(*m), m);
    if (sort) std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first > b.first; });

    // Preferred providers go first, in the strategy's order among themselves.
    if (!preferred.empty()) {
        std::stable_partition(scored.begin(), scored.end(), [&](const auto& e) {
            return std::find(preferred.begin(), preferred.end(), e.second->provider) != preferred.end();
        });
    }

    if (strategy == Strategy::round_robin) {
        std::size_t k = static_cast<std::size_t>(m_rr.fetch_add(1) % scored.size());
        std::rotate(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end());
    } else if (strategy == Strategy::weighted) {
        double total = 0;
        std::vector<double> w;
        for (auto& [s, m] : scored) {
            auto it = m_cfg.weights.find(m->id);
            double wt = it != m_cfg.weights.end() ? it->second : (m_cfg.weights.empty() ? 1.0 : 0.0);
            w.push_back(wt);
            total += wt;
        }
        if (total > 0) {
            double r;
            {
                std::lock_guard lk(m_rng_mu);
                r = std::uniform_real_distribution<double>(0, total)(m_rng);
            }
            std::size_t pick = 0;
            for (; pick + 1 < w.size(); ++pick) {
                if (r < w[pick]) break;
                r -= w[pick];
            }
            std::rotate(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(pick),
                        scored.begin() + static_cast<std::ptrdiff_t>(pick) + 1);
        }
    }
    return scored;
}

}  // namespace l04

namespace l04 {

namespace {

Result<const ModelInfo*> model_named(const Registry& reg, const std::string& name, const char* key) {
    const ModelInfo* m = reg.find(name);
    if (!m) {
        auto near = closest_names(name, reg.names(), 1);
        return fail(ErrorCode::config_invalid, std::string(key) + ": unknown model '" + name + "'" +
                                                   (near.empty() ? "" : " (did you mean '" + near[0] + "'?)"));
    }
    return m;
}

}  // namespace

Status parse_routing_settings(const Registry& reg, const std::string& chain, const std::string& fallbacks,
                              const std::string& weights, const std::string& balanced, RouterConfig& cfg) {
    for (const auto& name : split(chain, ',')) {
        L04_TRY_ASSIGN(auto m, model_named(reg, name, "routing.fallback_chain"));
        cfg.fallback_chain.push_back(m->id);
    }
    for (const auto& entry : split(fallbacks, ';')) {
        auto eq = entry.find('=');
        if (eq == std::string::npos)
            return fail(ErrorCode::config_invalid, "routing.fallbacks: expected \"model=fallback,...\", got '" + entry + "'");
        L04_TRY_ASSIGN(auto from, model_named(reg, std::string(trim(entry.substr(0, eq))), "routing.fallbacks"));
        auto& list = cfg.model_fallbacks[from->id];
        for (const auto& to : split(entry.substr(eq + 1), ',')) {
            L04_TRY_ASSIGN(auto m, model_named(reg, to, "routing.fallbacks"));
            list.push_back(m->id);
        }
    }
    for (const auto& entry : split(weights, ',')) {
        auto eq = entry.find('=');
        char* end = nullptr;
        const std::string num = eq == std::string::npos ? "" : std::string(trim(entry.substr(eq + 1)));
        double w = std::strtod(num.c_str(), &end);
        if (eq == std::string::npos || num.empty() || *end != '\0' || w < 0)
            return fail(ErrorCode::config_invalid, "routing.weights: expected \"model=weight\", got '" + entry + "'");
        L04_TRY_ASSIGN(auto m, model_named(reg, std::string(trim(entry.substr(0, eq))), "routing.weights"));
        cfg.weights[m->id] = w;
    }
    for (const auto& entry : split(balanced, ',')) {
        auto eq = entry.find('=');
        const std::string k = eq == std::string::npos ? entry : std::string(trim(entry.substr(0, eq)));
        const std::string num = eq == std::string::npos ? "" : std::string(trim(entry.substr(eq + 1)));
        char* end = nullptr;
        double w = std::strtod(num.c_str(), &end);
        if (num.empty() || *end != '\0' || w < 0)
            return fail(ErrorCode::config_invalid, "routing.balanced_weights: expected quality=, cost=, latency=");
        if (k == "quality") cfg.w_quality = w;
        else if (k == "cost") cfg.w_cost = w;
        else if (k == "latency") cfg.w_latency = w;
        else return fail(ErrorCode::config_invalid, "routing.balanced_weights: unknown weight '" + k + "'");
    }
    return {};
}

const ModelInfo* larger_context_model(const Registry& reg, const ModelInfo& than, const ProviderAvailable& available) {
    const ModelInfo* best = nullptr;
    for (const auto& m : reg.models()) {
        if (m.context_window <= than.context_window || !m.capabilities.contains_all(than.capabilities)) continue;
        const ProviderInfo* p = reg.provider(m.provider);
        if (p && p->kind == "mock" && reg.provider(than.provider) && reg.provider(than.provider)->kind != "mock") continue;
        std::string why;
        if (!available(m.provider, why)) continue;
        // Same provider first (gpt-3.5-turbo → gpt-4o-mini), then the cheapest.
        auto rank = [&](const ModelInfo& x) {
            return std::make_tuple(x.provider != than.provider, blended_price(x), x.context_window);
        };
        if (!best || rank(m) < rank(*best)) best = &m;
    }
    return best;
}

}  // namespace l04
