// The real l04ctl and l04d against a local server that speaks each
// provider's protocol with recorded traffic: the issue's "done when".
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <l04/store/schema.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <thread>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

struct ProviderRig {
    FixtureServer server;
    DaemonEnv env;
    ProviderRig() {
        env.use_fixture_providers(server.base_url());
        auto json_route = [](const char* path, const char* body) {
            Route r;
            r.method = "GET";
            r.path = path;
            r.headers = {{"Content-Type", "application/json"}};
            r.body = body;
            return r;
        };
        server.add(json_route("/v1/models", R"({"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]})"));
        server.add(json_route("/v1beta/models", R"({"models":[{"name":"models/gemini-2.5-flash"}]})"));
        server.add(Route::recorded("GET", "/api/tags", "wire/ollama/tags.headers", "wire/ollama/tags.json"));
    }
};

json usage_of(const std::string& out) { return json::parse(out)["token_usage"]; }

// OpenAI's chat endpoint replaying a recording (wire/openai/<body>, with the
// headers of the same name) in pieces of chunk_size bytes, delay apart.
Route paced_chat(const std::string& body, std::size_t chunk_size, std::chrono::milliseconds delay) {
    const std::string stem = body.substr(0, body.rfind('.'));
    auto r = Route::recorded("POST", "/v1/chat/completions", "wire/openai/" + stem + ".headers", "wire/openai/" + body);
    r.chunked = true;
    r.chunk_size = chunk_size;
    r.chunk_delay = delay;
    return r;
}

// OpenAI's chat endpoint answering 429 with a Retry-After (seconds).
Route openai_429(const std::string& retry_after) {
    Route r;
    r.path = "/v1/chat/completions";
    r.status = 429;
    r.reason = "Too Many Requests";
    r.headers = {{"Content-Type", "application/json"}, {"Retry-After", retry_after}};
    r.body = R"({"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}})";
    return r;
}

}  // namespace

TEST_CASE("l04ctl prompt works against each protocol - streamed and not - with exact usage in --json") {
    ProviderRig rig;
    auto& env = rig.env;

    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
    auto o = env.ctl({"prompt", "-m", "gpt-4o-mini", "--json", "What is 4200 + 42?"});
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    CHECK(json::parse(o.out)["content"] == R"(\(4200 + 42 = 4242\).)");
    CHECK(usage_of(o.out)["prompt_tokens"] == 16);
    CHECK(usage_of(o.out)["completion_tokens"] == 12);
    CHECK(usage_of(o.out)["estimated"] == false);
    CHECK(json::parse(o.out)["cost_usd"].get<double>() == doctest::Approx((16 * 0.15 + 12 * 0.60) / 1e6));

    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                                   "wire/openai/chat_stream_with_usage.sse"));
    auto os = env.ctl({"-v", "prompt", "-m", "gpt-4o-mini", "--no-cache", "stream please"});
    INFO(os.err);
    REQUIRE(os.exit_code == 0);
    CHECK(os.out.size() > 10);
    CHECK(os.err.find("[gpt-4o-mini via openai]") != std::string::npos);

    rig.server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_stream.headers",
                                   "wire/anthropic/messages_stream.sse"));
    auto a = env.ctl({"-v", "prompt", "-m", "claude-haiku-4-5", "Say just hello"});
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
    CHECK(a.out == "Hello\n");
    CHECK(a.err.find("10+4 tokens") != std::string::npos);
    rig.server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_nonstream.headers",
                                   "wire/anthropic/messages_nonstream.json"));
    auto aj = env.ctl({"prompt", "-m", "claude-haiku-4-5", "--json", "--no-cache", "Say just hello"});
    REQUIRE(aj.exit_code == 0);
    CHECK(json::parse(aj.out)["provider"] == "anthropic");
    CHECK(usage_of(aj.out)["estimated"] == false);

    rig.server.add(
        Route::recorded("POST", "/api/chat", "wire/ollama/chat_stream.headers", "wire/ollama/chat_stream.ndjson"));
    auto l = env.ctl({"prompt", "-m", "llama3.2:3b", "Count from 1 to 5"});
    INFO(l.err);
    REQUIRE(l.exit_code == 0);
    CHECK(l.out == "Okay, here we go!\n\n1, 2, 3, 4, 5\n");

    rig.server.add(Route::recorded("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                                   "wire/gemini/generate_content.headers", "wire/gemini/generate_content.json"));
    auto g = env.ctl({"prompt", "-m", "gemini-2.5-flash", "--json", "What is 4200 + 42?"});
    INFO(g.err);
    REQUIRE(g.exit_code == 0);
    CHECK(usage_of(g.out)["prompt_tokens"] == 13);
    CHECK(usage_of(g.out)["completion_tokens"] == 102);
    rig.server.add(Route::recorded("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                                   "wire/gemini/stream_generate_content.headers",
                                   "wire/gemini/stream_generate_content.sse"));
    auto gs = env.ctl({"prompt", "-m", "gemini-2.5-flash", "--no-cache", "stream it"});
    INFO(gs.err);
    CHECK(gs.exit_code == 0);
    CHECK_FALSE(gs.out.empty());

    // The usage ledger priced every one of them, streamed ones included.
    auto u = env.ctl({"usage", "--json", "--by", "provider"});
    REQUIRE(u.exit_code == 0);
    auto uj = json::parse(u.out);
    int providers = 0;
    for (const auto& grp : uj["groups"]) {
        ++providers;
        CHECK_MESSAGE(grp["prompt_tokens"].get<int>() > 0, grp["key"]);
    }
    CHECK(providers == 4);
}

TEST_CASE("l04ctl health shows each configured provider's real status - a missing key names the variable") {
    ProviderRig rig;
    auto h = rig.env.ctl({"health", "--json"});
    CHECK(h.exit_code == 8);  // never starts a daemon
    REQUIRE(rig.env.ctl({"daemon", "start"}).exit_code == 0);
    h = rig.env.ctl({"health", "--json"});
    INFO(h.out, h.err);
    REQUIRE((h.exit_code == 0 || h.exit_code == 1));
    auto j = json::parse(h.out);
    for (const char* p : {"openai", "anthropic", "ollama", "gemini", "mock"})
        CHECK_MESSAGE(j["providers"][p]["status"] == "healthy", p);
    CHECK(j["providers"]["claude-code"]["status"] == "unconfigured");
    CHECK(j["gateway"] == "healthy");

    rig.env.stop_daemon();
    rig.env.env().erase("ANTHROPIC_API_KEY");
    auto missing = rig.env.ctl({"prompt", "-m", "claude-haiku-4-5", "hi"});
    CHECK(missing.exit_code == 9);
    CHECK(missing.err.find("E4002") != std::string::npos);
    CHECK(missing.err.find("set ANTHROPIC_API_KEY") != std::string::npos);
}

TEST_CASE("an upstream 429 with Retry-After: E4401 and exit 5 with the time left - other models of that provider too - no retry multiplication") {
    ProviderRig rig;
    rig.server.add(openai_429("30"));
    auto& env = rig.env;
    // The Retry-After is longer than the deadline: fail at once, not sleep.
    const auto t0 = std::chrono::steady_clock::now();
    auto first = env.ctl({"prompt", "-m", "gpt-4o-mini", "--timeout", "5s", "--no-cache", "hi"});
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
    INFO(first.err);
    CHECK(first.exit_code == 5);
    CHECK(first.err.find("E4401") != std::string::npos);
    CHECK(rig.server.requests().size() == 1);
    // Another model on the same provider: held out until the Retry-After,
    // as a rate limit (never E4701 "circuit open"), without an upstream call.
    auto second = env.ctl({"prompt", "-m", "gpt-4o", "--timeout", "5s", "--no-cache", "hi"});
    INFO(second.err);
    CHECK(second.exit_code == 5);
    CHECK(second.err.find("E4401") != std::string::npos);
    CHECK(second.err.find("E4701") == std::string::npos);
    CHECK(second.err.find("retry in") != std::string::npos);
    CHECK(rig.server.requests().size() == 1);
    auto limits = env.ctl({"limits", "--json"});
    CHECK(json::parse(limits.out)["circuits"]["openai"]["state"] == "closed");
}

TEST_CASE("over HTTP an SDK that retries by itself gets 429 with Retry-After at once - one upstream call per attempt") {
    ProviderRig rig;
    rig.server.add(openai_429("2"));
    std::filesystem::create_directories(rig.env.state_dir());
    const int pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"},
                                     rig.env.options(), rig.env.log_path());
    const int port = l04::test::wait_for_l04d_port(rig.env.log_path());
    REQUIRE(port > 0);
    // curl (scripts/install-deps.sh installs it) stands in for the SDK's HTTP call (its retry header included).
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
    const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
    auto post = [&](const std::string& extra) {
        return l04::test::run({"/usr/bin/curl", "-s", "-i", "--noproxy", "*", "-X", "POST", url, "-H", "Content-Type: application/json", "-H",
                               extra, "--data-binary", body, "--max-time", "20"});
    };
    const auto t0 = std::chrono::steady_clock::now();
    auto r = post("x-stainless-retry-count: 0");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1900));  // did not wait out 2 s
    INFO(r.out, r.err, r.exit_code);
    CHECK(r.out.rfind("HTTP/1.1 429", 0) == 0);
    CHECK(r.out.find("Retry-After: ") != std::string::npos);
    CHECK(r.out.find("E4401") != std::string::npos);
    CHECK(rig.server.requests().size() == 1);
    // The SDK's own retry (still held out): 429 again, no upstream call.
    auto again = post("x-stainless-retry-count: 1");
    CHECK(again.out.rfind("HTTP/1.1 429", 0) == 0);
    CHECK(rig.server.requests().size() == 1);
    auto bad = post("x-l04-retries: lots");
    CHECK(bad.out.rfind("HTTP/1.1 400", 0) == 0);
    if (pid > 0) {
        ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
}

TEST_CASE("--timeout is one deadline for the whole request - mid-stream too - E4202 and exit 7 after the text that arrived") {
    ProviderRig rig;
    auto& env = rig.env;
    // A provider that takes longer than the deadline to answer at all.
    auto t0 = std::chrono::steady_clock::now();
    auto slow = env.ctl({"prompt", "-m", "mock", "--no-cache", "-o", "latency_ms=5000", "--timeout", "1s", "hi"});
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(4000));
    INFO(slow.err);
    CHECK(slow.exit_code == 7);
    CHECK(slow.err.find("E4202") != std::string::npos);
    // A stream that is still flowing when the deadline passes.
    t0 = std::chrono::steady_clock::now();
    auto mid = env.ctl({"prompt", "-m", "mock", "--no-cache", "-o", "chunk_delay_ms=700", "-o",
                        "reply=one two three four five six seven eight nine ten", "--timeout", "1s", "go"});
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(4000));
    INFO(mid.err);
    CHECK(mid.exit_code == 7);
    CHECK(mid.err.find("E4202") != std::string::npos);
    CHECK(mid.out.rfind("one", 0) == 0);                         // what arrived was printed
    CHECK(mid.out.find("ten") == std::string::npos);            // and no more
    // The same through a real HTTP upstream streaming slowly.
    rig.server.add(paced_chat("chat_stream_with_usage.sse", 16, std::chrono::milliseconds(150)));
    t0 = std::chrono::steady_clock::now();
    auto http = env.ctl({"prompt", "-m", "gpt-4o-mini", "--no-cache", "--timeout", "1s", "stream slowly"});
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(5000));
    INFO(http.err);
    CHECK(http.exit_code == 7);
    CHECK(http.err.find("E4202") != std::string::npos);
}

TEST_CASE("an l04d started before the key was exported: the error says so - daemon status shows it - daemon restart takes this shell's key") {
    ProviderRig rig;
    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
    auto& env = rig.env;
    env.env().erase("OPENAI_API_KEY");
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    // The user exports the key now; the running daemon does not have it.
    env.env()["OPENAI_API_KEY"] = "sk-openai-test";
    auto r = env.ctl({"prompt", "-m", "gpt-4o-mini", "--no-stream", "hi"});
    INFO(r.err);
    CHECK(r.exit_code == 9);
    CHECK(r.err.find("E4002") != std::string::npos);
    CHECK(r.err.find("started with another OPENAI_API_KEY") != std::string::npos);
    CHECK(r.err.find("l04ctl daemon restart") != std::string::npos);
    CHECK(r.err.find("sk-openai-test") == std::string::npos);
    auto st = env.ctl({"daemon", "status"});
    CHECK(st.out.find("differs from this shell's in OPENAI_API_KEY") != std::string::npos);
    auto rs = env.ctl({"daemon", "restart"});
    INFO(rs.out, rs.err);
    CHECK(rs.exit_code == 0);
    CHECK(rs.out.find("the same as this shell's") != std::string::npos);
    auto ok = env.ctl({"prompt", "-m", "gpt-4o-mini", "--no-stream", "hi"});
    INFO(ok.err);
    CHECK(ok.exit_code == 0);
}

TEST_CASE("concurrent budget spenders through l04d never overshoot the daily budget together") {
    ProviderRig rig;
    // Each call costs $0.0000096 (16 prompt + 12 completion tokens of
    // gpt-4o-mini) and takes about a second, so they overlap.
    rig.server.add(paced_chat("chat_nonstream.json", 64, std::chrono::milliseconds(80)));
    auto& env = rig.env;
    const double budget = 0.00005;
    env.env()["L04_BUDGET_DAILY_USD"] = "0.00005";
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    std::vector<std::thread> spenders;
    std::atomic<int> ok{0}, refused{0}, other{0};
    std::mutex mu;
    std::string errors;
    for (int i = 0; i < 8; ++i) {
        spenders.emplace_back([&, i] {
            // max_tokens 20: each request holds about $0.0000135 while it runs.
            auto r = env.ctl({"prompt", "-m", "gpt-4o-mini", "--no-cache", "--no-stream", "--max-tokens", "20",
                              "spend " + std::to_string(i)});
            if (r.exit_code == 0) {
                ++ok;
            } else if (r.exit_code == 5 && r.err.find("E4402") != std::string::npos) {
                ++refused;
            } else {
                ++other;
                std::lock_guard lk(mu);
                errors += r.err;
            }
        });
    }
    for (auto& t : spenders) t.join();
    INFO(errors);
    CHECK(other == 0);
    CHECK(ok >= 1);
    CHECK(refused >= 1);
    env.stop_daemon();
    auto db = l04::open_state_db(env.state_dir());
    REQUIRE(db);
    auto st = (*db)->prepare("SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM usage WHERE status = 'ok'");
    REQUIRE(st);
    REQUIRE(*st->step());
    CHECK(st->col_int(1) == ok.load());
    CHECK(st->col_double(0) <= budget + 1e-12);  // 8 x $0.0000096 = $0.0000768 without holds
}
