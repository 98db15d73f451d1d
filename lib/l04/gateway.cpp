// The pipeline, one request: validate → route → cache → budget hold → the
// chain of models (each through gateway_attempt.cpp: limits → queue →
// breaker → provider with retries) with failover → store in the cache →
// record (recorder.cpp). Built in gateway_create.cpp; the health report
// and gauges are in health.cpp; embeddings and stored turns in
// gateway_extra.cpp.
#include <l04/gateway.hpp>
#include <l04/cache/cache_key.hpp>
#include <l04/cache/replay.hpp>
#include <l04/core/hash.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/core/strings.hpp>
#include <l04/provider/factory.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace l04 {

std::string new_request_id() { return random_id("req_", 16); }


namespace {

// The error of a request no model could serve. One model: its error. Several
// that failed the same way (rate limited, bad key, timeout): that code, so
// the exit status and HTTP status still say why; else E4300. The message
// lists every model's failure; Retry-After is the last one's.
Error combine_failures(const std::vector<Error>& failures, const std::vector<std::string>& tried) {
    if (failures.empty()) return Error(ErrorCode::all_models_unavailable, "no model could serve the request");
    if (failures.size() == 1) return failures.front();
    const ErrorCode first = failures.front().code;
    const bool same = std::all_of(failures.begin(), failures.end(), [&](const Error& e) { return e.code == first; });
    Error out = same ? Error(first, "every model failed the same way")
                     : Error(ErrorCode::all_models_unavailable, "all models failed");
    for (std::size_t i = 0; i < failures.size(); ++i) out.message += "; " + tried[i] + ": " + failures[i].to_string();
    out.retry_after = failures.back().retry_after;
    return out;
}

}  // namespace

Gateway::~Gateway() = default;

Status Gateway::validate(InferenceRequest& req) const {
    if (req.request_id.empty()) req.request_id = new_request_id();
    if (req.agent_did.empty()) req.agent_did = m_cfg.agent;
    if (req.messages.empty()) return fail(ErrorCode::invalid_request, "the request has no messages (empty prompt)");
    bool has_user = false;
    for (const auto& m : req.messages) {
        if (m.role == Role::user) has_user = true;
        if (m.role == Role::tool && m.tool_call_id.empty())
            return fail(ErrorCode::invalid_messages, "a tool message needs tool_call_id");
    }
    if (!has_user) return fail(ErrorCode::invalid_messages, "the request has no user message");
    const auto& last = req.messages.back();
    const bool has_non_text = std::any_of(last.parts.begin(), last.parts.end(),
                                          [](const ContentPart& p) { return p.kind != ContentPart::Kind::text; });
    if (last.role == Role::user && trim(last.content).empty() && !has_non_text)
        return fail(ErrorCode::invalid_request, "the prompt is empty");
    if ((req.presence_penalty && (*req.presence_penalty < -2 || *req.presence_penalty > 2)) ||
        (req.frequency_penalty && (*req.frequency_penalty < -2 || *req.frequency_penalty > 2)))
        return fail(ErrorCode::invalid_parameter, "presence_penalty and frequency_penalty must be within -2..2");
    if (req.temperature && (*req.temperature < 0 || *req.temperature > 2))
        return fail(ErrorCode::invalid_parameter, "temperature must be within 0..2");
    if (req.top_p && (*req.top_p < 0 || *req.top_p > 1))
        return fail(ErrorCode::invalid_parameter, "top_p must be within 0..1");
    if (req.max_tokens && *req.max_tokens <= 0) return fail(ErrorCode::invalid_parameter, "max_tokens must be positive");
    if (req.cache_similarity_threshold &&
        (*req.cache_similarity_threshold <= 0 || *req.cache_similarity_threshold > 1))
        return fail(ErrorCode::invalid_parameter, "cache similarity threshold must be within (0, 1]");
    return {};
}

bool Gateway::provider_available(const std::string& id, std::string& why) {
    auto it = m_provider_cfg.find(id);
    if (it == m_provider_cfg.end()) {
        why = "provider '" + id + "' is not defined";
        return false;
    }
    if (!it->second.configured) {
        why = it->second.why_not;
        return false;
    }
    // Open circuits and providers kept out by a 429's Retry-After (which
    // leaves the circuit closed) are both unavailable until blocked_until.
    auto snap = m_breaker->snapshot(id);
    if (snap.blocked_until_ms > m_clock->wall_ms()) {
        why = snap.state == CircuitState::open ? "circuit open for provider '" + id + "'"
                                               : "provider '" + id + "' rate-limited us; kept out until its Retry-After";
        return false;
    }
    return true;
}

Result<Provider*> Gateway::provider_for(const std::string& id) {
    std::lock_guard lk(m_providers_mu);
    if (auto it = m_providers.find(id); it != m_providers.end()) return it->second.get();
    auto cit = m_provider_cfg.find(id);
    if (cit == m_provider_cfg.end())
        return fail(ErrorCode::provider_not_configured, "provider '" + id + "' is not defined in models.toml");
    L04_TRY_ASSIGN(auto p, make_provider(cit->second, *m_transport, *m_clock));
    auto shared = std::shared_ptr<Provider>(std::move(p));
    m_providers[id] = shared;
    return shared.get();
}

Result<RoutingDecision> Gateway::explain(const InferenceRequest& req) {
    L04_TRY(ensure_model(req.model));
    auto d = m_router->route(req, [this](const std::string& p, std::string& why) { return provider_available(p, why); });
    if (d || d.error().code != ErrorCode::no_suitable_model) return d;
    // Nothing fits now; would something fit but for providers that answered
    // 429 with a Retry-After? Then this is a rate limit (E4401, HTTP 429,
    // exit 5) with the time until the first of them is back, not "no model".
    std::int64_t soonest = 0;
    const auto now = m_clock->wall_ms();
    auto again = m_router->route(req, [&](const std::string& p, std::string& why) {
        if (provider_available(p, why)) return true;
        const auto snap = m_breaker->snapshot(p);
        if (snap.state == CircuitState::open || snap.blocked_until_ms <= now) return false;
        const auto left = snap.blocked_until_ms - now;
        soonest = soonest == 0 ? left : std::min(soonest, left);
        return true;
    });
    if (!again || soonest <= 0) return d;
    Error e(ErrorCode::rate_limit_exceeded,
            "every model that fits is on a provider that answered 429 with a Retry-After; retry in " +
                std::to_string((soonest + 999) / 1000) + " s");
    e.retryable = true;
    e.retry_after = std::chrono::milliseconds(soonest);
    return fail(std::move(e));
}

Result<InferenceResponse> Gateway::execute(InferenceRequest req) {
    req.stream = false;
    return redacted(run(req, nullptr, nullptr));
}

Result<InferenceResponse> Gateway::stream(InferenceRequest req, const ChunkSink& sink, const CancelToken* cancel) {
    req.stream = true;
    return redacted(run(req, &sink, cancel));
}

Result<InferenceResponse> Gateway::redacted(Result<InferenceResponse> r) const {
    // Every error leaves the pipeline here: no configured secret in it,
    // whatever an upstream echoed back.
    if (r) return r;
    Error e = std::move(r).error();
    e.message = redact_secrets(std::move(e.message), m_secrets);
    e.details = redact_secrets(std::move(e.details), m_secrets);
    return fail(std::move(e));
}

Result<InferenceResponse> Gateway::run(InferenceRequest& req, const ChunkSink* sink, const CancelToken* cancel) {
    const auto t0 = m_clock->now();
    const auto since_t0 = [&] { return ms_between(t0, m_clock->now()); };
    if (auto st = validate(req); !st) {
        record(req, fail(st.error()), {.model = req.model});
        return fail(st.error());
    }
    // A caller's deadline is a date (wall clock), taken once; from here on
    // every check is on the monotonic clock.
    const Deadline deadline =
        req.deadline_ms ? Deadline::at_wall(*m_clock, *req.deadline_ms)
                        : Deadline::after(*m_clock, std::chrono::milliseconds(req.timeout_ms.value_or(m_cfg.request_timeout_ms)));

    auto decision = explain(req);
    if (!decision) {
        record(req, fail(decision.error()), {.model = req.model, .latency_ms = since_t0()});
        return fail(decision.error());
    }

    // Cache. Answers meant to differ (several choices, logprobs, a seeded
    // sample) are cached only when the caller asks for the cache explicitly.
    const bool varied = req.n.value_or(1) > 1 || req.logprobs.value_or(false) ||
                        (req.seed && req.temperature.value_or(1.0) > 0);
    const bool use_cache = m_cache->config().enabled && req.cache_mode != CacheMode::bypass &&
                           (!varied || req.cache_explicit);
    CacheKey key;
    CacheRefusal refusal;  // why a close cached prompt was not served (for -v and --json)
    if (use_cache) {
        key = make_cache_key(req, decision->target, "");
        if (req.cache_mode == CacheMode::use) {
            if (auto hit = m_cache->lookup(key, req.cache_similarity_threshold, &refusal))
                return serve_hit(req, std::move(*hit), sink, t0);
        }
    }

    std::vector<const ModelInfo*> chain{decision->primary};
    chain.insert(chain.end(), decision->fallbacks.begin(), decision->fallbacks.end());

    // Budgets: the request's worst case (its prompt, and its max_tokens or
    // the model's output limit, at the dearest model it may land on) is held
    // until its real cost is in the ledger. Budgets read the ledger's table:
    // write what is queued first.
    BudgetHold budget_hold(*this);
    if (m_budget->active()) {
        (void)m_ledger->flush();
        double worst = 0;
        const std::int64_t prompt_tokens = estimate_prompt_tokens(req);
        for (const ModelInfo* m : chain) {
            TokenUsage u;
            u.prompt_tokens = prompt_tokens;
            u.completion_tokens = req.max_tokens.value_or(m->max_output_tokens > 0 ? m->max_output_tokens : 4096) *
                                  std::max<std::int64_t>(1, req.n.value_or(1));
            worst = std::max(worst, cost_usd(*m, u));
        }
        auto hold = m_budget->reserve(req.agent_did, worst);
        if (!hold) {
            record(req, fail(hold.error()),
                   {.model = decision->primary->id, .provider = decision->primary->provider, .latency_ms = since_t0()});
            return fail(hold.error());
        }
        budget_hold.hold(*hold);
    }

    // The chain: each model in turn, while the failure is one another model
    // could avoid (the error table's failover column, or a retryable error).
    int attempts = 0;
    bool delivered = false;
    std::optional<double> ttft;
    std::vector<Error> failures;  // one per model tried
    std::vector<std::string> tried;
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const ModelInfo& model = *chain[i];
        if (i > 0) m_metrics.inc("l04_fallbacks_total", {{"from", chain[i - 1]->id}, {"to", model.id}});
        const auto call_start = m_clock->now();
        Attempt a = attempt_model(req, model, sink, cancel, deadline);
        const double provider_ms = ms_between(call_start, m_clock->now());
        attempts += a.calls;
        delivered = delivered || a.delivered;
        if (!ttft) ttft = a.ttft_ms;
        if (a.response) {
            InferenceResponse resp = std::move(*a.response);
            resp.request_id = req.request_id;
            resp.model_id = model.id;
            resp.provider = model.provider;
            if (resp.token_usage.total_tokens == 0)
                resp.token_usage.total_tokens = resp.token_usage.prompt_tokens + resp.token_usage.completion_tokens;
            resp.cost_usd = cost_usd(model, resp.token_usage);
            resp.latency_ms = since_t0();
            resp.created_ms = m_clock->wall_ms();
            resp.attempts = attempts;
            if (i > 0) resp.fallback_from = chain[0]->id;
            if (!refusal.reason.empty()) resp.cache_refusal = CacheRefusalFact{refusal.reason, refusal.similarity};
            if (use_cache && resp.finish_reason != "error") {
                if (auto st = m_cache->store(key, resp); !st)
                    spdlog::warn("cache store failed: {}", st.error().to_string());
            }
            m_overhead.get("", [&] { return m_metrics.histogram("l04_gateway_overhead_seconds"); })
                .observe(std::max(0.0, resp.latency_ms - provider_ms) / 1000.0);
            record(req, resp,
                   {.model = model.id, .provider = model.provider, .latency_ms = resp.latency_ms, .ttft_ms = ttft, .attempts = attempts});
            return resp;
        }
        const Error& err = a.response.error();
        failures.push_back(err);
        tried.push_back(model.id + " via " + model.provider);
        if (delivered || !fails_over(err.code, err.retryable) || (cancel && cancel->cancelled) ||
            deadline.passed(*m_clock))
            break;
        // Context-window fallback: the prompt did not fit; try once on a model
        // with a larger window (same provider first), if the chain has none.
        if (err.code == ErrorCode::context_length_exceeded && i + 1 == chain.size() && m_cfg.context_fallback) {
            const ModelInfo* bigger = larger_context_model(
                m_registry, model, [this](const std::string& p, std::string& why) { return provider_available(p, why); });
            if (bigger && !cannot_serve(m_registry, *bigger, req) &&
                std::find(chain.begin(), chain.end(), bigger) == chain.end())
                chain.push_back(bigger);
        }
    }
    Error out = combine_failures(failures, tried);
    record(req, fail(out),
           {.model = chain.front()->id, .provider = chain.front()->provider, .latency_ms = since_t0(), .ttft_ms = ttft,
            .attempts = attempts, .cancelled = cancel && cancel->cancelled});
    return fail(std::move(out));
}

InferenceResponse Gateway::serve_hit(const InferenceRequest& req, InferenceResponse hit, const ChunkSink* sink,
                                     Clock::duration t0) {
    hit.request_id = req.request_id;
    hit.created_ms = m_clock->wall_ms();  // this answer's time; cached_at says when it was first made
    std::optional<double> ttft;
    if (sink) {
        // Replayed in pieces (cache/replay.hpp), then the tool calls at once.
        for (const auto& piece : stream_pieces(hit.content)) {
            StreamChunk c;
            c.delta = piece;
            c.model_id = hit.model_id;
            c.provider = hit.provider;
            if (!ttft) ttft = ms_between(t0, m_clock->now());
            if (!(*sink)(c)) break;
        }
        if (!hit.tool_calls.empty()) {
            StreamChunk calls;
            calls.tool_call_deltas = hit.tool_calls;
            calls.model_id = hit.model_id;
            calls.provider = hit.provider;
            (*sink)(calls);
        }
    }
    double saved = 0;
    if (const ModelInfo* m = m_registry.find(hit.model_id)) saved = cost_usd(*m, hit.token_usage);
    hit.latency_ms = ms_between(t0, m_clock->now());
    record(req, hit,
           {.model = hit.model_id, .provider = hit.provider, .latency_ms = hit.latency_ms, .ttft_ms = ttft, .saved_usd = saved});
    return hit;
}

Gateway::BudgetHold::~BudgetHold() {
    if (m_id == 0) return;
    (void)m_gw.m_ledger->flush();  // the real cost is counted before the hold goes
    m_gw.m_budget->release(m_id);
}

CacheStats Gateway::cache_stats() { return m_cache->stats(); }

Result<std::int64_t> Gateway::prune_usage() {
    const auto keep = m_cfg.usage_retention_ms;
    if (keep <= 0) return std::int64_t{0};
    return m_ledger->prune(m_clock->wall_ms() - keep);
}

}  // namespace l04
