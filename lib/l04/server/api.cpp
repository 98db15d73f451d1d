#include <l04/server/api.hpp>
#include <l04/batch/batch.hpp>
#include <l04/cache/hit_guard.hpp>
#include <l04/core/strings.hpp>
#include <l04/server/openai_json.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <ctime>
#include <unistd.h>

namespace l04 {

using nlohmann::json;

namespace {

const HeaderList k_json{{"Content-Type", "application/json"}};

void send_json(ResponseWriter& w, int status, const json& j, HeaderList extra = {}) {
    HeaderList h = k_json;
    h.insert(h.end(), extra.begin(), extra.end());
    w.send(status, h, to_wire(j) + "\n");
}

void send_error(ResponseWriter& w, const Error& e, const std::string& request_id = {}) {
    HeaderList h;
    if (e.retry_after) h.emplace_back("Retry-After", std::to_string((e.retry_after->count() + 999) / 1000));
    if (!request_id.empty()) h.emplace_back("x-request-id", request_id);
    h.emplace_back("x-l04-error-code", code_string(e.code));
    send_json(w, e.http_status > 0 ? e.http_status : default_http_status(e.code), error_to_json(e), h);
}

json cache_stats_json(const CacheStats& s) {
    return {{"enabled", s.enabled},
            {"entries", s.entries},
            {"bytes", s.bytes},
            {"hits", s.exact_hits + s.semantic_hits},
            {"exact_hits", s.exact_hits},
            {"semantic_hits", s.semantic_hits},
            {"misses", s.misses},
            {"hit_rate", s.hit_rate()},
            {"stores", s.stores},
            {"evictions", s.evictions},
            {"expired", s.expired},
            {"embed_failures", s.embed_failures},
            {"semantic", !s.embedder.empty()},
            {"embedder", s.embedder},
            {"similarity_threshold", s.similarity_threshold},
            {"semantic_guard", s.semantic_guard},
            {"semantic_margin", s.semantic_margin},
            {"guard_refusals", s.guard_refusals},
            {"ambiguous", s.ambiguous},
            {"index_size", s.index_size},
            {"index_deleted", s.index_deleted},
            {"index_loaded", s.index_loaded},
            {"oldest", s.oldest_ms ? json(iso8601_utc(s.oldest_ms)) : json(nullptr)},
            {"newest", s.newest_ms ? json(iso8601_utc(s.newest_ms)) : json(nullptr)}};
}

json model_json(const ModelInfo& m) {
    return {{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", m.provider}, {"l04", model_to_json(m)}};
}

json provider_json(const ProviderStatus& p) {
    json j{{"status", health_state_name(p.state)},
           {"kind", p.kind},
           {"configured", p.configured},
           {"circuit", circuit_state_name(p.circuit.state)},
           {"consecutive_failures", p.circuit.consecutive_failures},
           {"last_error", p.circuit.last_error.empty() ? json(nullptr) : json(p.circuit.last_error)},
           {"latency_ms", p.probe_latency_ms}};
    if (!p.message.empty()) j["message"] = p.message;
    return j;
}

// Compares in time that depends only on the lengths, not on where the
// first difference is.
bool same_secret(std::string_view a, std::string_view b) {
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (std::size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    return diff == 0;
}

// "Host: [::1]:8404" -> "::1"; "Localhost:80" -> "localhost".
std::string host_name(std::string h) {
    h = to_lower(h);
    if (!h.empty() && h.front() == '[') {
        auto close = h.find(']');
        return close == std::string::npos ? h : h.substr(1, close - 1);
    }
    if (auto colon = h.rfind(':'); colon != std::string::npos && h.find(':') == colon) h.resize(colon);
    while (!h.empty() && h.back() == '.') h.pop_back();
    return h;
}

bool is_admin_endpoint(const ServerRequest& req) {
    return req.path.rfind("/admin/", 0) == 0 || (req.path == "/v1/cache" && req.method == "DELETE") ||
           (req.path == "/v1/cache/prune" && req.method == "POST");
}

Error forbidden(const std::string& why) {
    Error e(ErrorCode::invalid_request, why);
    e.http_status = 403;
    return e;
}

}  // namespace

std::string query_param(const std::string& query, const std::string& name) {
    for (const auto& part : split(query, '&')) {
        auto eq = part.find('=');
        std::string k = part.substr(0, eq);
        if (k != name) continue;
        std::string v = eq == std::string::npos ? std::string() : part.substr(eq + 1);
        std::string out;
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '+') out += ' ';
            else if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                     std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
                out += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
                i += 2;
            } else out += v[i];
        }
        return out;
    }
    return {};
}

std::optional<Error> Api::tcp_refusal(const ServerRequest& req) const {
    if (!req.from_tcp) return std::nullopt;
    const std::string host = host_name(req.header("host"));
    std::vector<std::string> hosts = {"localhost", "127.0.0.1", "::1"};
    if (!m_opts.listen.empty()) hosts.push_back(host_name(m_opts.listen));
    for (const auto& h : m_opts.allowed_hosts) hosts.push_back(host_name(h));
    if (host.empty() || std::find(hosts.begin(), hosts.end(), host) == hosts.end())
        return forbidden("Host '" + req.header("host").substr(0, 100) +
                         "' is not served on l04d's TCP listener; add it to daemon.allowed_hosts");
    if (const std::string origin = req.header("origin"); !origin.empty()) {
        const auto& ok = m_opts.allowed_origins;
        if (std::find(ok.begin(), ok.end(), origin) == ok.end())
            return forbidden("cross-origin requests from '" + origin.substr(0, 100) +
                             "' are refused; add the origin to daemon.allowed_origins");
    }
    // Fetch metadata: a browser marks every request a page makes. A
    // cross-site one without an Origin (a no-cors GET, an <img>, a link)
    // could still make l04d probe providers or spend; l04d serves no pages,
    // so only requests a user typed ("none") or a page of the same origin
    // made are served. Clients that are not browsers send no such header.
    if (const std::string site = to_lower(req.header("sec-fetch-site"));
        !site.empty() && site != "none" && site != "same-origin") {
        const std::string origin = req.header("origin");
        const auto& ok = m_opts.allowed_origins;
        if (origin.empty() || std::find(ok.begin(), ok.end(), origin) == ok.end())
            return forbidden("requests a browser marks " + site.substr(0, 20) +
                             " (Sec-Fetch-Site) are refused on l04d's TCP listener");
    }
    const std::string cl = req.header("content-length");
    if (!req.body.empty() || (!cl.empty() && cl != "0") || !req.header("transfer-encoding").empty()) {
        const std::string ct = to_lower(req.header("content-type"));
        // Neither is a type a page may send without a CORS preflight.
        auto is = [&ct](const char* t) { return ct == t || ct.rfind(std::string(t) + ";", 0) == 0; };
        if (!is("application/json") && !(req.path == "/v1/batch" && is("application/x-ndjson"))) {
            Error e(ErrorCode::invalid_request,
                    "request bodies on l04d's TCP listener must be application/json (application/x-ndjson for /v1/batch)");
            e.http_status = 415;
            return e;
        }
    }
    if (!m_opts.auth_token.empty()) {
        const std::string auth = req.header("authorization");
        const std::string_view prefix = "Bearer ";
        if (auth.size() < prefix.size() || auth.compare(0, prefix.size(), prefix) != 0 ||
            !same_secret(std::string_view(auth).substr(prefix.size()), m_opts.auth_token)) {
            Error e(ErrorCode::auth_failed, "missing or wrong bearer token for l04d's TCP listener");
            e.http_status = 401;
            return e;
        }
    } else if (is_admin_endpoint(req)) {
        return forbidden(req.method + " " + req.path +
                         " is served over TCP only with a bearer token (daemon.auth_token); use the Unix socket");
    }
    return std::nullopt;
}

bool Api::admit(const ServerRequest& req, ResponseWriter& w) {
    if (auto refused = tcp_refusal(req)) {
        send_error(w, *refused);
        return false;
    }
    return true;
}

void Api::handle(const ServerRequest& req, ResponseWriter& w) {
    if (auto refused = tcp_refusal(req)) return send_error(w, *refused);
    if (!req.from_tcp && !m_opts.state_dir.empty()) {
        const std::string theirs = req.header("x-l04-state-dir");
        // m_opts.state_dir is normalised once, by l04d.
        if (!theirs.empty() && std::filesystem::path(theirs).lexically_normal().string() != m_opts.state_dir) {
            Error e(ErrorCode::daemon_unavailable,
                    "the l04d on this socket serves the state directory " + m_opts.state_dir + ", not yours (" +
                        theirs.substr(0, 300) +
                        "); give each state directory its own runtime directory (unset L04_RUNTIME_DIR, or set it "
                        "per state directory)");
            e.http_status = 409;
            return send_error(w, e);
        }
    }
    const std::string& p = req.path;
    const std::string& m = req.method;
    try {
        if (p == "/v1/chat/completions" || p == "/chat/completions") {
            if (m != "POST") return send_error(w, Error(ErrorCode::invalid_request, "use POST"));
            return chat(req, w);
        }
        if (p == "/health" || p == "/healthz" || p == "/v1/health") return health(req, w);
        if (p == "/metrics") {
            m_gw.refresh_metrics();
            return (void)w.send(200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, m_gw.metrics().render());
        }
        if (p == "/v1/models" || p.rfind("/v1/models/", 0) == 0) return models(req, w);
        if (p == "/v1/cache/stats" || (p == "/v1/cache" && m == "GET")) return cache_stats(w);
        if (p == "/v1/cache" && m == "DELETE") return cache_clear(req, w);
        if (p == "/v1/cache/search" && m == "GET") return cache_search(req, w);
        if (p == "/v1/cache/prune" && m == "POST") {
            auto r = m_gw.cache()->prune();
            if (!r) return send_error(w, r.error());
            return send_json(w, 200, {{"removed", *r}});
        }
        if (p == "/v1/providers" || p.rfind("/v1/providers/", 0) == 0) return providers(req, w);
        if (p == "/v1/usage") return usage(req, w);
        if (p == "/v1/limits") {
            json arr = json::array();
            for (const auto& b : m_gw.rate_limiter().buckets())
                arr.push_back({{"scope", b.scope}, {"kind", b.kind}, {"level", b.level}, {"capacity", b.capacity},
                               {"refill_per_s", b.refill_per_s}});
            json circuits = json::object();
            for (const auto& [id, info] : m_gw.registry().providers()) {
                auto c = m_gw.breaker().snapshot(id);
                circuits[id] = {{"state", circuit_state_name(c.state)},
                                {"consecutive_failures", c.consecutive_failures},
                                {"blocked_until", c.blocked_until_ms > m_gw.clock().wall_ms() ? json(iso8601_utc(c.blocked_until_ms)) : json(nullptr)},
                                {"last_error", c.last_error.empty() ? json(nullptr) : json(c.last_error)}};
            }
            return send_json(w, 200, {{"buckets", arr}, {"circuits", circuits}});
        }
        if (p == "/v1/route" && m == "POST") return route(req, w);
        if (p == "/v1/batch") {
            if (m != "POST") return send_error(w, Error(ErrorCode::invalid_request, "use POST"));
            return batch(req, w);
        }
        if (p == "/admin/status") {
            json j{{"pid", ::getpid()},
                   {"version", L04_VERSION},
                   {"uptime_s", m_opts.started_ms ? (m_gw.clock().wall_ms() - m_opts.started_ms) / 1000.0 : 0.0},
                   {"socket", m_opts.socket_path},
                   {"listen", m_opts.listen},
                   {"state_dir", m_gw.settings().state_dir()},
                   {"in_process", m_opts.in_process},
                   {"provider_env", m_gw.settings().provider_fingerprint()}};
            return send_json(w, 200, j);
        }
        if (p == "/admin/shutdown" && m == "POST") {
            send_json(w, 200, {{"stopping", true}});
            if (m_opts.on_shutdown) m_opts.on_shutdown();
            return;
        }
        Error e(ErrorCode::invalid_request, "no such endpoint: " + m + " " + p);
        e.http_status = 404;
        send_error(w, e);
    } catch (const std::exception& ex) {
        spdlog::error("handler for {} {} failed: {}", m, p, ex.what());
        if (!w.started()) send_error(w, Error(ErrorCode::internal_error, std::string("internal error: ") + ex.what()));
    }
}

void Api::chat(const ServerRequest& http, ResponseWriter& w) {
    auto parsed = parse_chat_request(http.body);
    if (!parsed) return send_error(w, parsed.error());
    InferenceRequest req = std::move(*parsed);
    if (req.request_id.empty()) req.request_id = http.header("x-request-id");
    if (req.request_id.empty()) req.request_id = new_request_id();
    // A client that retries by itself: l04 does not retry inside each of its
    // attempts (3 SDK attempts x 3 l04 attempts = 9 upstream calls).
    if (const std::string n = std::string(trim(http.header("x-l04-retries"))); !n.empty()) {
        if (n.size() > 2 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoi(n) > 10)
            return send_error(w, Error(ErrorCode::invalid_parameter, "x-l04-retries must be a number from 0 to 10"));
        req.max_retries = std::stoi(n);
    } else if (!http.header("x-stainless-retry-count").empty()) {
        req.max_retries = 0;
    }
    // It is echoed in headers and logs: printable ASCII only, bounded.
    if (req.request_id.size() > 128 || !std::all_of(req.request_id.begin(), req.request_id.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
        }))
        return send_error(w, Error(ErrorCode::invalid_parameter,
                                   "a request id may hold at most 128 printable characters without spaces"));

    if (!req.stream) {
        const std::string id = req.request_id;
        auto r = m_gw.execute(std::move(req));
        if (!r) return send_error(w, r.error(), id);
        return send_json(w, 200, chat_response_to_json(*r), fact_headers(*r));
    }

    // Streaming: headers go out with the first chunk (an adapter's opening
    // chunk, or the first token), so an error before it is still a plain JSON
    // error with its HTTP status; after it, an error event on the 200 stream.
    const std::string id = req.request_id;
    const std::int64_t created = m_gw.clock().wall_ms() / 1000;
    bool first = true;
    bool client_gone = false;
    CancelToken cancel;
    auto begin = [&](const std::string& model, const std::string& provider) {
        HeaderList h{{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"},
                     {"x-request-id", id}, {"x-l04-model", model}, {"x-l04-provider", provider}};
        if (!w.begin_stream(200, h)) client_gone = true;
    };
    ChunkSink sink = [&](const StreamChunk& c) -> bool {
        if (client_gone) return false;
        if (!w.started()) begin(c.model_id, c.provider);
        std::string ev = "data: " + to_wire(chunk_to_json(c, id, created, first)) + "\n\n";
        first = false;
        if (!w.write(ev)) {
            client_gone = true;
            cancel.cancelled = true;
            return false;
        }
        return true;
    };
    auto r = m_gw.stream(std::move(req), sink, &cancel);
    if (client_gone) return;
    if (!r) {
        if (!w.started()) return send_error(w, r.error(), id);
        // Mid-stream failure: an error event and no [DONE], so no client
        // mistakes it for a clean finish.
        w.write("data: " + to_wire(error_to_json(r.error())) + "\n\n");
        w.end_stream();
        return;
    }
    if (!w.started()) begin(r->model_id, r->provider);
    std::string tail = "data: " + to_wire(finish_chunk_json(*r, created)) + "\n\n";
    tail += "data: " + to_wire(usage_chunk_json(*r, created)) + "\n\n";
    tail += "data: [DONE]\n\n";
    w.write(tail);
    w.end_stream();
}

void Api::health(const ServerRequest& req, ResponseWriter& w) {
    const bool probe = query_param(req.query, "probe") != "0";
    HealthReport h = m_gw.health(probe);
    json providers = json::object();
    for (const auto& p : h.providers) providers[p.id] = provider_json(p);
    json j{{"gateway", h.gateway},
           {"timestamp", iso8601_utc(h.timestamp_ms)},
           {"version", L04_VERSION},
           {"pid", ::getpid()},
           {"daemon", !m_opts.in_process},
           {"uptime_s", m_opts.started_ms ? (h.timestamp_ms - m_opts.started_ms) / 1000.0 : 0.0},
           {"paths",
            {{"state_dir", m_gw.settings().state_dir()},
             {"socket", m_opts.socket_path},
             {"config", m_gw.settings().user_config_path()}}},
           {"registry", {{"total_models", h.total_models}}},
           {"cache", cache_stats_json(h.cache)},
           {"queue",
            {{"pending_requests", h.queue.pending},
             {"active_requests", h.queue.active},
             {"rejected_full", h.queue.rejected_full},
             {"expired", h.queue.expired}}},
           {"providers", providers}};
    send_json(w, 200, j);
}

void Api::models(const ServerRequest& req, ResponseWriter& w) {
    const auto& reg = m_gw.registry();
    if (req.path.size() > std::string("/v1/models/").size()) {
        std::string id = req.path.substr(std::string("/v1/models/").size());
        const ModelInfo* m = reg.find(id);
        if (!m) {
            auto near = closest_names(id, reg.names());
            std::string msg = "unknown model '" + id + "'";
            if (!near.empty()) msg += " (did you mean '" + near[0] + "'?)";
            return send_error(w, Error(ErrorCode::model_not_found, msg));
        }
        return send_json(w, 200, model_json(*m));
    }
    json data = json::array();
    for (const auto& m : reg.models()) data.push_back(model_json(m));
    send_json(w, 200, {{"object", "list"}, {"data", data}});
}

void Api::cache_stats(ResponseWriter& w) { send_json(w, 200, cache_stats_json(m_gw.cache_stats())); }

void Api::cache_clear(const ServerRequest& req, ResponseWriter& w) {
    std::optional<std::int64_t> older;
    if (auto o = query_param(req.query, "older_than"); !o.empty()) {
        older = parse_duration_ms(o);
        if (!older) return send_error(w, Error(ErrorCode::invalid_parameter, "older_than must be a duration like 24h"));
    }
    auto r = m_gw.cache()->clear(query_param(req.query, "model"), older);
    if (!r) return send_error(w, r.error());
    send_json(w, 200, {{"deleted", *r}});
}

void Api::cache_search(const ServerRequest& req, ResponseWriter& w) {
    const std::string q = query_param(req.query, "q");
    if (trim(q).empty()) return send_error(w, Error(ErrorCode::invalid_parameter, "q (the text to search for) is empty"));
    std::size_t k = 5;
    if (auto ks = query_param(req.query, "k"); !ks.empty()) {
        const bool digits = ks.size() <= 3 && ks.find_first_not_of("0123456789") == std::string::npos;
        const int n = digits ? std::stoi(ks) : 0;
        if (n < 1 || n > 100) return send_error(w, Error(ErrorCode::invalid_parameter, "k must be a number from 1 to 100"));
        k = static_cast<std::size_t>(n);
    }
    ResponseCache& cache = *m_gw.cache();
    if (!cache.config().semantic || !cache.embedder())
        return send_error(w, Error(ErrorCode::config_error,
                                   "the semantic cache is off: set cache.semantic = true and cache.embedder "
                                   "(builtin, ollama or openai)"));
    auto hits = cache.search(q, k);
    if (!hits) return send_error(w, hits.error());
    const auto now = m_gw.clock().wall_ms();
    const double threshold = cache.config().similarity_threshold;
    json results = json::array();
    for (const auto& h : *hits) {
        // What the hit guard would say of serving this entry for q.
        const auto why = cache.config().semantic_guard ? semantic_conflict(q, h.prompt) : HitConflict::none;
        results.push_back({{"id", h.id},
                           {"similarity", h.similarity},
                           {"above_threshold", h.similarity + 1e-6 >= threshold},
                           {"guard", why == HitConflict::none ? json(nullptr) : json(to_string(why))},
                           {"prompt", h.prompt},
                           {"model", h.model_id},
                           {"target", h.target},
                           {"scope", h.scope},
                           {"hits", h.hits},
                           {"created", iso8601_utc(h.created_ms)},
                           {"expired", h.expires_ms <= now}});
    }
    send_json(w, 200,
              {{"query", q}, {"k", k}, {"embedder", cache.embedder()->name()}, {"threshold", threshold},
               {"results", results}});
}

void Api::providers(const ServerRequest& req, ResponseWriter& w) {
    std::string id;
    if (req.path.rfind("/v1/providers/", 0) == 0) {
        id = req.path.substr(std::string("/v1/providers/").size());
        if (auto slash = id.find('/'); slash != std::string::npos) id = id.substr(0, slash);
    }
    const bool probe = !id.empty() || query_param(req.query, "probe") == "1";
    HealthReport h = m_gw.health(probe);
    json all = json::object();
    for (const auto& p : h.providers) {
        if (!id.empty() && p.id != id) continue;
        all[p.id] = provider_json(p);
    }
    if (!id.empty()) {
        if (all.empty()) {
            Error e(ErrorCode::provider_not_configured, "unknown provider '" + id + "'");
            e.http_status = 404;
            return send_error(w, e);
        }
        json one = all[id];
        one["id"] = id;
        return send_json(w, 200, one);
    }
    send_json(w, 200, {{"providers", all}});
}

void Api::usage(const ServerRequest& req, ResponseWriter& w) {
    std::string since = query_param(req.query, "since");
    const auto now = m_gw.clock().wall_ms();
    std::int64_t since_ms = 0;
    if (since.size() == 10 && since[4] == '-' && since[7] == '-') {
        std::tm tm{};
        if (!strptime(since.c_str(), "%Y-%m-%d", &tm))
            return send_error(w, Error(ErrorCode::invalid_parameter, "since must be a duration like 24h or a date YYYY-MM-DD"));
        since_ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
    } else {
        auto ms = parse_duration_ms(since.empty() ? "24h" : since);
        if (!ms) return send_error(w, Error(ErrorCode::invalid_parameter, "since must be a duration like 24h or a date YYYY-MM-DD"));
        since_ms = now - *ms;
    }
    const std::string agent = query_param(req.query, "agent");
    auto groups = m_gw.ledger().report(since_ms, query_param(req.query, "by"), agent);
    if (!groups) return send_error(w, groups.error());
    auto t = m_gw.ledger().report(since_ms, "", agent);
    if (!t) return send_error(w, t.error());
    auto group_json = [](const UsageGroup& g) {
        return json{{"key", g.key},
                    {"requests", g.requests},
                    {"errors", g.errors},
                    {"cached", g.cached},
                    {"prompt_tokens", g.prompt_tokens},
                    {"completion_tokens", g.completion_tokens},
                    {"cost_usd", g.cost_usd},
                    {"saved_usd", g.saved_usd},
                    {"p50_latency_ms", g.p50_latency_ms},
                    {"p95_latency_ms", g.p95_latency_ms}};
    };
    json total = t->empty() ? group_json(UsageGroup{"total"}) : group_json((*t)[0]);
    json arr = json::array();
    for (const auto& g : *groups) arr.push_back(group_json(g));
    send_json(w, 200, {{"since", iso8601_utc(since_ms)}, {"by", query_param(req.query, "by")}, {"total", total}, {"groups", arr}});
}

void Api::route(const ServerRequest& http, ResponseWriter& w) {
    auto parsed = parse_chat_request(http.body);
    if (!parsed) return send_error(w, parsed.error());
    InferenceRequest req = std::move(*parsed);
    if (auto st = m_gw.validate(req); !st) return send_error(w, st.error());
    auto d = m_gw.explain(req);
    if (!d) return send_error(w, d.error());
    json notes = json::array();
    for (const auto& n : d->notes)
        notes.push_back({{"model", n.model}, {"kept", n.kept}, {"score", n.score}, {"reason", n.reason}});
    json fb = json::array();
    for (const auto* m : d->fallbacks) fb.push_back(m->id);
    json out{{"primary", d->primary ? d->primary->id : ""}, {"fallbacks", fb}, {"strategy", d->strategy},
             {"target", d->target}, {"candidates", notes}};
    if (!d->note.empty()) out["note"] = d->note;
    send_json(w, 200, out);
}

// JSON lines in (the `l04ctl batch` input format), JSON lines out as each
// item finishes (or in input order with ?ordered=1), on one streamed 200
// answer: an item's failure is its own line, never the whole request's.
void Api::batch(const ServerRequest& http, ResponseWriter& w) {
    std::size_t concurrency = 4;
    if (const std::string c = query_param(http.query, "concurrency"); !c.empty()) {
        if (c.size() > 2 || !std::all_of(c.begin(), c.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
            std::stoi(c) < 1 || std::stoi(c) > 16)
            return send_error(w, Error(ErrorCode::invalid_parameter, "concurrency must be from 1 to 16"));
        concurrency = static_cast<std::size_t>(std::stoi(c));
    }
    const std::string ord = query_param(http.query, "ordered");
    BatchDefaults d;
    const std::vector<BatchItem> items = parse_batch_input(http.body, d);
    if (items.empty()) return send_error(w, Error(ErrorCode::invalid_request, "the batch is empty: send one item a line"));
    if (!w.begin_stream(200, {{"Content-Type", "application/x-ndjson"}, {"Cache-Control", "no-cache"}})) return;
    BatchRunOptions opts;
    opts.concurrency = concurrency;
    opts.ordered = ord == "1" || ord == "true";
    opts.default_timeout_ms = m_gw.settings().get_duration_ms("request.timeout");
    opts.clock = &m_gw.clock();
    BatchExec exec = [this](std::size_t, const InferenceRequest& req) { return m_gw.execute(InferenceRequest(req)); };
    BatchEmit emit = [&w](const BatchItem& it, const Result<InferenceResponse>& r) {
        const nlohmann::ordered_json line = r ? batch_result_json(it, *r) : batch_error_json(it, r.error(), exit_status(r.error().code));
        return w.write(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");  // false: the client is gone, start nothing more
    };
    run_batch(items, exec, emit, opts);
    w.end_stream();
}

}  // namespace l04
