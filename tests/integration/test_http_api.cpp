// l04d's OpenAI-compatible HTTP API on loopback TCP, with a bearer token.
#include "support/daemon_env.hpp"

#include <l04/http/curl_transport.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <thread>

using l04::test::DaemonEnv;
using nlohmann::json;

namespace {

struct TcpDaemon {
    DaemonEnv env;
    int pid = 0;
    int port = 0;
    explicit TcpDaemon(const std::string& token = {}) {
        if (!token.empty()) env.env()["L04_AUTH_TOKEN"] = token;
        auto o = env.options();
        std::filesystem::create_directories(env.state_dir());
        pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, o, env.log_path());
        port = l04::test::wait_for_l04d_port(env.log_path());
    }
    ~TcpDaemon() {
        if (pid > 0) ::kill(pid, SIGTERM);  // never kill(0) or kill(-1)
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

l04::HttpResponse http(const std::string& method, const std::string& url, const std::string& body,
                       const std::string& token = {}, const std::string& request_id = {}) {
    auto t = l04::make_curl_transport();
    l04::HttpRequest req;
    req.method = method;
    req.url = url;
    req.body = body;
    req.headers = {{"Content-Type", "application/json"}};
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
    if (!request_id.empty()) req.headers.emplace_back("x-request-id", request_id);
    auto r = l04::perform_buffered(*t, req);
    REQUIRE(r.has_value());
    return *r;
}

}  // namespace

TEST_CASE("OpenAI-compatible chat completions over TCP - streamed and not") {
    TcpDaemon d;
    REQUIRE(d.port > 0);
    const std::string body = R"({"model":"mock","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello over tcp"}]})";
    auto r = http("POST", d.url("/v1/chat/completions"), body);
    CHECK(r.head.status == 200);
    auto j = json::parse(r.body);
    CHECK(j["object"] == "chat.completion");
    CHECK(j["model"] == "mock");
    CHECK(j["choices"][0]["message"]["role"] == "assistant");
    CHECK(j["choices"][0]["finish_reason"] == "stop");
    CHECK(j["usage"]["total_tokens"].get<int>() > 0);
    CHECK(r.head.headers["x-l04-provider"] == "mock");
    CHECK(r.head.headers["x-l04-cached"] == "false");
    CHECK(!r.head.headers["x-request-id"].empty());

    std::string sbody = body;
    sbody.insert(sbody.size() - 1, R"(,"stream":true,"l04":{"cache":"bypass","options":{"reply":"one two three four five six seven eight nine"}})");
    auto s = http("POST", d.url("/v1/chat/completions"), sbody);
    CHECK(s.head.status == 200);
    CHECK(s.head.headers["content-type"] == "text/event-stream");
    std::string text;
    int events = 0;
    bool saw_usage = false;
    std::string last;
    std::size_t pos = 0;
    while ((pos = s.body.find("\n\n")) != std::string::npos) {
        std::string ev = s.body.substr(0, pos);
        s.body.erase(0, pos + 2);
        REQUIRE(ev.rfind("data: ", 0) == 0);
        last = ev.substr(6);
        if (last == "[DONE]") break;
        ++events;
        auto e = json::parse(last);
        if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content"))
            text += e["choices"][0]["delta"]["content"].get<std::string>();
        if (e.contains("usage")) {
            saw_usage = true;
            CHECK(e["l04"]["provider"] == "mock");
        }
    }
    CHECK(last == "[DONE]");
    CHECK(text == "one two three four five six seven eight nine");
    CHECK(events >= 4);
    CHECK(saw_usage);

    auto models = http("GET", d.url("/v1/models"), "");
    CHECK(json::parse(models.body)["data"].size() >= 19);
    auto err = http("POST", d.url("/v1/chat/completions"), R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
    CHECK(err.head.status == 404);
    CHECK(json::parse(err.body)["error"]["code"] == "E4001");
    auto bad = http("POST", d.url("/v1/chat/completions"), "{not json");
    CHECK(bad.head.status == 400);
    CHECK(json::parse(bad.body)["error"]["code"] == "E4500");
    auto metrics = http("GET", d.url("/metrics"), "");
    CHECK(metrics.body.find("l04_inference_requests_total{") != std::string::npos);
    CHECK(metrics.body.find("l04_gateway_info{") != std::string::npos);

    // A caller's x-request-id is kept: answered in the header, the body and the ledger.
    auto traced = http("POST", d.url("/v1/chat/completions"), body, {}, "trace-abc-123");
    CHECK(traced.head.headers["x-request-id"] == "trace-abc-123");
    CHECK(json::parse(traced.body)["l04"]["request_id"] == "trace-abc-123");
    d.env.stop_daemon();
    CHECK(l04::test::read_file(d.env.log_path()).find("request trace-abc-123 ") != std::string::npos);
}

TEST_CASE("the TCP listener requires the bearer token when one is set") {
    TcpDaemon d("tok-123");
    REQUIRE(d.port > 0);
    CHECK(http("GET", d.url("/v1/models"), "").head.status == 401);
    CHECK(http("GET", d.url("/v1/models"), "", "wrong").head.status == 401);
    CHECK(http("GET", d.url("/v1/models"), "", "tok-123").head.status == 200);
    // The Unix socket needs no token (it is 0600, owner only).
    auto r = d.env.ctl({"models", "list"});
    CHECK(r.exit_code == 0);
    auto p = d.env.ctl({"prompt", "-m", "mock", "-o", "reply=ok", "x"});
    CHECK(p.out == "ok\n");
    CHECK(l04::test::read_file(d.env.log_path()).find("tok-123") == std::string::npos);
}
