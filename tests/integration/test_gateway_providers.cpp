// The whole pipeline (Gateway) against the local fixture server playing
// OpenAI, Anthropic, Ollama and Gemini, with the base URLs and keys given the
// way users give them (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, OLLAMA_URL,
// GEMINI_BASE_URL and the *_API_KEY variables) and the shipped models.toml:
// the issue's "done when" minus the l04ctl front end.
#include "support/fixture_server.hpp"
#include "support/test_util.hpp"

#include <l04/gateway.hpp>

#include <doctest/doctest.h>

using namespace l04;
using test::FixtureServer;
using test::Route;

namespace {

struct Rig {
    test::TempDir dir;
    FixtureServer server;
    std::map<std::string, std::string> env;
    std::unique_ptr<Gateway> gateway;

    explicit Rig(bool with_anthropic_key = true) {
        const std::string base = server.base_url();
        env = {{"OPENAI_BASE_URL", base + "/v1"}, {"OPENAI_API_KEY", "sk-openai-test"},
               {"ANTHROPIC_BASE_URL", base},      {"OLLAMA_URL", base},
               {"GEMINI_BASE_URL", base},         {"GEMINI_API_KEY", "gm-test"},
               {"XDG_STATE_HOME", dir.str()},     {"XDG_CONFIG_HOME", dir.str()}};
        if (with_anthropic_key) env["ANTHROPIC_API_KEY"] = "sk-ant-test";
        SettingsSources src;
        src.env = [this](std::string_view k) -> std::optional<std::string> {
            auto it = env.find(std::string(k));
            if (it == env.end()) return std::nullopt;
            return it->second;
        };
        src.system_config = dir.file("none-system.toml");  // absent: skipped
        // No user config: XDG_CONFIG_HOME points at an empty directory.
        src.flags = {{"cache.enabled", "false"}, {"retry.max_retries", "0"}};
        auto settings = Settings::load(src);
        REQUIRE(settings);
        auto registry = Registry::load({test::models_toml_path()});
        REQUIRE(registry);
        GatewayOptions opts;
        opts.settings = std::move(*settings);
        opts.registry = std::move(*registry);
        opts.state_dir = dir.file("state");
        auto g = Gateway::create(std::move(opts));
        REQUIRE(g);
        gateway = std::move(*g);
    }
};

InferenceRequest prompt(const std::string& model, const std::string& text) {
    InferenceRequest r;
    r.model = model;
    r.messages.push_back(Message{Role::user, text, "", "", {}});
    return r;
}

}  // namespace

TEST_CASE("gateway: each protocol - streamed and not - with exact usage and cost") {
    Rig rig;
    auto& g = *rig.gateway;

    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
    auto o = g.execute(prompt("gpt-4o-mini", "What is 4200 + 42?"));
    REQUIRE(o);
    CHECK(o->provider == "openai");
    CHECK(o->model_id == "gpt-4o-mini");
    CHECK(o->content == R"(\(4200 + 42 = 4242\).)");
    CHECK(o->token_usage == TokenUsage{16, 12, 28, false});
    CHECK(o->cost_usd == doctest::Approx((16 * 0.15 + 12 * 0.60) / 1e6));

    rig.server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_stream.headers",
                                   "wire/anthropic/messages_stream.sse"));
    std::string seen;
    auto a = g.stream(prompt("claude-haiku-4-5", "Say just hello"), [&](const StreamChunk& c) {
        seen += c.delta;
        return true;
    });
    REQUIRE(a);
    CHECK(seen == "Hello");
    CHECK(a->token_usage == TokenUsage{10, 4, 14, false});
    CHECK(a->cost_usd == doctest::Approx((10 * 1.0 + 4 * 5.0) / 1e6));

    rig.server.add(
        Route::recorded("POST", "/api/chat", "wire/ollama/chat_stream.headers", "wire/ollama/chat_stream.ndjson"));
    seen.clear();
    auto l = g.stream(prompt("llama3.2:3b", "Count from 1 to 5"), [&](const StreamChunk& c) {
        seen += c.delta;
        return true;
    });
    REQUIRE(l);
    CHECK(seen == "Okay, here we go!\n\n1, 2, 3, 4, 5\n");
    CHECK(l->token_usage == TokenUsage{16, 22, 38, false});
    CHECK(l->provider == "ollama");

    rig.server.add(Route::recorded("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                                   "wire/gemini/generate_content.headers", "wire/gemini/generate_content.json"));
    auto gm = g.execute(prompt("gemini-2.5-flash", "What is 4200 + 42?"));
    REQUIRE(gm);
    CHECK(gm->token_usage == TokenUsage{13, 102, 115, false});
    CHECK(gm->cost_usd == doctest::Approx((13 * 0.30 + 102 * 2.50) / 1e6));

    // What went over the wire used the provider's model strings.
    auto reqs = rig.server.requests();
    REQUIRE(reqs.size() == 4);
    CHECK(reqs[0].body.find(R"("model":"gpt-4o-mini")") != std::string::npos);
    CHECK(reqs[1].body.find(R"("model":"claude-haiku-4-5")") != std::string::npos);
    CHECK(reqs[2].body.find(R"("model":"llama3.2:3b")") != std::string::npos);
    CHECK(reqs[3].target == "/v1beta/models/gemini-2.5-flash:generateContent");
}

TEST_CASE("gateway: a 429 with Retry-After comes back with retry_after - health probes each provider") {
    Rig rig;
    rig.server.add(
        Route::recorded("POST", "/v1/messages", "wire/anthropic/error_429.headers", "wire/anthropic/error_429.json"));
    auto r = rig.gateway->execute(prompt("claude-haiku-4-5", "hi"));
    REQUIRE_FALSE(r);
    CHECK(r.error().retry_after == std::chrono::milliseconds(16000));

    Route models;
    models.method = "GET";
    models.path = "/v1/models";
    models.headers = {{"Content-Type", "application/json"}};
    models.body = R"({"data":[{"id":"m"}]})";
    rig.server.add(models);
    Route gmodels = models;
    gmodels.path = "/v1beta/models";
    gmodels.body = R"({"models":[{"name":"models/gemini-2.5-flash"}]})";
    rig.server.add(gmodels);
    rig.server.add(Route::recorded("GET", "/api/tags", "wire/ollama/tags.headers", "wire/ollama/tags.json"));
    auto h = rig.gateway->health(true);
    std::map<std::string, HealthState> states;
    for (const auto& p : h.providers) states[p.id] = p.state;
    CHECK(states.at("openai") == HealthState::healthy);
    CHECK(states.at("anthropic") == HealthState::healthy);
    CHECK(states.at("ollama") == HealthState::healthy);
    CHECK(states.at("gemini") == HealthState::healthy);
    CHECK(states.at("mock") == HealthState::healthy);
}

TEST_CASE("gateway: a missing API key names the variable to set") {
    Rig rig(/*with_anthropic_key=*/false);
    auto r = rig.gateway->execute(prompt("claude-haiku-4-5", "hi"));
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("ANTHROPIC_API_KEY") != std::string::npos);
    CHECK(r.error().code == ErrorCode::provider_not_configured);
    auto h = rig.gateway->health(false);
    for (const auto& p : h.providers)
        if (p.id == "anthropic") {
            CHECK(p.state == HealthState::unconfigured);
            CHECK(p.message.find("set ANTHROPIC_API_KEY") != std::string::npos);
        }
}
