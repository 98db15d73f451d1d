// l04d's TCP listener against a hostile web page and a hostile client,
// through the real l04d over real sockets: DNS rebinding (Host), cross-origin
// pages (Origin, text/plain bodies), the admin endpoints without a token,
// non-loopback binds without a token, header injection, log-line forging and
// request smuggling.
#include "support/daemon_env.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

using l04::test::DaemonEnv;
using nlohmann::json;
using Env = std::map<std::string, std::string>;

namespace {

struct TcpDaemon {
    DaemonEnv env;
    int pid = 0;
    int port = 0;
    explicit TcpDaemon(const Env& extra_env = Env{}) {
        for (auto& [k, v] : extra_env) env.env()[k] = v;
        std::filesystem::create_directories(env.state_dir());
        pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, env.options(),
                               env.log_path());
        port = l04::test::wait_for_l04d_port(env.log_path());
        REQUIRE(port > 0);
    }
    ~TcpDaemon() { stop(); }
    void stop() {
        if (pid <= 0) return;  // never kill(0): that is the whole process group
        ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
        pid = 0;
    }
    // Sends raw bytes, reads until the server closes (Connection: close) or 5 s.
    std::string raw(const std::string& bytes) const {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        std::string got;
        char buf[8192];
        ssize_t n;
        while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
        return got;
    }
    std::string request(const std::string& method, const std::string& path, const std::string& body,
                        const std::vector<std::string>& headers) const {
        std::string out = method + " " + path + " HTTP/1.1\r\nConnection: close\r\n";
        for (const auto& h : headers) out += h + "\r\n";
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        return raw(out);
    }
    std::string host() const { return "Host: 127.0.0.1:" + std::to_string(port); }
};

int status_of(const std::string& response) {
    if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
    return std::atoi(response.c_str() + 9);
}

std::string body_of(const std::string& response) {
    auto p = response.find("\r\n\r\n");
    return p == std::string::npos ? std::string() : response.substr(p + 4);
}

const std::string k_chat = R"({"model":"mock","messages":[{"role":"user","content":"hello"}]})";
const std::string k_json = "Content-Type: application/json";

}  // namespace

TEST_CASE("tcp: DNS rebinding - a foreign Host header is refused on every endpoint") {
    TcpDaemon d;
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {d.host(), k_json})) == 200);
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {"Host: localhost:1234", k_json})) == 200);
    for (const std::string& host : std::vector<std::string>{"Host: evil.example", "Host: evil.example:" + std::to_string(d.port),
                                                            "Host: 127.0.0.1.evil.example", "Host: 10.0.0.1"}) {
        INFO(host);
        auto r = d.request("GET", "/v1/cache/search?q=hello", "", {host});
        CHECK(status_of(r) == 403);
        CHECK(body_of(r).find("hello") == std::string::npos);  // nothing cached leaks
        CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {host, k_json})) == 403);
    }
    // A configured name is served.
    TcpDaemon named(Env{{"L04_ALLOWED_HOSTS", "l04.internal"}});
    CHECK(status_of(named.request("GET", "/health?probe=0", "", {"Host: l04.internal:8404"})) == 200);
}

TEST_CASE("tcp: cross-origin pages are refused - text/plain bodies too - allowed origins are served") {
    TcpDaemon d(Env{{"L04_ALLOWED_ORIGINS", "http://localhost:3000"}});
    auto evil = d.request("POST", "/v1/chat/completions", k_chat, {d.host(), k_json, "Origin: https://evil.example"});
    CHECK(status_of(evil) == 403);
    CHECK(json::parse(body_of(evil))["error"]["message"].get<std::string>().find("cross-origin") != std::string::npos);
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {d.host(), k_json, "Origin: null"})) == 403);
    // A "simple" request a page can send without a preflight.
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {d.host(), "Content-Type: text/plain"})) == 415);
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {d.host()})) == 415);
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat,
                              {d.host(), k_json, "Origin: http://localhost:3000"})) == 200);
    // Batches: JSON lines as application/x-ndjson (not a type a page can send
    // without a preflight), never as text/plain; x-ndjson only for /v1/batch.
    const std::string lines = "{\"prompt\":\"a\",\"model\":\"mock\"}\n";
    CHECK(status_of(d.request("POST", "/v1/batch", lines, {d.host(), "Content-Type: application/x-ndjson"})) == 200);
    CHECK(status_of(d.request("POST", "/v1/batch", lines, {d.host(), "Content-Type: text/plain"})) == 415);
    CHECK(status_of(d.request("POST", "/v1/batch", lines,
                              {d.host(), "Content-Type: application/x-ndjson", "Origin: https://evil.example"})) == 403);
    CHECK(status_of(d.request("POST", "/v1/chat/completions", k_chat, {d.host(), "Content-Type: application/x-ndjson"})) == 415);
}

TEST_CASE("tcp: cross-site GETs without an Origin (img - link - no-cors fetch) probe nothing - typed URLs are served") {
    TcpDaemon d(Env{{"L04_ALLOWED_ORIGINS", "http://localhost:3000"}});
    for (const std::string site : {"cross-site", "same-site", "Cross-Site"}) {
        INFO(site);
        for (const std::string path : {"/v1/providers?probe=1", "/health", "/v1/models", "/metrics"}) {
            auto r = d.request("GET", path, "", {d.host(), "Sec-Fetch-Site: " + site, "Sec-Fetch-Mode: no-cors"});
            CHECK(status_of(r) == 403);
            CHECK(json::parse(body_of(r))["error"]["message"].get<std::string>().find("Sec-Fetch-Site") != std::string::npos);
        }
    }
    // The user typing the URL, a same-origin page, an allowed origin, and
    // clients that are not browsers are served.
    CHECK(status_of(d.request("GET", "/health?probe=0", "", {d.host(), "Sec-Fetch-Site: none", "Sec-Fetch-Mode: navigate"})) == 200);
    CHECK(status_of(d.request("GET", "/health?probe=0", "", {d.host(), "Sec-Fetch-Site: same-origin"})) == 200);
    CHECK(status_of(d.request("GET", "/health?probe=0", "",
                              {d.host(), "Sec-Fetch-Site: cross-site", "Origin: http://localhost:3000"})) == 200);
    CHECK(status_of(d.request("GET", "/health?probe=0", "", {d.host()})) == 200);
}

TEST_CASE("tcp: admin endpoints need a token - a wrong token is refused - the daemon keeps running") {
    {
        TcpDaemon d;
        CHECK(status_of(d.request("POST", "/admin/shutdown", "", {d.host()})) == 403);
        CHECK(status_of(d.request("DELETE", "/v1/cache", "", {d.host()})) == 403);
        CHECK(status_of(d.request("POST", "/v1/cache/prune", "", {d.host()})) == 403);
        CHECK(status_of(d.request("GET", "/health?probe=0", "", {d.host()})) == 200);  // still up
        // The owner's Unix socket still has them.
        auto st = d.env.ctl({"daemon", "status"});
        CHECK(st.exit_code == 0);
    }
    TcpDaemon t(Env{{"L04_AUTH_TOKEN", "s3cret-token-value"}});
    CHECK(status_of(t.request("POST", "/v1/chat/completions", k_chat, {t.host(), k_json})) == 401);
    CHECK(status_of(t.request("POST", "/v1/chat/completions", k_chat,
                              {t.host(), k_json, "Authorization: Bearer s3cret-token-valuX"})) == 401);
    CHECK(status_of(t.request("POST", "/v1/chat/completions", k_chat,
                              {t.host(), k_json, "Authorization: Bearer s3cret-token-value-longer"})) == 401);
    CHECK(status_of(t.request("POST", "/v1/chat/completions", k_chat,
                              {t.host(), k_json, "Authorization: Bearer s3cret-token-value"})) == 200);
    CHECK(status_of(t.request("DELETE", "/v1/cache", "", {t.host(), "Authorization: Bearer s3cret-token-value"})) == 200);
}

TEST_CASE("tcp: a non-loopback listen address without a token refuses to start") {
    DaemonEnv env;
    std::filesystem::create_directories(env.state_dir());
    auto o = env.options();
    o.timeout = std::chrono::milliseconds(20000);
    auto r = l04::test::run({l04::test::bin("l04d"), "--foreground", "--listen", "0.0.0.0:0"}, o);
    CHECK(r.exit_code == 9);
    CHECK(r.err.find("without a bearer token") != std::string::npos);
}

TEST_CASE("tcp: header injection, log forging and request smuggling go nowhere") {
    TcpDaemon d;
    // CR LF in a request id (body or header) never reaches a response header.
    auto inj = d.request("POST", "/v1/chat/completions",
                         R"({"model":"mock","l04":{"request_id":"a\r\nSet-Cookie: pwned=1"},"messages":[{"role":"user","content":"x"}]})",
                         {d.host(), k_json});
    CHECK(status_of(inj) == 400);
    CHECK(inj.find("Set-Cookie") == std::string::npos);
    auto hdr = d.raw("POST /v1/chat/completions HTTP/1.1\r\n" + d.host() + "\r\n" + k_json +
                     "\r\nX-Request-Id: a\rSet-Cookie: pwned=1\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(k_chat.size()) + "\r\n\r\n" + k_chat);
    CHECK(status_of(hdr) == 400);
    CHECK(hdr.find("pwned") == std::string::npos);

    // A newline in the user (the agent) is escaped in the text log.
    auto forged = d.request("POST", "/v1/chat/completions",
                            R"({"model":"mock","user":"alice\n2026-01-01T00:00:00.000+0000 info l04d[1] FORGED","messages":[{"role":"user","content":"y"}]})",
                            {d.host(), k_json});
    CHECK(status_of(forged) == 200);
    d.stop();
    std::ifstream log(d.env.log_path());
    std::stringstream ss;
    ss << log.rdbuf();
    const std::string text = ss.str();
    CHECK(text.find("alice\\x0a2026") != std::string::npos);
    CHECK(text.find("\n2026-01-01T00:00:00.000+0000 info l04d[1] FORGED") == std::string::npos);
}

TEST_CASE("tcp: a smuggled second request is never served") {
    TcpDaemon d;
    const std::string smuggle = "POST /v1/chat/completions HTTP/1.1\r\n" + d.host() + "\r\n" + k_json +
                                "\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
                                "POST /admin/shutdown HTTP/1.1\r\n" + d.host() + "\r\nContent-Length: 0\r\n\r\n";
    auto r = d.raw(smuggle);
    CHECK(status_of(r) == 400);
    CHECK(r.find("HTTP/1.1", 10) == std::string::npos);  // one response, then closed
    for (const char* cl : {"Content-Length: 5\r\nContent-Length: 6", "Content-Length: +5", "Content-Length: 5xyz"}) {
        auto c = d.raw("POST /v1/chat/completions HTTP/1.1\r\n" + d.host() + "\r\n" + std::string(cl) + "\r\n\r\nhello");
        CHECK(status_of(c) == 400);
    }
    CHECK(status_of(d.raw("GET /health HTTP/1.1\r\n" + d.host() + "\r\nX: a\r\n folded\r\n\r\n")) == 400);
    CHECK(status_of(d.raw("GET /health HTTP/1.1\n" + d.host() + "\n\n")) == 400);
    CHECK(status_of(d.raw("GET /health HTTP/3.0\r\n" + d.host() + "\r\n\r\n")) == 505);
    CHECK(status_of(d.request("GET", "/health?probe=0", "", {d.host()})) == 200);  // still serving
}

TEST_CASE("tcp: a refused client is answered on its head - its body is never read") {
    TcpDaemon d;
    // 10 MB announced, nothing sent: the refusal must come at once, not after a body.
    auto r = d.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\n"
                   "Content-Length: 10000000\r\n\r\n");
    CHECK(status_of(r) == 403);
    auto t = d.raw("POST /v1/chat/completions HTTP/1.1\r\n" + d.host() + "\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 10000000\r\n\r\n");
    CHECK(status_of(t) == 415);
}
