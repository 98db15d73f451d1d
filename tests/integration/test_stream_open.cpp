// l04d forwards a stream as it arrives, from its first event: the upstream's
// opening event (OpenAI's role delta, Anthropic's message_start) sends the
// response headers and the role chunk at once, before the first token.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <l04/client/client.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using l04::test::DaemonEnv;
using l04::test::Fault;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

TEST_CASE("l04d sends headers and the role event while the upstream has sent nothing else") {
    DaemonEnv env;
    // Declared after env, destroyed before it: its destructor ends the stall,
    // so the daemon's upstream request finishes and l04d stops promptly.
    FixtureServer server;
    Route r = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                              "wire/openai/chat_stream_with_usage.sse");
    r.fault = Fault::stall_mid_body;
    r.fault_at = r.body.find("\n\n") + 2;  // the first event (role, empty content), then silence
    REQUIRE(r.body.substr(0, r.fault_at).find("\"role\":\"assistant\"") != std::string::npos);
    server.add(r);
    env.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
    env.env()["OPENAI_API_KEY"] = "sk-openai-test";
    env.env()["L04_CACHE_ENABLED"] = "false";
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);

    l04::SocketClient client(env.socket_path(), std::chrono::seconds(20));
    l04::ClientRequest req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count from 1 to 5"}]})";
    std::string got;
    // Stop reading after the first event: with the upstream silent, it can
    // only be the opening one.
    auto res = client.call(req, [&](std::string_view piece) {
        got.append(piece);
        return got.find("\n\n") == std::string::npos;
    });
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->header("content-type") == "text/event-stream");
    CHECK(res->header("x-l04-model") == "gpt-4o-mini");
    const auto end = got.find("\n\n");
    REQUIRE(end != std::string::npos);
    REQUIRE(got.rfind("data: ", 0) == 0);
    const json first = json::parse(got.substr(6, end - 6));
    CHECK(first["object"] == "chat.completion.chunk");
    CHECK(first["choices"][0]["delta"]["role"] == "assistant");
    CHECK(first["choices"][0]["delta"]["content"] == "");
}

namespace {

// Threads of a process, from /proc/<pid>/status.
int thread_count(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
    return -1;
}

// Reads from fd into `got` until it holds `needle` or `bound` passes.
bool read_until(int fd, std::string& got, std::string_view needle, std::chrono::milliseconds bound) {
    const auto end = std::chrono::steady_clock::now() + bound;
    while (got.find(needle) == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

// Connections are served on fibers of a few event-loop threads: 150 streams
// open at once add no thread, and the daemon keeps answering meanwhile.
TEST_CASE("l04d holds 150 open streams on its fixed threads and answers other requests meanwhile") {
    DaemonEnv env;
    FixtureServer server;  // after env: its destructor ends the stalls first
    server.max_stall = std::chrono::seconds(120);  // beyond every bound below
    Route r = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                              "wire/openai/chat_stream_with_usage.sse");
    r.fault = Fault::stall_mid_body;
    r.fault_at = r.body.find("\n\n") + 2;
    server.add(r);
    env.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
    env.env()["OPENAI_API_KEY"] = "sk-openai-test";
    env.env()["L04_CACHE_ENABLED"] = "false";
    env.env()["L04_QUEUE_PROVIDER_CONCURRENCY"] = "200";
    env.env()["L04_RATE_LIMIT_ENABLED"] = "false";  // 150 requests in a second
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    const int pid = env.daemon_pid();
    REQUIRE(pid > 0);
    // One request first, so that whatever starts lazily has started.
    REQUIRE(env.ctl({"cache", "stats"}).exit_code == 0);
    const int threads_idle = thread_count(pid);
    REQUIRE(threads_idle > 0);

    constexpr int n = 150;
    const std::string body = R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count from 1 to 5"}]})";
    const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: l04\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::vector<int> fds;
    for (int i = 0; i < n; ++i) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        fds.push_back(fd);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", env.socket_path().c_str());
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    }
    // Every stream gets its head and role event while the upstream is silent.
    int opened = 0;
    for (int fd : fds) {
        std::string got;
        if (read_until(fd, got, "\"role\":\"assistant\"", std::chrono::seconds(30)) &&
            got.rfind("HTTP/1.1 200", 0) == 0)
            ++opened;
    }
    if (opened != n) {
        std::ifstream log(env.log_path());
        std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        MESSAGE("l04d log: " << text.substr(text.size() > 4000 ? text.size() - 4000 : 0));
    }
    CHECK(opened == n);
    CHECK(server.requests().size() == static_cast<std::size_t>(n));
    // 150 streams open: no thread per connection.
    const int threads_busy = thread_count(pid);
    CHECK(threads_busy <= threads_idle + 2);
    // And the daemon still answers.
    CHECK(env.ctl({"cache", "stats"}).exit_code == 0);
    for (int fd : fds) ::close(fd);
}
