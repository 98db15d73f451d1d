#include <l04/server/api.hpp>
#include <l04/wire/admin_json.hpp>
#include <l04/batch/batch.hpp>
#include <l04/cache/hit_guard.hpp>
#include <l04/core/fiber.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/completions_json.hpp>
#include <l04/wire/openai_json.hpp>
#include <l04/wire/responses_json.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <cctype>
#include <cstring>
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

json model_json(const ModelInfo& m) {
    return {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.provider}, {"l04", model_to_json(m)}};
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

// Admin is a property of the route the request reaches (the table's flag),
// so no spelling of a path can reach an admin handler without the check;
// anything under /admin/ counts as admin even when it matches nothing.
bool is_admin_endpoint(const ServerRequest& req) {
    if (req.path.rfind("/admin", 0) == 0) return true;
    for (const auto& r : api_routes())
        if (r.admin && r.method == req.method && route_matches(r, req.path)) return true;
    return false;
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

namespace {
// Path segments exactly as written: no trimming, empty segments kept, so
// "//admin/shutdown" or "/v1/cache%20" never equal a route's path.
std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const auto slash = path.find('/', start);
        out.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return out;
}
}  // namespace

bool route_matches(const ApiRoute& r, const std::string& path) {
    // Template segments "{x}" match one non-empty segment without spaces; a
    // trailing parameter with rest = true takes the rest of the path (model
    // ids such as ollama/qwen2.5 hold a slash). Everything else is compared
    // byte for byte. Most routes have no parameter: one string comparison,
    // no splitting, on every request's dispatch.
    if (std::strchr(r.path, '{') == nullptr) return path == r.path;
    const auto want = segments(r.path);
    const auto got = segments(path);
    if (path.empty() || path[0] != '/') return false;
    auto param_ok = [](std::string_view seg) {
        return !seg.empty() && std::all_of(seg.begin(), seg.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) != 0x7f;
        });
    };
    if (r.rest && got.size() > want.size()) {
        for (std::size_t i = want.size(); i < got.size(); ++i)
            if (!param_ok(got[i])) return false;
    }
    if (r.rest ? got.size() < want.size() : got.size() != want.size()) return false;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const bool param = want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}';
        if (param ? !param_ok(got[i]) : got[i] != want[i]) return false;
    }
    return true;
}

const std::vector<ApiRoute>& api_routes() {
    using R = ApiRoute;
    static const std::vector<ApiRoute> t = {
        {"POST", "/v1/chat/completions", "OpenAI chat completions; \"stream\": true answers SSE ending in [DONE]",
         "inference", R::json_body, "application/json, text/event-stream", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.chat(q, w); }},
        {"POST", "/chat/completions", "The same, without /v1 (clients configured with a bare base URL)", "inference",
         R::json_body, "application/json, text/event-stream", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.chat(q, w); }},
        {"POST", "/v1/completions",
         "The specification's completion (messages, routing) answered with content, model_id, provider, token_usage, "
         "latency_ms, cached, request_id, metadata; OpenAI's legacy text completion when the body has prompt",
         "inference", R::json_body, "application/json, text/event-stream", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.completions(q, w, false); }},
        {"POST", "/completions", "The same, without /v1", "inference", R::json_body, "application/json, text/event-stream",
         false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.completions(q, w, false); }},
        {"POST", "/v1/completions/stream", "/v1/completions, always streamed: SSE chunks {content, is_final}",
         "inference", R::json_body, "text/event-stream", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.completions(q, w, true); }},
        {"POST", "/v1/responses", "OpenAI's Responses API (common subset; stream: the response.* event sequence)",
         "inference", R::json_body, "application/json, text/event-stream", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.responses(q, w); }},
        {"POST", "/responses", "The same, without /v1", "inference", R::json_body, "application/json, text/event-stream",
         false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.responses(q, w); }},
        {"POST", "/v1/embeddings", "OpenAI embeddings (input string or array; float or base64)", "inference",
         R::json_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.embeddings(q, w); }},
        {"POST", "/embeddings", "The same, without /v1", "inference", R::json_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.embeddings(q, w); }},
        {"POST", "/v1/batch", "JSON lines in, one result line per item out (?concurrency=N&ordered=1)", "inference",
         R::ndjson_body, "application/x-ndjson", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.batch(q, w); }},
        {"POST", "/v1/route", "The routing decision for a chat body, without calling any provider", "routing",
         R::json_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.route(q, w); }},
        {"GET", "/v1/models", "The model registry in OpenAI's list shape (+ l04 fields)", "registry", R::no_body,
         "application/json", false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.models(q, w); }},
        {"GET", "/v1/models/{model}", "One model (ids may hold a slash: ollama/NAME)", "registry", R::no_body,
         "application/json", true, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.models(q, w); }},
        {"GET", "/health", "The health report (?probe=0 skips provider probes)", "operations", R::no_body,
         "application/json", false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.health(q, w); }},
        {"GET", "/healthz", "The same as /health", "operations", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.health(q, w); }},
        {"GET", "/v1/health", "The same as /health", "operations", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.health(q, w); }},
        {"GET", "/metrics", "Prometheus metrics (text format 0.0.4)", "operations", R::no_body,
         "text/plain; version=0.0.4", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.metrics(w); }},
        {"GET", "/v1/cache", "Cache statistics (as /v1/cache/stats)", "cache", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.cache_stats(w); }},
        {"GET", "/v1/cache/stats", "Cache statistics", "cache", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.cache_stats(w); }},
        {"DELETE", "/v1/cache", "Clear the cache (?model=M&older_than=DUR); admin", "cache", R::no_body,
         "application/json", false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.cache_clear(q, w); }, true},
        {"GET", "/v1/cache/search", "The entries nearest a text (?q=TEXT&k=N), for tuning the threshold", "cache",
         R::no_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.cache_search(q, w); }},
        {"POST", "/v1/cache/prune", "Drop expired entries; admin", "cache", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.cache_prune(w); }, true},
        {"GET", "/v1/providers", "Provider states (?probe=1 probes them)", "operations", R::no_body, "application/json",
         false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.providers(q, w); }},
        {"GET", "/v1/providers/{provider}", "One provider, probed", "operations", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.providers(q, w); }},
        {"GET", "/v1/providers/{provider}/health", "One provider, probed", "operations", R::no_body,
         "application/json", false, [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.providers(q, w); }},
        {"GET", "/v1/usage", "Ledger totals (?since=DUR|DATE&by=model|provider|agent|day&agent=A)", "usage",
         R::no_body, "application/json", false,
         [](Api& a, const ServerRequest& q, ResponseWriter& w) { a.usage(q, w); }},
        {"GET", "/v1/limits", "Rate-limit buckets and circuit states", "usage", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.limits(w); }},
        {"GET", "/openapi.json", "This document", "operations", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.openapi(w); }},
        {"GET", "/admin/status", "pid, version, uptime, paths; admin", "admin", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.admin_status(w); }, true},
        {"POST", "/admin/shutdown", "Graceful stop; admin", "admin", R::no_body, "application/json", false,
         [](Api& a, const ServerRequest&, ResponseWriter& w) { a.admin_shutdown(w); }, true},
    };
    return t;
}

json openapi_document() {
    json paths = json::object();
    for (const auto& r : api_routes()) {
        json op{{"summary", r.summary}, {"tags", json::array({r.tag})}};
        if (r.admin) op["security"] = json::array({{{"bearer", json::array()}}});
        json params = json::array();
        for (const auto& seg : split(r.path, '/'))
            if (seg.size() > 2 && seg.front() == '{')
                params.push_back({{"name", seg.substr(1, seg.size() - 2)},
                                  {"in", "path"},
                                  {"required", true},
                                  {"schema", {{"type", "string"}}}});
        if (!params.empty()) op["parameters"] = std::move(params);
        if (r.body != ApiRoute::no_body)
            op["requestBody"] = {{"required", true},
                                 {"content",
                                  {{r.body == ApiRoute::ndjson_body ? "application/x-ndjson" : "application/json",
                                    {{"schema", {{"type", r.body == ApiRoute::ndjson_body ? "string" : "object"}}}}}}}};
        json content = json::object();
        for (const auto& type : split(r.produces, ','))
            content[std::string(trim(type))] = {{"schema", {{"type", type.find("json") != std::string::npos ? "object" : "string"}}}};
        op["responses"] = {{"200", {{"description", "OK"}, {"content", std::move(content)}}},
                           {"default",
                            {{"description", "An error: {\"error\": {message, type, code (E4xxx), retryable}}"},
                             {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}};
        std::string method = r.method;
        for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        paths[r.path][method] = std::move(op);
    }
    return {{"openapi", "3.1.0"},
            {"info",
             {{"title", "l04d"},
              {"version", L04_VERSION},
              {"description",
               "l04's gateway daemon: OpenAI-compatible endpoints and the specification's, on a Unix socket and on "
               "loopback TCP (bearer token when daemon.auth_token is set; admin endpoints need it over TCP)."}}},
            {"paths", std::move(paths)},
            {"components",
             {{"schemas",
               {{"Error",
                 {{"type", "object"},
                  {"properties",
                   {{"error",
                     {{"type", "object"},
                      {"properties",
                       {{"message", {{"type", "string"}}},
                        {"type", {{"type", "string"}}},
                        {"code", {{"type", "string"}, {"pattern", "^E4[0-7][0-9]{2}$"}}},
                        {"retryable", {{"type", "boolean"}}},
                        {"retry_after", {{"type", "number"}}}}}}}}}}}}},
               {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
}

void Api::metrics(ResponseWriter& w) {
    w.send(200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, m_gw.metrics_text());
}

void Api::cache_prune(ResponseWriter& w) {
    auto r = m_gw.prune_cache();
    if (!r) return send_error(w, r.error());
    send_json(w, 200, {{"removed", *r}});
}

void Api::limits(ResponseWriter& w) {
    const LimitsReport report = m_gw.limits();
    json arr = json::array();
    for (const auto& b : report.buckets)
        arr.push_back({{"scope", b.scope}, {"kind", b.kind}, {"level", b.level}, {"capacity", b.capacity},
                       {"refill_per_s", b.refill_per_s}});
    json circuits = json::object();
    for (const auto& entry : report.circuits) {
        const CircuitSnapshot& c = entry.second;
        circuits[entry.first] = {{"state", circuit_state_name(c.state)},
                        {"consecutive_failures", c.consecutive_failures},
                        {"blocked_until", c.blocked_until_ms > m_gw.clock().wall_ms() ? json(iso8601_utc(c.blocked_until_ms)) : json(nullptr)},
                        {"last_error", c.last_error.empty() ? json(nullptr) : json(c.last_error)}};
    }
    send_json(w, 200, {{"buckets", arr}, {"circuits", circuits}});
}

void Api::openapi(ResponseWriter& w) { send_json(w, 200, openapi_document()); }

void Api::admin_status(ResponseWriter& w) {
    json j{{"pid", ::getpid()},
           {"version", L04_VERSION},
           {"uptime_s", m_opts.started_ms ? (m_gw.clock().wall_ms() - m_opts.started_ms) / 1000.0 : 0.0},
           {"socket", m_opts.socket_path},
           {"listen", m_opts.listen},
           {"state_dir", m_gw.settings().state_dir()},
           {"in_process", m_opts.in_process},
           {"provider_env", m_gw.settings().provider_fingerprint()}};
    send_json(w, 200, j);
}

void Api::admin_shutdown(ResponseWriter& w) {
    send_json(w, 200, {{"stopping", true}});
    if (m_opts.on_shutdown) m_opts.on_shutdown();
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
        // One table routes and documents (/openapi.json): a path the table
        // does not hold is 404, a method it does not list for the path 405.
        std::string allowed;
        for (const auto& r : api_routes()) {
            if (!route_matches(r, p)) continue;
            if (r.method == m) return r.handler(*this, req, w);
            allowed += (allowed.empty() ? "" : ", ") + std::string(r.method);
        }
        if (!allowed.empty()) {
            Error e(ErrorCode::invalid_request, "use " + allowed + " for " + p);
            e.http_status = 405;
            return send_error(w, e);
        }
        Error e(ErrorCode::invalid_request, "no such endpoint: " + m + " " + p + " (GET /openapi.json lists them)");
        e.http_status = 404;
        send_error(w, e);
    } catch (const std::exception& ex) {
        spdlog::error("handler for {} {} failed: {}", m, p, ex.what());
        if (!w.started()) send_error(w, Error(ErrorCode::internal_error, std::string("internal error: ") + ex.what()));
    }
}

// What every inference endpoint does with the HTTP request around the body:
// the request id (echoed, so bounded and printable) and the caller's own
// retry count.
std::optional<Error> Api::prepare(const ServerRequest& http, InferenceRequest& req) const {
    if (req.request_id.empty()) req.request_id = http.header("x-request-id");
    if (req.request_id.empty()) req.request_id = new_request_id();
    // A client that retries by itself: l04 does not retry inside each of its
    // attempts (3 SDK attempts x 3 l04 attempts = 9 upstream calls).
    if (const std::string n = std::string(trim(http.header("x-l04-retries"))); !n.empty()) {
        if (n.size() > 2 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoi(n) > 10)
            return Error(ErrorCode::invalid_parameter, "x-l04-retries must be a number from 0 to 10");
        req.max_retries = std::stoi(n);
    } else if (!http.header("x-stainless-retry-count").empty()) {
        req.max_retries = 0;
    }
    // It is echoed in headers and logs: printable ASCII only, bounded.
    if (req.request_id.size() > 128 || !std::all_of(req.request_id.begin(), req.request_id.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
        }))
        return Error(ErrorCode::invalid_parameter, "a request id may hold at most 128 printable characters without spaces");
    return std::nullopt;
}

// Streams one request as server-sent events in `f`'s format. Headers go out
// with the first chunk (an adapter's opening chunk, or the first token), so
// an error before it is still a plain JSON error with its HTTP status; after
// it, `f.error`'s event on the 200 stream and never the clean ending.
void Api::stream_sse(InferenceRequest req, ResponseWriter& w, const SseFormat& f) {
    const std::string id = req.request_id;
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
        std::string ev = f.chunk(c, first);
        first = false;
        if (!ev.empty() && !w.write(ev)) {
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
        w.write(f.error(r.error()));
        w.end_stream();
        return;
    }
    if (!w.started()) begin(r->model_id, r->provider);
    w.write(f.tail(*r));
    w.end_stream();
}

namespace {
std::string sse_data(const json& j) { return "data: " + to_wire(j) + "\n\n"; }
}  // namespace

void Api::chat(const ServerRequest& http, ResponseWriter& w) {
    auto parsed = parse_chat_request(http.body);
    if (!parsed) return send_error(w, parsed.error());
    InferenceRequest req = std::move(*parsed);
    if (auto e = prepare(http, req)) return send_error(w, *e);

    if (!req.stream) {
        const std::string id = req.request_id;
        auto r = m_gw.execute(std::move(req));
        if (!r) return send_error(w, r.error(), id);
        return send_json(w, 200, chat_response_to_json(*r), fact_headers(*r));
    }
    const std::string id = req.request_id;
    const std::int64_t created = m_gw.clock().wall_ms() / 1000;
    SseFormat f;
    f.chunk = [&](const StreamChunk& c, bool first) { return sse_data(chunk_to_json(c, id, created, first)); };
    f.tail = [&](const InferenceResponse& r) {
        return sse_data(finish_chunk_json(r, created)) + sse_data(usage_chunk_json(r, created)) + "data: [DONE]\n\n";
    };
    // Mid-stream failure: an error event and no [DONE], so no client
    // mistakes it for a clean finish.
    f.error = [](const Error& e) { return sse_data(error_to_json(e)); };
    stream_sse(std::move(req), w, f);
}

// POST /v1/completions (and /v1/completions/stream, always streamed): the
// specification's shape, or OpenAI's legacy text completion when the body
// has `prompt`.
void Api::completions(const ServerRequest& http, ResponseWriter& w, bool force_stream) {
    auto parsed = parse_completions_request(http.body);
    if (!parsed) return send_error(w, parsed.error());
    InferenceRequest req = std::move(parsed->req);
    const CompletionShape shape = parsed->shape;
    if (force_stream) req.stream = true;
    if (auto e = prepare(http, req)) return send_error(w, *e);
    const std::string id = req.request_id;
    if (!req.stream) {
        auto r = m_gw.execute(std::move(req));
        if (!r) return send_error(w, r.error(), id);
        return send_json(w, 200, shape == CompletionShape::legacy ? legacy_completion_json(*r) : spec_completion_json(*r),
                         fact_headers(*r));
    }
    SseFormat f;
    if (shape == CompletionShape::spec) {
        f.chunk = [&](const StreamChunk& c, bool) { return sse_data(spec_chunk_json(c, id)); };
        f.tail = [](const InferenceResponse& r) { return sse_data(spec_final_chunk_json(r)); };
        f.error = [&](const Error& e) { return sse_data(spec_error_chunk_json(e, id)); };
    } else {
        const std::int64_t created = m_gw.clock().wall_ms() / 1000;
        // By value: the lambdas run after this block has ended (ASan's
        // stack-use-after-scope in the integration run found it).
        f.chunk = [&, created](const StreamChunk& c, bool) {
            return c.delta.empty() ? std::string() : sse_data(legacy_chunk_json(c.delta, id, created, c.model_id, nullptr));
        };
        f.tail = [&, created](const InferenceResponse& r) {
            json fin = legacy_chunk_json("", id, created, r.model_id, r.finish_reason.c_str());
            fin["usage"] = {{"prompt_tokens", r.token_usage.prompt_tokens},
                            {"completion_tokens", r.token_usage.completion_tokens},
                            {"total_tokens", r.token_usage.total_tokens}};
            fin["l04"] = response_facts(r);
            return sse_data(fin) + "data: [DONE]\n\n";
        };
        f.error = [](const Error& e) { return sse_data(error_to_json(e)); };
    }
    stream_sse(std::move(req), w, f);
}

void Api::embeddings(const ServerRequest& http, ResponseWriter& w) {
    auto parsed = parse_embeddings_request(http.body);
    if (!parsed) return send_error(w, parsed.error());
    EmbedRequest req = std::move(parsed->req);
    // The request id and retry rules of a completion.
    InferenceRequest probe;
    probe.request_id = req.request_id;
    if (auto e = prepare(http, probe)) return send_error(w, *e);
    req.request_id = probe.request_id;
    req.max_retries = probe.max_retries;
    const std::string id = req.request_id;
    auto r = m_gw.embed(std::move(req));
    if (!r) return send_error(w, r.error(), id);
    send_json(w, 200, embeddings_response_json(*r, parsed->base64),
              {{"x-request-id", id}, {"x-l04-model", r->model_id}, {"x-l04-provider", r->provider}});
}

// POST /v1/responses: OpenAI's Responses API (the common subset) on the
// chat pipeline; previous_response_id continues a stored conversation.
void Api::responses(const ServerRequest& http, ResponseWriter& w) {
    auto not_found = [](const std::string& what) {
        Error e(ErrorCode::invalid_request, what + " not found (responses are kept 30 days, and only with store)");
        e.http_status = 404;
        return e;
    };
    // item_reference ids name an output item of a stored response:
    // msg_<x> and fc_<x>_<i> belong to resp_<x>.
    ItemResolver resolve = [this, &not_found](const std::string& item) -> Result<json> {
        std::string hex;
        if (item.rfind("msg_", 0) == 0) hex = item.substr(4);
        else if (item.rfind("fc_", 0) == 0 && item.rfind('_') > 3) hex = item.substr(3, item.rfind('_') - 3);
        if (hex.empty() || hex.size() > 64) return fail(not_found("item '" + item.substr(0, 128) + "'"));
        L04_TRY_ASSIGN(auto t, m_gw.load_turn("resp_" + hex));
        if (!t) return fail(not_found("item '" + item.substr(0, 128) + "'"));
        L04_TRY_ASSIGN(auto content, turn_content(t->turn));
        return output_item_of_turn(content, item);
    };
    auto parsed = parse_responses_request(http.body, resolve);
    if (!parsed) return send_error(w, parsed.error());
    ResponsesRequest rq = std::move(*parsed);
    InferenceRequest req = std::move(rq.req);
    const std::string rid = new_response_id();
    if (req.request_id.empty() && http.header("x-request-id").empty()) req.request_id = rid;
    if (auto e = prepare(http, req)) return send_error(w, *e);
    // This turn as it will be stored: its own system text and messages.
    const std::string turn_system = req.system_prompt;
    const std::vector<Message> turn_messages = req.messages;
    // The chain of earlier turns, oldest first: their system texts join
    // this turn's (after the instructions, which are this request's alone),
    // their messages come before this turn's.
    std::vector<StoredTurnContent> chain;
    for (std::string cur = rq.previous_response_id; !cur.empty();) {
        if (chain.size() >= 1000) return send_error(w, Error(ErrorCode::invalid_parameter, "a conversation of more than 1000 stored turns"));
        auto t = m_gw.load_turn(cur);
        if (!t) return send_error(w, t.error());
        if (!*t)
            return send_error(w, not_found(chain.empty() ? "previous response '" + cur.substr(0, 128) + "'"
                                                         : "earlier response '" + cur.substr(0, 128) + "' of the conversation"));
        auto content = turn_content((*t)->turn);
        if (!content) return send_error(w, content.error());
        chain.push_back(std::move(*content));
        cur = (*t)->parent;
    }
    std::reverse(chain.begin(), chain.end());
    std::string system = rq.instructions;
    std::vector<Message> messages;
    for (auto& t : chain) {
        if (!t.system.empty()) system += (system.empty() ? "" : "\n\n") + t.system;
        for (auto& m : t.messages) messages.push_back(std::move(m));
    }
    if (!turn_system.empty()) system += (system.empty() ? "" : "\n\n") + turn_system;
    for (const auto& m : turn_messages) messages.push_back(m);
    req.system_prompt = std::move(system);
    req.messages = std::move(messages);
    const std::string id = req.request_id;
    const std::int64_t created = m_gw.clock().wall_ms() / 1000;
    auto status_of = [](const InferenceResponse& r) { return std::string(response_status(r)); };
    auto keep = [&](const InferenceResponse& r) {
        if (!rq.store || std::string(response_status(r)) == "failed") return;
        if (auto st = m_gw.store_turn(rid, rq.previous_response_id, r.model_id, turn_json(turn_system, turn_messages, r)); !st)
            spdlog::warn("response {} not stored: {}", rid, st.error().to_string());
    };
    if (!req.stream) {
        auto r = m_gw.execute(std::move(req));
        if (!r) return send_error(w, r.error(), id);
        keep(*r);
        return send_json(w, 200, response_object(rid, created, rq, &*r, {}, status_of(*r)), fact_headers(*r));
    }

    // The Responses event sequence: created, in_progress, then per output
    // item added → deltas → done, then completed (or incomplete).
    struct State {
        int seq = 0;
        bool created = false;
        std::optional<std::size_t> message;  // output index of the message item
        std::map<std::size_t, std::size_t> calls;  // tool call index → output index
        std::vector<ResponseItem> items;
    } st;
    auto ev = [&st](const char* type, json data) {
        data["type"] = type;
        data["sequence_number"] = st.seq++;
        return std::string("event: ") + type + "\ndata: " + to_wire(data) + "\n\n";
    };
    auto opening = [&]() -> std::string {
        if (st.created) return {};
        st.created = true;
        json o = response_object(rid, created, rq, nullptr, {}, "in_progress");
        std::string out = ev("response.created", {{"response", o}});  // sequence numbers in order: one call a statement
        out += ev("response.in_progress", {{"response", o}});
        return out;
    };
    auto open_message = [&]() -> std::string {
        if (st.message) return {};
        st.message = st.items.size();
        st.items.push_back({ResponseItem::Kind::message, 0});
        std::string out =
            ev("response.output_item.added", {{"output_index", *st.message}, {"item", message_item(rid, "", "in_progress")}});
        out += ev("response.content_part.added",
                  {{"item_id", message_item_id(rid)}, {"output_index", *st.message}, {"content_index", 0},
                   {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
        return out;
    };
    auto open_call = [&](std::size_t i, const ToolCall& c) -> std::string {
        if (st.calls.count(i)) return {};
        st.calls[i] = st.items.size();
        st.items.push_back({ResponseItem::Kind::function_call, i});
        ToolCall head = c;
        head.arguments.clear();
        return ev("response.output_item.added", {{"output_index", st.calls[i]}, {"item", call_item(rid, i, head, "in_progress")}});
    };
    SseFormat f;
    f.chunk = [&](const StreamChunk& c, bool) {
        std::string out = opening();
        if (!c.delta.empty()) {
            out += open_message();
            out += ev("response.output_text.delta", {{"item_id", message_item_id(rid)}, {"output_index", *st.message},
                                                      {"content_index", 0}, {"delta", c.delta}, {"logprobs", json::array()}});
        }
        for (std::size_t i = 0; i < c.tool_call_deltas.size(); ++i) {
            const auto& t = c.tool_call_deltas[i];
            if (t.id.empty() && t.name.empty() && t.arguments.empty()) continue;
            out += open_call(i, t);
            if (!t.arguments.empty())
                out += ev("response.function_call_arguments.delta",
                          {{"item_id", call_item_id(rid, i)}, {"output_index", st.calls[i]}, {"delta", t.arguments}});
        }
        return out;
    };
    f.tail = [&](const InferenceResponse& r) {
        std::string out = opening();
        if (!r.content.empty() || r.tool_calls.empty()) out += open_message();
        for (std::size_t i = 0; i < r.tool_calls.size(); ++i) out += open_call(i, r.tool_calls[i]);
        for (const auto& it : st.items) {
            if (it.kind == ResponseItem::Kind::message) {
                const std::size_t oi = *st.message;
                out += ev("response.output_text.done", {{"item_id", message_item_id(rid)}, {"output_index", oi},
                                                         {"content_index", 0}, {"text", r.content}, {"logprobs", json::array()}});
                out += ev("response.content_part.done",
                          {{"item_id", message_item_id(rid)}, {"output_index", oi}, {"content_index", 0},
                           {"part", {{"type", "output_text"}, {"text", r.content}, {"annotations", json::array()}}}});
                auto ref = r.metadata.find("refusal");
                out += ev("response.output_item.done",
                          {{"output_index", oi},
                           {"item", message_item(rid, r.content, "completed", ref == r.metadata.end() ? "" : ref->second)}});
            } else if (it.call < r.tool_calls.size()) {
                const std::size_t oi = st.calls[it.call];
                out += ev("response.function_call_arguments.done",
                          {{"item_id", call_item_id(rid, it.call)}, {"output_index", oi}, {"arguments", r.tool_calls[it.call].arguments}});
                out += ev("response.output_item.done",
                          {{"output_index", oi}, {"item", call_item(rid, it.call, r.tool_calls[it.call], "completed")}});
            }
        }
        const std::string status = status_of(r);
        // A provider that ended its answer with an error: response.failed,
        // never an ending that looks clean.
        const char* type = status == "incomplete" ? "response.incomplete"
                           : status == "failed"   ? "response.failed"
                                                  : "response.completed";
        out += ev(type, {{"response", response_object(rid, created, rq, &r, st.items, status)}});
        keep(r);
        return out;
    };
    f.error = [&](const Error& e) {
        json o = response_object(rid, created, rq, nullptr, {}, "failed");
        o["error"] = {{"code", code_string(e.code)}, {"message", e.message}};
        std::string out = ev("error", {{"code", code_string(e.code)}, {"message", e.message}, {"param", nullptr}});
        out += ev("response.failed", {{"response", o}});
        return out;
    };
    stream_sse(std::move(req), w, f);
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
           {"cache", cache_stats_to_json(h.cache)},
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

void Api::cache_stats(ResponseWriter& w) { send_json(w, 200, cache_stats_to_json(m_gw.cache_stats())); }

void Api::cache_clear(const ServerRequest& req, ResponseWriter& w) {
    std::optional<std::int64_t> older;
    if (auto o = query_param(req.query, "older_than"); !o.empty()) {
        older = parse_duration_ms(o);
        if (!older) return send_error(w, Error(ErrorCode::invalid_parameter, "older_than must be a duration like 24h"));
    }
    auto r = m_gw.clear_cache(query_param(req.query, "model"), older);
    if (!r) return send_error(w, r.error());
    send_json(w, 200, {{"deleted", r->answers + r->embeddings}, {"answers", r->answers}, {"embeddings", r->embeddings}});
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
    auto found = m_gw.search_cache(q, k);
    if (!found) return send_error(w, found.error());
    const auto now = m_gw.clock().wall_ms();
    const double threshold = found->threshold;
    json results = json::array();
    for (const auto& h : found->hits) {
        results.push_back({{"id", h.id},
                           {"similarity", h.similarity},
                           {"above_threshold", h.similarity + 1e-6 >= threshold},
                           {"guard", h.guard == HitConflict::none ? json(nullptr) : json(to_string(h.guard))},
                           {"prompt", h.prompt},
                           {"model", h.model_id},
                           {"target", h.target},
                           {"scope", h.scope},
                           {"hits", h.hits},
                           {"created", iso8601_utc(h.created_ms)},
                           {"expired", h.expires_ms <= now}});
    }
    send_json(w, 200,
              {{"query", q}, {"k", k}, {"embedder", found->embedder}, {"threshold", threshold},
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
    auto rep = m_gw.usage_report(since_ms, query_param(req.query, "by"), agent);
    if (!rep) return send_error(w, rep.error());
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
    json total = group_json(rep->total);
    json arr = json::array();
    for (const auto& g : rep->groups) arr.push_back(group_json(g));
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
    opts.default_timeout_ms = m_gw.config().request_timeout_ms;
    opts.clock = &m_gw.clock();
    BatchExec exec = [this](std::size_t, const InferenceRequest& req) { return m_gw.execute(InferenceRequest(req)); };
    BatchEmit emit = [&w](const BatchItem& it, const Result<InferenceResponse>& r) {
        const nlohmann::ordered_json line = r ? batch_result_json(it, *r) : batch_error_json(it, r.error(), exit_status(r.error().code));
        return w.write(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");  // false: the client is gone, start nothing more
    };
    // Its items run on threads of their own, joined at the end: on a fiber
    // (l04d) the whole run is on a helper thread while the fiber waits.
    run_blocking([&] { run_batch(items, exec, emit, opts); });
    w.end_stream();
}

}  // namespace l04
