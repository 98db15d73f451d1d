// Beside the completion pipeline: embeddings and stored conversations.
// The embeddings pipeline (/v1/embeddings, `l04ctl embed`): the same stages
// as a completion, without routing strategies or streaming.
//   model: named (registry id, alias, provider/name) or the cheapest
//          embedding model whose provider is available;
//   cache: exact, per input text, keyed on (model, dimensions, text); a hit
//          is the stored vector, byte for byte;
//   call:  breaker → rate limit (tokens of the texts not cached) → queue →
//          provider, retried with full jitter on retryable errors, honouring
//          Retry-After, bounded by the deadline;
//   then:  ledger row and metrics, as for a completion.
#include <l04/core/hash.hpp>
#include <l04/core/strings.hpp>
#include <l04/gateway.hpp>
#include <l04/provider/adapters.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace l04 {

namespace {

constexpr std::size_t k_max_inputs = 2048;

std::string embed_key(const ModelInfo& m, std::optional<std::int64_t> dims, const std::string& text) {
    Sha256 h;
    h.update_field("l04-embedding-v1");
    h.update_field(m.provider);
    h.update_field(m.name);
    h.update_field(dims ? std::to_string(*dims) : std::string());
    h.update_field(text);
    return h.hex_digest();
}

}  // namespace

Status Gateway::ensure_model(const std::string& name) {
    if (name.empty() || m_registry.find(name)) return {};
    auto split = m_registry.split_provider_model(name);
    if (!split) return {};  // the router reports the unknown name
    const ProviderInfo* p = m_registry.provider(split->first);
    ModelInfo m;
    m.id = name;
    m.provider = split->first;
    m.name = split->second;
    // Conservative: what every chat model can do, a small window, unknown
    // (zero) prices, middling quality so routing never prefers it unnamed.
    m.context_window = 8192;
    m.max_output_tokens = 4096;
    m.latency_ms = 2000;
    m.quality = 0.3;
    m.created = m_clock->wall_ms() / 1000;
    bool text = true;
    auto cfg = m_provider_cfg.find(p->id);
    const std::string base = cfg != m_provider_cfg.end() ? cfg->second.base_url : p->base_url;
    if (p->kind == "openai") {
        // A name the server lists is made a model; one it does not list is
        // refused (so junk names cannot use up the slots). A server without
        // a model list is taken at its word. What the model can do is
        // unknown: chat and embeddings are both allowed, the server says no.
        const std::string key = cfg != m_provider_cfg.end() ? cfg->second.api_key : std::string();
        auto ids = openai_model_ids(*m_transport, *m_clock, base, key, std::chrono::milliseconds(5000));
        if (ids && std::find(ids->begin(), ids->end(), m.name) == ids->end()) {
            Error e(ErrorCode::provider_model_not_found,
                    "provider '" + p->id + "' lists no model '" + m.name.substr(0, 128) + "' (GET " + base + "/models)");
            e.message = redact_secrets(std::move(e.message), m_secrets);
            return fail(std::move(e));
        }
        m.capabilities.add(Capability::embedding);
    }
    if (p->kind == "ollama") {
        auto facts = ollama_show(*m_transport, *m_clock, base, m.name, std::chrono::milliseconds(5000));
        if (!facts) return fail(facts.error());
        if (facts->capabilities.empty()) m.capabilities.add(Capability::embedding);  // an older Ollama does not say
        if (!facts->capabilities.empty()) {
            text = false;
            for (const auto& c : facts->capabilities) {
                if (c == "completion") text = true;
                else if (c == "vision") m.capabilities.add(Capability::vision);
                else if (c == "tools") m.capabilities.add(Capability::tool_use);
                else if (c == "embedding") m.capabilities.add(Capability::embedding);
            }
        }
        if (facts->context_length > 0) {
            m.context_window = facts->context_length;
            if (m.context_window >= 100000) m.capabilities.add(Capability::long_context);
        }
    }
    if (text) {
        m.capabilities.add(Capability::text);
        m.capabilities.add(Capability::streaming);
    }
    if (!m_registry.add_dynamic(std::move(m)))
        return fail(ErrorCode::model_not_found,
                    "too many models named as provider/name in this l04d's life (" +
                        std::to_string(Registry::k_max_dynamic_models) +
                        "); add the model to models.toml or restart l04d");
    spdlog::info("model {} added from its provider (not in models.toml)", name);
    return {};
}

Result<const ModelInfo*> Gateway::embedding_model(const EmbedRequest& req) {
    L04_TRY(ensure_model(req.model));
    auto is_embedding = [](const ModelInfo& m) { return m.capabilities.has(Capability::embedding); };
    if (!req.model.empty()) {
        const ModelInfo* m = m_registry.find(req.model);
        if (!m) {
            std::vector<std::string> names;
            for (const auto& x : m_registry.models())
                if (is_embedding(x)) names.push_back(x.id);
            auto near = req.model.size() <= 128 ? closest_names(req.model, names) : std::vector<std::string>{};
            std::string msg = "unknown embedding model '" + req.model.substr(0, 128) + "'";
            if (!near.empty()) msg += " (did you mean '" + near[0] + "'?)";
            return fail(ErrorCode::model_not_found, msg + "; `l04ctl models list --capability embedding` lists them");
        }
        if (!is_embedding(*m)) {
            return fail(ErrorCode::invalid_parameter,
                        "model '" + m->id + "' is not an embedding model; `l04ctl models list --capability embedding` lists them");
        }
        return m;
    }
    // No model named: the cheapest embedding model whose provider can take
    // requests (the mock only when named).
    const ModelInfo* best = nullptr;
    std::string why_none;
    for (const auto& m : m_registry.models()) {
        if (!is_embedding(m)) continue;
        const ProviderInfo* p = m_registry.provider(m.provider);
        if (p && p->kind == "mock") continue;
        std::string why;
        if (!provider_available(m.provider, why)) {
            if (why_none.size() < 600) why_none += "; " + m.id + ": " + why;
            continue;
        }
        if (!best || m.input_price < best->input_price) best = &m;
    }
    if (!best)
        return fail(ErrorCode::no_suitable_model,
                    "no embedding model is available" + why_none + ". Name one with \"model\" (e.g. mock-embed offline)");
    return best;
}

Result<EmbedResult> Gateway::call_embed(const EmbedRequest& req, const ModelInfo& model,
                                        const std::vector<std::string>& inputs, Deadline deadline, int& attempts) {
    L04_TRY_ASSIGN(auto prov, provider_for(model.provider));
    const int max_retries = req.max_retries ? std::max(0, *req.max_retries)
                                            : m_cfg.max_retries;
    std::int64_t tokens = 0;
    for (const auto& t : inputs) tokens += estimate_tokens(t);
    for (int retry = 0;; ++retry) {
        L04_TRY_ASSIGN(auto adm, admit(LimitRequest{req.agent_did, model.provider, model.id, tokens, tokens},
                                       Priority::normal, false, deadline));
        if (auto st = m_breaker->allow(model.provider); !st) {
            m_limiter->settle(adm.reservation, 0);
            return fail(st.error());
        }
        ++attempts;
        const auto remaining = std::max<std::int64_t>(1, deadline.remaining_ms(*m_clock));
        EmbedCall call{model, inputs, req.dimensions, std::chrono::milliseconds(remaining), nullptr};
        active_requests(model.provider).add(1);
        auto r = prov->embed(call);
        active_requests(model.provider).add(-1);
        if (r) {
            m_limiter->settle(adm.reservation, r->prompt_tokens);
            m_breaker->on_success(model.provider);
            return r;
        }
        m_limiter->settle(adm.reservation, 0);
        Error err = r.error();
        // The breaker counts requests, not attempts (as for completions): a
        // fault is reported once, when this request gives up; a 429 or a
        // half-open probe's outcome at once.
        const bool caller_fault = err.code == ErrorCode::invalid_parameter || err.code == ErrorCode::invalid_request;
        const auto report = [&] {
            m_breaker->on_failure(model.provider, caller_fault ? Error(ErrorCode::invalid_request, "refused request") : err);
        };
        const double wait = m_backoff->delay_ms(retry, err.retry_after);
        const bool give_up = !err.retryable || retry >= max_retries ||
                             deadline.reached_after(*m_clock, std::chrono::milliseconds(static_cast<std::int64_t>(wait)));
        if (give_up || err.code == ErrorCode::rate_limit_exceeded || err.code == ErrorCode::quota_exhausted ||
            m_breaker->snapshot(model.provider).state != CircuitState::closed)
            report();
        if (give_up) return fail(std::move(err));
        adm.ticket = QueueTicket();
        m_metrics.inc("l04_retries_total", {{"provider", model.provider}, {"model", model.id}});
        m_clock->sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(wait)));
    }
}

Result<EmbedResponse> Gateway::embed(EmbedRequest req) {
    const auto t0 = m_clock->now();
    if (req.request_id.empty()) req.request_id = new_request_id();
    if (req.agent_did.empty()) req.agent_did = m_cfg.agent;
    // The ledger and metrics take a completion's shape.
    InferenceRequest row_req;
    row_req.request_id = req.request_id;
    row_req.agent_did = req.agent_did;
    row_req.metadata = req.metadata;
    row_req.metadata["endpoint"] = "embeddings";
    // Every error leaves with the configured secrets removed from its message
    // and from what the provider said.
    auto redact = [this](Error e) {
        e.message = redact_secrets(std::move(e.message), m_secrets);
        e.details = redact_secrets(std::move(e.details), m_secrets);
        return e;
    };
    auto refuse = [&](Error e, const std::string& model, const std::string& provider) -> Result<EmbedResponse> {
        record(row_req, fail(e), {.model = model, .provider = provider, .latency_ms = ms_between(t0, m_clock->now())});
        return fail(redact(std::move(e)));
    };
    if (req.inputs.empty()) return refuse(Error(ErrorCode::invalid_parameter, "'input' holds no text to embed"), req.model, "");
    if (req.inputs.size() > k_max_inputs)
        return refuse(Error(ErrorCode::invalid_parameter, "at most " + std::to_string(k_max_inputs) + " inputs per request"),
                      req.model, "");
    for (std::size_t i = 0; i < req.inputs.size(); ++i)
        if (req.inputs[i].empty())
            return refuse(Error(ErrorCode::invalid_parameter, "input[" + std::to_string(i) + "] is an empty string"),
                          req.model, "");
    if (req.dimensions && (*req.dimensions < 1 || *req.dimensions > 65536))
        return refuse(Error(ErrorCode::invalid_parameter, "'dimensions' must be from 1 to 65536"), req.model, "");
    auto model = embedding_model(req);
    if (!model) return refuse(model.error(), req.model, "");
    const ModelInfo& m = **model;
    // The answer is held whole in memory: bound inputs x dimensions (the
    // model's size when none is asked for) to 16M floats (64 MiB).
    const std::int64_t dims = req.dimensions.value_or(m.embedding_dimensions > 0 ? m.embedding_dimensions : 1024);
    if (static_cast<std::int64_t>(req.inputs.size()) * dims > (std::int64_t{1} << 24))
        return refuse(Error(ErrorCode::invalid_parameter,
                            std::to_string(req.inputs.size()) + " inputs of " + std::to_string(dims) +
                                " dimensions are more than one request may ask for; split it"),
                      m.id, m.provider);
    const Deadline deadline =
        Deadline::after(*m_clock, std::chrono::milliseconds(req.timeout_ms.value_or(m_cfg.request_timeout_ms)));

    EmbedResponse out;
    out.request_id = req.request_id;
    out.model_id = m.id;
    out.provider = m.provider;
    out.vectors.resize(req.inputs.size());
    std::vector<std::int64_t> tokens(req.inputs.size(), 0);
    std::vector<std::string> keys(req.inputs.size());
    std::vector<bool> have(req.inputs.size(), false);
    const bool use_cache = m_cache->config().enabled && req.cache_mode != CacheMode::bypass;
    const std::int64_t now_ms = m_clock->wall_ms();
    if (use_cache) {
        std::lock_guard lk(m_embed_mu);
        auto st = m_embed_db->prepare("SELECT vector, tokens FROM embedding_cache WHERE key = ? AND expires_ms > ?");
        for (std::size_t i = 0; st && i < req.inputs.size(); ++i) {
            keys[i] = embed_key(m, req.dimensions, req.inputs[i]);
            if (req.cache_mode != CacheMode::use) continue;
            st->reset();
            st->bind(1, keys[i]).bind(2, now_ms);
            auto row = st->step();
            if (!row || !*row) continue;
            const std::string blob = st->col_blob(0);
            if (blob.empty() || blob.size() % sizeof(float) != 0) continue;  // damaged: embed again
            out.vectors[i].resize(blob.size() / sizeof(float));
            std::memcpy(out.vectors[i].data(), blob.data(), blob.size());
            tokens[i] = st->col_int(1);
            have[i] = true;
            ++out.cached_inputs;
        }
    }
    std::vector<std::string> missing;
    std::vector<std::size_t> where;
    for (std::size_t i = 0; i < req.inputs.size(); ++i)
        if (!have[i]) {
            missing.push_back(req.inputs[i]);
            where.push_back(i);
        }
    int attempts = 0;
    std::int64_t billed_tokens = 0;
    // Budgets hold the worst case (the texts' estimated tokens at the model's
    // price) until the real cost is in the ledger, as for prompts: the hold
    // goes when this function returns, after its ledger row.
    BudgetHold release_hold(*this);
    if (!missing.empty()) {
        if (m_budget->active()) {
            std::int64_t est = 0;
            for (const auto& t : missing) est += estimate_tokens(t);
            auto hold = m_budget->reserve(req.agent_did, static_cast<double>(est) * m.input_price / 1e6);
            if (!hold) return refuse(hold.error(), m.id, m.provider);
            release_hold.hold(*hold);
        }
        auto r = call_embed(req, m, missing, deadline, attempts);
        if (!r) {
            Error e = r.error();
            record(row_req, fail(e),
                   {.model = m.id, .provider = m.provider, .latency_ms = ms_between(t0, m_clock->now()), .attempts = attempts});
            return fail(redact(std::move(e)));
        }
        billed_tokens = r->prompt_tokens;
        out.usage_estimated = r->estimated;
        // The provider's count is for the whole call: shared out by length
        // for the cache rows (a later hit reports its part).
        std::int64_t est_total = 0;
        for (const auto& t : missing) est_total += estimate_tokens(t);
        for (std::size_t k = 0; k < where.size(); ++k) {
            out.vectors[where[k]] = std::move(r->vectors[k]);
            tokens[where[k]] = est_total > 0 ? r->prompt_tokens * estimate_tokens(missing[k]) / est_total : 0;
        }
        if (use_cache) {
            std::lock_guard lk(m_embed_mu);
            const std::int64_t ttl = m_cache->config().ttl_ms;
            auto ins = m_embed_db->prepare(
                "INSERT OR REPLACE INTO embedding_cache(key, model_id, vector, tokens, created_ms, expires_ms) "
                "VALUES(?, ?, ?, ?, ?, ?)");
            // One transaction for all the request's rows; a failure stores none.
            bool ok = ins && m_embed_db->exec("BEGIN IMMEDIATE");
            for (std::size_t k = 0; ok && k < where.size(); ++k) {
                const auto& v = out.vectors[where[k]];
                ins->reset();
                ins->bind(1, keys[where[k]]).bind(2, m.id).bind_blob(3, v.data(), v.size() * sizeof(float));
                ins->bind(4, tokens[where[k]]).bind(5, now_ms).bind(6, ttl > 0 ? now_ms + ttl : std::int64_t{1} << 62);
                if (auto st = ins->run(); !st) {
                    spdlog::warn("embedding cache store failed: {}", st.error().to_string());
                    ok = false;
                }
            }
            if (ok && !m_embed_db->exec("COMMIT")) ok = false;
            if (!ok) (void)m_embed_db->exec("ROLLBACK");
            // Expired rows go as new ones come (bounded work per request), and
            // the table keeps at most cache.max_entries rows: the soonest to
            // expire (the oldest) go first.
            (void)m_embed_db->exec("DELETE FROM embedding_cache WHERE key IN (SELECT key FROM embedding_cache "
                                   "WHERE expires_ms <= " + std::to_string(now_ms) + " LIMIT 64)");
            const std::int64_t cap = m_cache->config().max_entries;
            if (cap > 0)
                (void)m_embed_db->exec("DELETE FROM embedding_cache WHERE key IN (SELECT key FROM embedding_cache "
                                       "ORDER BY expires_ms LIMIT max(0, (SELECT COUNT(*) FROM embedding_cache) - " +
                                       std::to_string(cap) + "))");
        }
    }
    for (auto t : tokens) out.prompt_tokens += t;
    if (missing.size() == req.inputs.size()) out.prompt_tokens = billed_tokens;  // exactly what the provider said
    out.cost_usd = static_cast<double>(billed_tokens) * m.input_price / 1e6;
    out.latency_ms = ms_between(t0, m_clock->now());

    InferenceResponse row;
    row.request_id = req.request_id;
    row.model_id = m.id;
    row.provider = m.provider;
    row.token_usage.prompt_tokens = missing.empty() ? 0 : billed_tokens;
    row.token_usage.total_tokens = row.token_usage.prompt_tokens;
    row.token_usage.estimated = out.usage_estimated;
    row.cost_usd = out.cost_usd;
    row.cache_hit = missing.empty() ? CacheHit::exact : CacheHit::none;
    double saved = 0;
    if (out.cached_inputs > 0)
        for (std::size_t i = 0; i < req.inputs.size(); ++i)
            if (have[i]) saved += static_cast<double>(tokens[i]) * m.input_price / 1e6;
    record(row_req, row,
           {.model = m.id, .provider = m.provider, .latency_ms = out.latency_ms, .attempts = attempts, .saved_usd = saved});
    return out;
}

Status Gateway::store_turn(const std::string& response_id, const std::string& parent, const std::string& model,
                          const std::string& turn_json) {
    constexpr std::int64_t k_keep_ms = 30LL * 24 * 3600 * 1000;
    const std::int64_t now = m_clock->wall_ms();
    std::lock_guard lk(m_embed_mu);
    auto ins = m_embed_db->prepare(
        "INSERT OR REPLACE INTO stored_responses(id, parent, created_ms, model, turn) VALUES(?, ?, ?, ?, ?)");
    if (!ins) return fail(ins.error());
    ins->bind(1, response_id).bind(2, parent).bind(3, now).bind(4, model).bind(5, turn_json);
    if (auto st = ins->run(); !st) return st;
    (void)m_embed_db->exec("DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses WHERE created_ms < " +
                           std::to_string(now - k_keep_ms) + " LIMIT 64)");
    return {};
}

Result<std::optional<Gateway::StoredTurn>> Gateway::load_turn(const std::string& response_id) {
    std::lock_guard lk(m_embed_mu);
    L04_TRY_ASSIGN(auto st, m_embed_db->prepare("SELECT parent, turn FROM stored_responses WHERE id = ?"));
    st.bind(1, response_id);
    L04_TRY_ASSIGN(auto row, st.step());
    if (!row) return std::optional<StoredTurn>();
    return std::optional<StoredTurn>(StoredTurn{st.col_text(0), st.col_text(1)});
}

Result<std::int64_t> Gateway::clear_embeddings(const std::string& model, std::optional<std::int64_t> older_than_ms) {
    std::lock_guard lk(m_embed_mu);
    std::string sql = "DELETE FROM embedding_cache WHERE 1";
    if (!model.empty()) sql += " AND model_id = ?1";
    if (older_than_ms) sql += " AND created_ms < ?2";
    L04_TRY_ASSIGN(auto st, m_embed_db->prepare(sql));
    if (!model.empty()) st.bind(1, model);
    if (older_than_ms) st.bind(2, m_clock->wall_ms() - *older_than_ms);
    L04_TRY(st.run());
    return static_cast<std::int64_t>(m_embed_db->changes());
}

}  // namespace l04
