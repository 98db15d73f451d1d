#pragma once
// l04d's HTTP API over the gateway, the same on the Unix socket and on TCP:
//   POST   /v1/chat/completions   OpenAI-compatible; "stream": true → SSE ending in [DONE]
//   POST   /v1/completions        the specification's shape, or OpenAI's legacy
//                                 text completion when the body has `prompt`
//   POST   /v1/completions/stream the same, always streamed (SSE)
//   POST   /v1/embeddings         OpenAI-compatible embeddings (float or base64)
//   POST   /v1/responses          OpenAI's Responses API (common subset; SSE events)
//   GET    /v1/models             the registry in OpenAI's list shape (+ l04 fields)
//   GET    /v1/models/{id}
//   GET    /health                the health report (?probe=0 skips provider probes)
//   GET    /metrics               Prometheus text format
//   GET    /v1/cache/stats        cache statistics
//   DELETE /v1/cache              clear (?model=M&older_than=DUR)
//   POST   /v1/cache/prune
//   GET    /v1/providers, GET /v1/providers/{id}/health
//   GET    /v1/usage?since=DUR    ledger totals
//   GET    /v1/limits             rate-limit buckets
//   POST   /v1/route              routing decision without calling anyone
//   GET    /openapi.json          every endpoint (from the same table the dispatcher uses)
//   GET    /admin/status          pid, version, uptime, paths
//   POST   /admin/shutdown        graceful stop
// On the TCP listener (a web page in the user's browser can reach it):
// the Host header must name loopback, the bound address or an allowed name
// (DNS rebinding), an Origin header must be allowed (cross-origin pages),
// a body must be application/json (no "simple" text/plain posts), the
// bearer token is required when set (compared in constant time), and the
// admin routes (ApiRoute::admin: /admin/*, DELETE /v1/cache, POST
// /v1/cache/prune) need a token. Paths are matched byte for byte, so no
// other spelling of an admin path reaches its handler. The Unix socket
// (0600, peer checked by l04d) needs none of this.
#include <l04/gateway.hpp>
#include <l04/server/http_server.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <vector>
#include <string>

namespace l04 {

struct ApiOptions {
    std::string auth_token;                // required on TCP when non-empty
    std::vector<std::string> allowed_hosts;    // Host names accepted on TCP beyond loopback and `listen`
    std::vector<std::string> allowed_origins;  // browser Origins accepted on TCP (none by default)
    std::function<void()> on_shutdown;     // POST /admin/shutdown
    std::string socket_path;               // reported by /admin/status
    std::string listen;                    // reported by /admin/status
    std::int64_t started_ms = 0;
    bool in_process = false;               // l04ctl --no-daemon
    // This daemon's state directory, lexically normalised: a Unix-socket
    // client that says it uses another one (X-L04-State-Dir) is refused.
    std::string state_dir;
};

class Api;

// One endpoint: what the dispatcher matches and /openapi.json documents.
struct ApiRoute {
    enum Body : std::uint8_t { no_body = 0, json_body = 1, ndjson_body = 2 };
    const char* method;
    const char* path;      // "{name}" segments are parameters
    const char* summary;
    const char* tag;
    Body body;
    const char* produces;  // comma-separated content types
    bool rest;             // the last parameter takes the rest of the path
    std::function<void(Api&, const ServerRequest&, ResponseWriter&)> handler;
    bool admin = false;    // over TCP only with the bearer token
};
const std::vector<ApiRoute>& api_routes();
bool route_matches(const ApiRoute& r, const std::string& path);
// The OpenAPI 3.1 document of api_routes() (GET /openapi.json).
nlohmann::json openapi_document();

class Api {
public:
    Api(Gateway& gw, ApiOptions opts) : m_gw(gw), m_opts(std::move(opts)) {}
    void handle(const ServerRequest& req, ResponseWriter& w);
    // ServerOptions::before_body: refuses a TCP request on its head alone.
    bool admit(const ServerRequest& req, ResponseWriter& w);

private:
    friend const std::vector<ApiRoute>& api_routes();
    // Why a TCP request is refused (Host, Origin, Content-Type, token), or nullopt.
    std::optional<Error> tcp_refusal(const ServerRequest& req) const;
    struct SseFormat {
        std::function<std::string(const StreamChunk&, bool first)> chunk;  // "" writes nothing
        std::function<std::string(const InferenceResponse&)> tail;         // the clean ending
        std::function<std::string(const Error&)> error;                    // a failure after the headers
    };
    std::optional<Error> prepare(const ServerRequest& http, InferenceRequest& req) const;
    void stream_sse(InferenceRequest req, ResponseWriter& w, const SseFormat& f);
    void chat(const ServerRequest& req, ResponseWriter& w);
    void completions(const ServerRequest& req, ResponseWriter& w, bool force_stream);
    void embeddings(const ServerRequest& req, ResponseWriter& w);
    void responses(const ServerRequest& req, ResponseWriter& w);
    void health(const ServerRequest& req, ResponseWriter& w);
    void models(const ServerRequest& req, ResponseWriter& w);
    void cache_stats(ResponseWriter& w);
    void cache_clear(const ServerRequest& req, ResponseWriter& w);
    // GET /v1/cache/search?q=TEXT&k=N: the N (default 5, at most 100)
    // entries nearest to TEXT in any scope, for tuning the threshold.
    void cache_search(const ServerRequest& req, ResponseWriter& w);
    void providers(const ServerRequest& req, ResponseWriter& w);
    void usage(const ServerRequest& req, ResponseWriter& w);
    void route(const ServerRequest& req, ResponseWriter& w);
    void metrics(ResponseWriter& w);
    void cache_prune(ResponseWriter& w);
    void limits(ResponseWriter& w);
    void openapi(ResponseWriter& w);
    void admin_status(ResponseWriter& w);
    void admin_shutdown(ResponseWriter& w);
    void batch(const ServerRequest& req, ResponseWriter& w);
    Gateway& m_gw;
    ApiOptions m_opts;
};

// Value of `name` in a query string ("a=1&b=2"), URL-decoded.
std::string query_param(const std::string& query, const std::string& name);

}  // namespace l04
