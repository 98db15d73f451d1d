// l04d forwards a stream as it arrives, from its first event: the upstream's
// opening event (OpenAI's role delta, Anthropic's message_start) sends the
// response headers and the role chunk at once, before the first token.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <l04/client/client.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

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
