// One model of the chain: rate limits → queue → breaker → provider, with
// retries (full jitter, at least Retry-After, bounded by the deadline), and
// the admission both completions and embeddings go through.
#include <l04/gateway.hpp>
#include <l04/core/request_fields.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace l04 {

Result<Gateway::Admission> Gateway::admit(const LimitRequest& lr, Priority priority, bool wait_for_limits,
                                          Deadline deadline) {
    auto res = m_limiter->reserve(lr);
    while (!res && wait_for_limits && res.error().code == ErrorCode::rate_limit_exceeded && res.error().retryable) {
        // --wait: sleep until the bucket refills, bounded by the deadline.
        const auto wait_ms = res.error().retry_after.value_or(std::chrono::milliseconds(1000)).count();
        if (deadline.reached_after(*m_clock, std::chrono::milliseconds(wait_ms))) break;
        m_clock->sleep_for(std::chrono::milliseconds(std::max<std::int64_t>(wait_ms, 1)));
        res = m_limiter->reserve(lr);
    }
    if (!res) {
        m_metrics.inc("l04_rate_limit_rejections_total", {{"agent_did", agent_label(lr.agent)}});
        return fail(res.error());
    }
    if (res->shadow_rejected) {
        m_metrics.inc("l04_rate_limit_shadow_rejections_total", {{"agent_did", agent_label(lr.agent)}});
        spdlog::warn("rate limit exceeded for agent {} on {} (shadow mode: admitted)", lr.agent, lr.model);
    }
    auto ticket = m_queue->acquire(lr.provider, priority, deadline);
    if (!ticket) {
        m_limiter->settle(*res, 0);
        return fail(ticket.error());
    }
    return Admission{std::move(*res), std::move(*ticket)};
}

Gateway::Attempt Gateway::attempt_model(InferenceRequest& req, const ModelInfo& model, const ChunkSink* sink,
                                        const CancelToken* cancel, Deadline deadline) {
    Attempt out;
    const auto done = [&](Result<InferenceResponse> r) {
        out.response = std::move(r);
        return std::move(out);
    };
    // The router dropped models that cannot honour the request; this holds
    // for every way a model reaches this point (the context fallback too).
    if (auto why = cannot_serve(m_registry, model, req)) {
        const ProviderInfo* pi = m_registry.provider(model.provider);
        auto kind = pi ? parse_provider_kind(pi->kind) : std::nullopt;
        if (auto r = kind ? refused_field(req, *kind) : std::nullopt) return done(fail(refusal_error(*r, model.provider, model.id)));
        return done(fail(ErrorCode::invalid_parameter, *why));
    }
    auto provider = provider_for(model.provider);
    if (!provider) return done(fail(std::move(provider).error()));
    Provider& prov = **provider;
    const int max_retries = req.max_retries ? std::max(0, *req.max_retries) : m_cfg.max_retries;
    // --wait: sleeps out a rate limit's Retry-After when the deadline allows
    // it (then the attempt does not count as a retry).
    const auto wait_out = [&](const Error& e) {
        if (!req.wait_for_limits || e.code != ErrorCode::rate_limit_exceeded || !e.retry_after) return false;
        const auto ra = std::max<std::int64_t>(1, e.retry_after->count());
        if (deadline.reached_after(*m_clock, std::chrono::milliseconds(ra)) || (cancel && cancel->cancelled)) return false;
        m_clock->sleep_for(std::chrono::milliseconds(ra));
        return true;
    };
    const auto start = m_clock->now();

    for (int retry = 0;; ++retry) {
        const std::int64_t prompt_tokens = estimate_prompt_tokens(req);
        LimitRequest lr{req.agent_did, model.provider, model.id,
                        prompt_tokens + req.max_tokens.value_or(std::min<std::int64_t>(model.max_output_tokens, k_default_answer_tokens)),
                        prompt_tokens + req.max_tokens.value_or(0)};
        auto adm = admit(lr, req.priority, req.wait_for_limits, deadline);
        if (!adm) return done(fail(std::move(adm).error()));
        // Last, just before the call: allow() may claim the half-open probe.
        if (auto st = m_breaker->allow(model.provider); !st) {
            m_limiter->settle(adm->reservation, 0);
            // A provider held out by its own 429 Retry-After: --wait waits.
            adm->ticket = QueueTicket();
            if (wait_out(st.error())) {
                --retry;
                continue;
            }
            return done(fail(st.error()));
        }
        ++out.calls;
        const auto remaining = std::max<std::int64_t>(1, deadline.remaining_ms(*m_clock));
        ProviderRequest pr{req, model, std::chrono::milliseconds(remaining), cancel};
        active_requests(model.provider).add(1);
        Result<InferenceResponse> r = fail(ErrorCode::internal_error, "not run");
        bool sink_refused = false;
        if (sink) {
            ChunkSink forward = [&](const StreamChunk& c) -> bool {
                if (c.is_final) return true;  // the gateway sends its own final event
                StreamChunk chunk = c;
                chunk.model_id = model.id;
                chunk.provider = model.provider;
                if (!out.delivered && (!c.delta.empty() || !c.tool_call_deltas.empty())) {
                    out.delivered = true;
                    out.ttft_ms = ms_between(start, m_clock->now());
                }
                if (!(*sink)(chunk)) {
                    sink_refused = true;
                    return false;
                }
                return true;
            };
            r = prov.stream(pr, forward);
        } else {
            r = prov.complete(pr);
        }
        active_requests(model.provider).add(-1);
        if (r) {
            m_limiter->settle(adm->reservation, r->token_usage.total_tokens);
            m_breaker->on_success(model.provider);
            return done(std::move(r));
        }
        m_limiter->settle(adm->reservation, 0);
        const bool caller_gone = (cancel && cancel->cancelled.load()) || sink_refused;
        Error err = r.error();
        const auto report = [&] {
            if (caller_gone) {
                // Not the provider's fault: report a caller-side outcome, which
                // only releases a half-open probe.
                m_breaker->on_failure(model.provider, Error(ErrorCode::invalid_request, "the caller went away"));
            } else {
                m_breaker->on_failure(model.provider, err);
            }
        };
        // The breaker counts requests, not attempts: a fault is reported once,
        // when this request gives up on the model. What must be known at once
        // is reported at once: a 429 (it keeps the provider out until its
        // Retry-After for every request), a half-open probe's outcome, a
        // caller who went away.
        const bool will_retry = !out.delivered && err.retryable && retry < max_retries && !(cancel && cancel->cancelled);
        if (!will_retry || caller_gone || err.code == ErrorCode::rate_limit_exceeded ||
            err.code == ErrorCode::quota_exhausted || m_breaker->snapshot(model.provider).state != CircuitState::closed)
            report();
        if (out.delivered) {
            // Chunks already reached the caller: never restart silently. A
            // deadline that passed mid-stream stays a timeout (E4202, exit 7).
            if (err.code == ErrorCode::timeout) {
                err.message = "the request's deadline passed after output was delivered: " + err.message;
            } else if (err.code != ErrorCode::streaming_error) {
                err.message = "stream failed after output was delivered: " + err.message;
                err.code = ErrorCode::streaming_error;
            }
            err.retryable = false;
            return done(fail(std::move(err)));
        }
        if (err.code == ErrorCode::rate_limit_exceeded && err.retry_after && retry >= max_retries) {
            adm->ticket = QueueTicket();
            if (wait_out(err)) {
                --retry;
                continue;
            }
        }
        if (!err.retryable || retry >= max_retries || (cancel && cancel->cancelled)) return done(fail(std::move(err)));
        // Full jitter, at least Retry-After.
        const double wait = m_backoff->delay_ms(retry, err.retry_after);
        if (deadline.reached_after(*m_clock, std::chrono::milliseconds(static_cast<std::int64_t>(wait)))) {
            // Giving up after all: the fault not yet counted is counted now.
            if (!(err.code == ErrorCode::rate_limit_exceeded || err.code == ErrorCode::quota_exhausted ||
                  m_breaker->snapshot(model.provider).state != CircuitState::closed))
                report();
            return done(fail(std::move(err)));
        }
        adm->ticket = QueueTicket();  // give the provider slot back while we wait
        m_metrics.inc("l04_retries_total", {{"provider", model.provider}, {"model", model.id}});
        spdlog::debug("retrying {} on {} in {:.0f} ms after {}", model.id, model.provider, wait, err.to_string());
        m_clock->sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(wait)));
    }
}

}  // namespace l04
