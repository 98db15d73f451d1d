// Templates, --schema and --file through the real l04ctl and l04d.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

TEST_CASE("l04ctl prompt -t fills a template from -p - defaults and stdin - and l04ctl templates lists - shows and edits") {
    DaemonEnv env;
    const std::string dir = env.config_dir() + "/templates";
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/summ.toml") << "description = \"Summaries\"\n"
                                         "system = \"Answer in a {tone} tone\"\n"
                                         "prompt = \"Summarise in {words} words:\\n\\n{input}\"\n"
                                         "model = \"mock\"\n"
                                         "[defaults]\ntone = \"dry\"\n";
    std::ofstream(dir + "/fixed.toml") << "prompt = \"Name three {thing}\"\nmodel = \"mock\"\n";

    auto r = env.ctl({"prompt", "-t", "summ", "-p", "words", "12", "--json"}, "the piped text");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // The mock repeats the last user message: the template was filled.
    const std::string content = json::parse(r.out)["content"];
    CHECK(content.find("Summarise in 12 words:  the piped text") != std::string::npos);

    // The template's system prompt (with its default) went along: it is in the log.
    auto log = env.ctl({"logs", "--json", "-n", "1"});
    CHECK(json::parse(log.out)["system"] == "Answer in a dry tone");
    auto tone = env.ctl({"prompt", "-t", "summ", "-p", "words", "3", "-p", "tone", "warm", "--no-stdin", "x"});
    REQUIRE(tone.exit_code == 0);
    CHECK(json::parse(env.ctl({"logs", "--json", "-n", "1"}).out)["system"] == "Answer in a warm tone");

    // A template without {input}: TEXT goes after it; without TEXT nothing is waited for.
    auto fixed = env.ctl({"prompt", "-t", "fixed", "-p", "thing", "birds"});
    REQUIRE(fixed.exit_code == 0);
    CHECK(fixed.out.find("Name three birds") != std::string::npos);
    auto more = env.ctl({"prompt", "-t", "fixed", "-p", "thing", "birds", "--no-stdin", "that sing"});
    CHECK(more.out.find("Name three birds  that sing") != std::string::npos);

    CHECK(env.ctl({"prompt", "-t", "summ", "--no-stdin", "x"}).exit_code == 3);            // {words} has no value
    CHECK(env.ctl({"prompt", "-t", "summ", "-p", "wrds", "1", "x"}).exit_code == 3);       // no such parameter
    CHECK(env.ctl({"prompt", "-t", "nope", "x"}).exit_code == 3);
    CHECK(env.ctl({"prompt", "-t", "../../etc/passwd", "x"}).exit_code == 3);
    CHECK(env.ctl({"prompt", "-m", "mock", "-p", "a", "b", "x"}).exit_code == 3);         // -p needs -t

    auto list = env.ctl({"templates", "list"});
    CHECK(list.exit_code == 0);
    CHECK(list.out.find("summ") != std::string::npos);
    CHECK(list.out.find("Summaries") != std::string::npos);
    CHECK(list.out.find("tone words input") != std::string::npos);
    auto show = env.ctl({"templates", "show", "summ"});
    CHECK(show.out.find("Summarise in {words} words") != std::string::npos);
    env.env()["EDITOR"] = "true";
    auto edit = env.ctl({"templates", "edit", "fresh"});
    INFO(edit.err);
    CHECK(edit.exit_code == 0);
    CHECK(std::filesystem::exists(dir + "/fresh.toml"));
    CHECK(env.ctl({"templates", "show", "fresh"}).exit_code == 0);
    env.env()["EDITOR"] = "false";
    CHECK(env.ctl({"templates", "edit", "fresh"}).exit_code == 1);
}

TEST_CASE("l04ctl prompt --schema sends a json_schema response_format and checks the answer") {
    DaemonEnv env;
    auto ok = env.ctl({"prompt", "-m", "mock", "--schema", "name str, age int", "-o", R"(reply={"name":"Ada","age":36})", "who"});
    INFO(ok.err);
    REQUIRE(ok.exit_code == 0);
    CHECK(json::parse(ok.out) == json({{"name", "Ada"}, {"age", 36}}));
    auto wrong = env.ctl({"prompt", "-m", "mock", "--schema", "name str, age int", "-o", R"(reply={"name":"Ada"})", "who"});
    CHECK(wrong.exit_code == 6);
    CHECK(wrong.out.empty());  // nothing unchecked reaches stdout
    CHECK(wrong.err.find("E4600") != std::string::npos);
    CHECK(wrong.err.find("'age' is missing") != std::string::npos);
    auto text = env.ctl({"prompt", "-m", "mock", "--schema", "name str", "--json", "-o", "reply=sorry, no JSON", "who"});
    CHECK(text.exit_code == 6);
    const json j = json::parse(text.out);
    CHECK(j["content"] == "sorry, no JSON");  // kept with --json
    CHECK(j["schema_error"] == "the answer is not JSON");
    CHECK(env.ctl({"prompt", "-m", "mock", "--schema", "age years", "who"}).exit_code == 3);
    const std::string file = env.dir().file("s.json");
    std::ofstream(file) << R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})";
    auto from_file = env.ctl({"prompt", "-m", "mock", "--schema", file, "-o", R"(reply={"n":1})", "count"});
    CHECK(from_file.exit_code == 0);

    // What the provider is sent.
    FixtureServer server;
    server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                               "wire/openai/chat_nonstream.json"));
    DaemonEnv oenv;
    oenv.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
    oenv.env()["OPENAI_API_KEY"] = "sk-test";
    auto sent = oenv.ctl({"prompt", "-m", "gpt-4o-mini", "--schema", "answer int", "What is 4200 + 42?"});
    CHECK(sent.exit_code == 6);  // the recorded answer is prose
    REQUIRE(server.requests().size() >= 1);
    const json body = json::parse(server.requests().back().body);
    CHECK(body["response_format"]["type"] == "json_schema");
    CHECK(body["response_format"]["json_schema"]["strict"] == true);
    CHECK(body["response_format"]["json_schema"]["schema"]["properties"]["answer"]["type"] == "integer");
    CHECK_FALSE(body.value("stream", false));  // checked whole, not streamed
}

TEST_CASE("l04ctl prompt --file puts named text files before the prompt and refuses binary ones") {
    DaemonEnv env;
    std::ofstream(env.dir().file("notes.txt")) << "line one\nline two\n";
    auto r = env.ctl({"prompt", "-m", "mock", "--json", "-f", env.dir().file("notes.txt"), "summarise"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto log = json::parse(env.ctl({"logs", "--json", "-n", "1"}).out);
    const std::string p = log["prompt"];
    CHECK(p.rfind("--- " + env.dir().file("notes.txt") + " ---\nline one\nline two\n--- end of ", 0) == 0);
    CHECK(p.substr(p.size() - 11) == "\n\nsummarise");
    std::ofstream(env.dir().file("bin.dat"), std::ios::binary) << std::string("a\0b", 3);
    CHECK(env.ctl({"prompt", "-m", "mock", "-f", env.dir().file("bin.dat"), "x"}).exit_code == 3);
    CHECK(env.ctl({"prompt", "-m", "mock", "-f", env.dir().file("missing.txt"), "x"}).exit_code == 3);
    // Latin-1 bytes would be replaced on the way: refused, not altered.
    std::ofstream(env.dir().file("latin1.txt"), std::ios::binary) << "caf\xe9\n";
    auto latin = env.ctl({"prompt", "-m", "mock", "-f", env.dir().file("latin1.txt"), "x"});
    CHECK(latin.exit_code == 3);
    CHECK(latin.err.find("not UTF-8") != std::string::npos);
    std::ofstream(env.dir().file("utf8.txt"), std::ios::binary) << "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\n";
    CHECK(env.ctl({"prompt", "-m", "mock", "-f", env.dir().file("utf8.txt"), "x"}).exit_code == 0);
}
