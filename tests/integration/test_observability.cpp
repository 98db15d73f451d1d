// Metrics, health states, logs and secrets, through the real l04d.
#include "support/daemon_env.hpp"

#include <l04/client/client.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sstream>

using l04::test::DaemonEnv;
using nlohmann::json;

namespace {

std::string metrics_text(const DaemonEnv& env) {
    // l04ctl has no metrics command: ask the socket directly with the client library.
    auto r = l04::test::run({l04::test::bin("l04ctl"), "daemon", "status"}, env.options());
    REQUIRE(r.exit_code == 0);
    l04::SocketClient c(env.socket_path());
    auto m = c.call({"GET", "/metrics", "", {}});
    REQUIRE(m.has_value());
    REQUIRE(m->status == 200);
    return m->body;
}

}  // namespace

TEST_CASE("/metrics passes promtool and counters survive a daemon restart") {
    DaemonEnv env;
    REQUIRE(env.ctl({"prompt", "-m", "mock", "-o", "usage_prompt_tokens=5", "-o", "usage_completion_tokens=8", "count me"}).exit_code == 0);
    REQUIRE(env.ctl({"prompt", "-m", "mock", "-o", "usage_prompt_tokens=5", "-o", "usage_completion_tokens=8", "count me"}).exit_code == 0);
    CHECK(env.ctl({"prompt", "-m", "mock", "-o", "fail_status=400", "bad"}).exit_code == 3);
    std::string text = metrics_text(env);
    for (const char* name : {"l04_inference_requests_total", "l04_inference_latency_seconds_bucket", "l04_cache_hits_total",
                             "l04_cache_misses_total", "l04_circuit_breaker_state", "l04_token_usage_total",
                             "l04_gateway_info", "l04_gateway_overhead_seconds", "l04_time_to_first_token_seconds",
                             "l04_queue_depth", "l04_cost_usd_total"})
        CHECK_MESSAGE(text.find(name) != std::string::npos, name);
    CHECK(text.find(R"(l04_inference_requests_total{provider="mock",model="mock",status="ok"} 2)") != std::string::npos);
    CHECK(text.find(R"(l04_token_usage_total{direction="output",model="mock"} 8)") != std::string::npos);

    auto promtool = l04::test::run({"/usr/bin/promtool", "check", "metrics"}, [&] {
        l04::test::ProcOptions o;
        o.stdin_data = text;
        return o;
    }());
    INFO("promtool (Debian package prometheus, installed by scripts/install-deps.sh): ", promtool.err, promtool.out);
    CHECK(promtool.exit_code == 0);

}

TEST_CASE("counters are read back from SQLite after a restart") {
    DaemonEnv env;
    REQUIRE(env.ctl({"prompt", "-m", "mock", "again"}).exit_code == 0);
    REQUIRE(env.ctl({"prompt", "-m", "mock", "again"}).exit_code == 0);
    env.stop_daemon();
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    l04::SocketClient c(env.socket_path());
    auto m = c.call({"GET", "/metrics", "", {}});
    REQUIRE(m);
    CHECK(m->body.find(R"(l04_inference_requests_total{provider="mock",model="mock",status="ok"} 2)") != std::string::npos);
    CHECK(m->body.find("l04_cache_hits_total 1") != std::string::npos);
    CHECK(m->body.find("l04_cache_misses_total 1") != std::string::npos);
    auto u = env.ctl({"usage", "--json", "--by", "model"});
    REQUIRE(u.exit_code == 0);
    auto j = json::parse(u.out);
    CHECK(j["total"]["requests"] == 2);
    CHECK(j["total"]["cached"] == 1);
    CHECK(j["groups"][0]["key"] == "mock");
    auto csv = env.ctl({"usage", "--csv", "--by", "provider"});
    CHECK(csv.out.rfind("provider,requests,errors,cached", 0) == 0);
}

TEST_CASE("health: degraded with one provider down - unhealthy (exit 1) when none is healthy") {
    DaemonEnv env;
    env.env()["L04_MAX_RETRIES"] = "0";
    env.env()["L04_CIRCUIT_BREAKER_FAILURE_THRESHOLD"] = "2";
    env.env()["OLLAMA_URL"] = "http://127.0.0.1:1";  // nothing listens there
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    auto h1 = env.ctl({"health", "--json"});
    auto j1 = json::parse(h1.out);
    CHECK(j1["gateway"] == "degraded");
    CHECK(j1["providers"]["mock"]["status"] == "healthy");
    CHECK(j1["providers"]["ollama"]["status"] == "unhealthy");
    CHECK(h1.exit_code == 0);
    for (int i = 0; i < 2; ++i)
        CHECK(env.ctl({"prompt", "-m", "mock", "--no-cache", "-o", "fail_status=500", "x"}).exit_code == 6);
    auto h2 = env.ctl({"health", "--json"});
    auto j2 = json::parse(h2.out);
    CHECK(j2["providers"]["mock"]["circuit"] == "open");
    CHECK(j2["providers"]["mock"]["status"] == "unhealthy");
    CHECK(j2["gateway"] == "unhealthy");
    CHECK(h2.exit_code == 1);
    auto open = env.ctl({"prompt", "-m", "mock", "--no-cache", "x"});
    CHECK(open.exit_code == 6);
    CHECK(open.err.find("E4701") != std::string::npos);
    auto limits = env.ctl({"limits", "--json"});
    CHECK(json::parse(limits.out)["circuits"]["mock"]["state"] == "open");
}

TEST_CASE("secrets never reach logs - output or config show - JSON log lines parse") {
    DaemonEnv env;
    const std::string secret = "sk-l04-test-secret-4242";
    env.env()["OPENAI_API_KEY"] = secret;
    env.env()["ANTHROPIC_API_KEY"] = secret + "-anthropic";
    env.env()["OPENAI_BASE_URL"] = "http://127.0.0.1:1/v1";
    env.env()["L04_LOG_FORMAT"] = "json";
    std::string all;
    for (const auto& args : std::vector<std::vector<std::string>>{{"-v", "prompt", "-m", "gpt-4o-mini", "hello \"quoted\""},
                                                                  {"prompt", "-m", "claude-haiku-4-5", "hi"},
                                                                  {"prompt", "-m", "mock", "fine"},
                                                                  {"health", "--json"},
                                                                  {"config", "show"},
                                                                  {"config", "show", "--json"},
                                                                  {"--no-daemon", "-vv", "prompt", "-m", "gpt-4o", "x"}}) {
        auto r = env.ctl(args);
        all += r.out + r.err;
    }
    env.stop_daemon();
    const std::string log = l04::test::read_file(env.log_path());
    CHECK(log.find(" ready on ") != std::string::npos);
    CHECK(all.find(secret) == std::string::npos);
    CHECK(log.find(secret) == std::string::npos);
    std::istringstream lines(log);
    std::string line;
    int parsed = 0;
    while (std::getline(lines, line)) {
        if (line.empty()) continue;
        auto j = json::parse(line, nullptr, false);
        CHECK_MESSAGE(!j.is_discarded(), line);
        if (!j.is_discarded()) ++parsed;
    }
    CHECK(parsed >= 3);
}
