// The prompt log through the real binaries: conversations continued with -c
// and --cid (the upstream sees the earlier turns), `l04ctl logs` search, show
// and rm, log.prompts = false, and trimming to the context window.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

struct ChatRig {
    FixtureServer server;
    DaemonEnv env;
    ChatRig() {
        env.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
        env.env()["OPENAI_API_KEY"] = "sk-openai-test";
        server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
    }
    json last_messages() const {
        json last;
        for (const auto& r : server.requests())
            if (r.method == "POST") last = json::parse(r.body)["messages"];
        return last;
    }
};

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::size_t pos = 0, nl;
    while ((nl = text.find('\n', pos)) != std::string::npos) {
        out.push_back(json::parse(text.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("l04ctl prompt -c continues a conversation for three turns - the upstream gets every earlier turn") {
    ChatRig rig;
    auto& env = rig.env;
    const std::string answer = R"(\(4200 + 42 = 4242\).)";
    auto one = env.ctl({"prompt", "-m", "gpt-4o-mini", "-s", "be terse", "--json", "turn one"});
    INFO(one.err);
    REQUIRE(one.exit_code == 0);
    const std::string cid = json::parse(one.out)["conversation_id"];
    CHECK(cid.size() > 8);
    CHECK(rig.last_messages().size() == 2);  // system + user

    // No -m, no -s: the conversation's model and system prompt carry on.
    auto two = env.ctl({"prompt", "-c", "turn two"});
    INFO(two.err);
    REQUIRE(two.exit_code == 0);
    auto three = env.ctl({"prompt", "-c", "--no-stream", "turn three"});
    REQUIRE(three.exit_code == 0);
    const json m = rig.last_messages();
    REQUIRE(m.size() == 6);
    CHECK(m[0] == json({{"role", "system"}, {"content", "be terse"}}));
    CHECK(m[1]["content"] == "turn one");
    CHECK(m[2] == json({{"role", "assistant"}, {"content", answer}}));
    CHECK(m[3]["content"] == "turn two");
    CHECK(m[4]["role"] == "assistant");
    CHECK(m[5]["content"] == "turn three");

    // A new prompt without -c starts a new conversation; --cid goes back to the first.
    REQUIRE(env.ctl({"prompt", "-m", "gpt-4o-mini", "a separate question"}).exit_code == 0);
    CHECK(rig.last_messages().size() == 1);
    auto back = env.ctl({"prompt", "--cid", cid, "--json", "turn four"});
    REQUIRE(back.exit_code == 0);
    CHECK(json::parse(back.out)["conversation_id"] == cid);
    CHECK(rig.last_messages().size() == 8);

    // logs: newest last; search by words; show; rm.
    auto all = env.ctl({"logs", "--json", "-n", "100"});
    REQUIRE(all.exit_code == 0);
    auto rows = json_lines(all.out);
    REQUIRE(rows.size() == 5);
    CHECK(rows.back()["prompt"] == "turn four");
    CHECK(rows.front()["prompt"] == "turn one");
    CHECK(rows.front()["system"] == "be terse");
    CHECK(rows.front()["model"] == "gpt-4o-mini");
    CHECK(rows.front()["usage"]["prompt_tokens"] == 16);
    CHECK(rows.front()["response"] == answer);
    auto conv = json_lines(env.ctl({"logs", "--json", "--cid", cid}).out);
    CHECK(conv.size() == 4);
    auto found = json_lines(env.ctl({"logs", "--json", "-q", "separate"}).out);
    REQUIRE(found.size() == 1);
    CHECK(found[0]["prompt"] == "a separate question");
    // Words are literal: FTS operators and quotes in the query are not syntax.
    auto odd = env.ctl({"logs", "-q", "\"turn* AND (one OR NEAR"});
    CHECK(odd.exit_code == 0);
    CHECK(json_lines(env.ctl({"logs", "--json", "-q", "turn two"}).out).size() == 1);
    auto table = env.ctl({"logs"});
    CHECK(table.out.find("CONVERSATION") != std::string::npos);
    CHECK(table.out.find("turn four") != std::string::npos);

    const std::string id = std::to_string(found[0]["id"].get<long long>());
    auto shown = env.ctl({"logs", "show", id});
    CHECK(shown.exit_code == 0);
    CHECK(shown.out.find("a separate question") != std::string::npos);
    CHECK(shown.out.find(answer) != std::string::npos);
    CHECK(env.ctl({"logs", "rm", id}).exit_code == 0);
    CHECK(env.ctl({"logs", "show", id}).exit_code == 3);
    CHECK(env.ctl({"logs", "rm", id}).exit_code == 3);
    CHECK(json_lines(env.ctl({"logs", "--json", "-q", "separate"}).out).empty());  // gone from the index too
    CHECK(env.ctl({"logs", "rm", "--older-than", "0s"}).exit_code == 0);
    CHECK(json_lines(env.ctl({"logs", "--json"}).out).empty());

    // The log is the user's alone.
    const auto perms = std::filesystem::status(env.state_dir() + "/logs.db").permissions();
    CHECK((perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) == std::filesystem::perms::none);
}

TEST_CASE("l04ctl prompt -c and --cid fail clearly with nothing to continue - log.prompts = false records nothing") {
    DaemonEnv env;
    auto none = env.ctl({"prompt", "-c", "-m", "mock", "hello"});
    CHECK(none.exit_code == 3);
    CHECK(none.err.find("no earlier conversation") != std::string::npos);
    auto bad = env.ctl({"prompt", "--cid", "c-nope", "-m", "mock", "hello"});
    CHECK(bad.exit_code == 3);
    CHECK(bad.err.find("c-nope") != std::string::npos);

    env.env()["L04_LOG_PROMPTS"] = "false";
    REQUIRE(env.ctl({"prompt", "-m", "mock", "private question"}).exit_code == 0);
    env.env().erase("L04_LOG_PROMPTS");
    REQUIRE(env.ctl({"prompt", "-m", "mock", "--no-log", "another private one"}).exit_code == 0);
    CHECK(json_lines(env.ctl({"logs", "--json"}).out).empty());
    REQUIRE(env.ctl({"prompt", "-m", "mock", "a logged one"}).exit_code == 0);
    CHECK(json_lines(env.ctl({"logs", "--json"}).out).size() == 1);
}

TEST_CASE("l04ctl prompt -c leaves out the oldest turns that exceed the model's context window and says so") {
    ChatRig rig;
    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream_gpt35.headers",
                                   "wire/openai/chat_nonstream_gpt35.json"));
    auto& env = rig.env;
    // gpt-3.5-turbo: 16,385 tokens of context.
    std::string big;
    for (int i = 0; i < 10600; ++i) big += "word ";  // about 13,250 tokens
    auto one = env.ctl({"prompt", "-m", "gpt-3.5-turbo", "--no-stdin", big});
    INFO(one.err);
    REQUIRE(one.exit_code == 0);
    REQUIRE(env.ctl({"prompt", "-c", "short turn"}).exit_code == 0);
    CHECK(rig.last_messages().size() == 3);
    // Room for a 4,096-token answer no longer leaves room for the big turn.
    auto r = env.ctl({"prompt", "-c", "--max-tokens", "4096", "last turn"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("context window") != std::string::npos);
    CHECK(r.err.find("1 oldest turn") != std::string::npos);
    const json m = rig.last_messages();
    REQUIRE(m.size() == 3);
    CHECK(m[0]["content"] == "short turn");
    CHECK(m[2]["content"] == "last turn");
}
