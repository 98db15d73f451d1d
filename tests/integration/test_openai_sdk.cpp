// The official `openai` npm SDK (4.x) against the real l04d over TCP: a
// provider 429 with Retry-After reaches the SDK as a 429 with Retry-After,
// and l04 makes one upstream call per SDK attempt (no retry multiplication).
// The SDK is installed into the build directory on first use; without node,
// npm or the npm registry the test says so and skips.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

// The directory holding node_modules/openai, or "" (with why) when it
// cannot be had here.
std::string openai_sdk(std::string& why) {
    const std::string prefix = std::filesystem::path(L04_BIN_DIR).parent_path().string() + "/npm-openai";
    if (std::filesystem::exists(prefix + "/node_modules/openai/package.json")) return prefix;
    for (const char* tool : {"/usr/bin/node", "/usr/bin/npm"})
        if (!std::filesystem::exists(tool)) {
            why = std::string(tool) + " is not installed";
            return {};
        }
    std::filesystem::create_directories(prefix);
    l04::test::ProcOptions o;
    o.timeout = std::chrono::milliseconds(180000);
    auto r = l04::test::run({"/usr/bin/npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--silent",
                             "openai@4"},
                            o);
    if (r.exit_code != 0 || !std::filesystem::exists(prefix + "/node_modules/openai/package.json")) {
        why = "npm could not install openai@4 (registry unreachable?): " + r.err.substr(0, 300);
        return {};
    }
    return prefix;
}

}  // namespace

TEST_CASE("openai SDK: an upstream 429 comes back as a 429 with Retry-After - one upstream call per SDK attempt") {
    std::string why;
    const std::string sdk = openai_sdk(why);
    if (sdk.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    FixtureServer server;
    Route limited;
    limited.path = "/v1/chat/completions";
    limited.status = 429;
    limited.reason = "Too Many Requests";
    limited.headers = {{"Content-Type", "application/json"}, {"Retry-After", "1"}};
    limited.body = R"({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})";
    server.add(limited);
    DaemonEnv env;
    env.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
    env.env()["OPENAI_API_KEY"] = "sk-openai-test";
    std::filesystem::create_directories(env.state_dir());
    const int pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, env.options(),
                                     env.log_path());
    const int port = l04::test::wait_for_l04d_port(env.log_path());
    REQUIRE(port > 0);
    const std::string script = env.dir().file("call.js");
    std::ofstream(script) << R"JS(
const OpenAI = require(process.env.SDK + '/node_modules/openai');
const client = new OpenAI({ baseURL: process.env.BASE, apiKey: 'unused', maxRetries: 2, timeout: 20000 });
(async () => {
  const t0 = Date.now();
  try {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    console.log(JSON.stringify({ ok: true }));
  } catch (e) {
    const h = e.headers || {};
    console.log(JSON.stringify({ status: e.status, ms: Date.now() - t0, name: e.constructor.name,
                                 retry_after: h['retry-after'] || null, message: String(e.message),
                                 code: e.code || null, type: e.type || null }));
  }
})();
)JS";
    l04::test::ProcOptions o;
    o.env = {{"SDK", sdk}, {"BASE", "http://127.0.0.1:" + std::to_string(port) + "/v1"}};
    o.timeout = std::chrono::milliseconds(60000);
    auto r = l04::test::run({"/usr/bin/node", script}, o);
    INFO(r.out, r.err);
    REQUIRE(r.exit_code == 0);
    auto j = json::parse(r.out, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["status"] == 429);
    CHECK(j["name"] == "RateLimitError");  // not InternalServerError (E4701 was a 503)
    CHECK(j["retry_after"].is_string());
    CHECK(j["code"] == "E4401");
    CHECK(j["type"] == "rate_limit_exceeded");
    MESSAGE("SDK error: code=" << j["code"] << " type=" << j["type"] << " after " << j["ms"] << " ms, "
                               << server.requests().size() << " upstream call(s)");
    // Three SDK attempts; l04 adds no retries of its own.
    CHECK(server.requests().size() <= 3);
    CHECK(server.requests().size() >= 1);
    if (pid > 0) {
        ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
}
