// The HTTP surface beyond chat completions, through the real l04d over TCP
// against a local server that speaks each provider's protocol with
// recorded traffic: the specification's /v1/completions (its curl example
// run with the real curl), routing hints and strategy names, embeddings for
// OpenAI, Ollama and Gemini, the Responses API, any Ollama model by
// provider/NAME, and /openapi.json against what the server answers.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <l04/http/curl_transport.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

std::string fixture(const std::string& rel) {
    std::ifstream in(std::string(L04_FIXTURES_DIR) + "/" + rel);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

Route json_route(const char* method, const std::string& path, const std::string& body, int status = 200) {
    Route r;
    r.method = method;
    r.path = path;
    r.status = status;
    r.reason = status == 200 ? "OK" : "Not Found";
    r.headers = {{"Content-Type", "application/json"}};
    r.body = body;
    return r;
}

// l04d on 127.0.0.1:<free port>, every provider pointed at one fixture server.
struct Rig {
    FixtureServer server;
    DaemonEnv env;
    int pid = 0;
    int port = 0;
    Rig() {
        env.use_fixture_providers(server.base_url());
        server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
        server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_nonstream.headers",
                                   "wire/anthropic/messages_nonstream.json"));
        server.add(Route::recorded("POST", "/api/chat", "wire/ollama/chat_nonstream.headers",
                                   "wire/ollama/chat_nonstream.json"));
        server.add(Route::recorded("GET", "/api/tags", "wire/ollama/tags.headers", "wire/ollama/tags.json"));
        server.add(Route::recorded("POST", "/v1/embeddings", "wire/openai/embeddings.headers",
                                   "wire/openai/embeddings.json"));
        server.add(Route::recorded("POST", "/api/embed", "wire/ollama/embed.headers", "wire/ollama/embed.json"));
        // Gemini's batchEmbedContents: no recording exists in shared/fixtures;
        // this body follows Google's documented shape (embeddings[].values).
        server.add(json_route("POST", "/v1beta/models/gemini-embedding-001:batchEmbedContents",
                              R"({"embeddings":[{"values":[0.1,-0.2,0.3,0.4]},{"values":[0.5,0.6,-0.7,0.8]}]})"));
        // Ollama's /api/show for one installed model; any other name is 404,
        // as Ollama answers for a model it does not have.
        Route show = json_route("POST", "/api/show",
                                R"({"details":{"family":"qwen2"},"model_info":{"general.architecture":"qwen2",)"
                                R"("qwen2.context_length":32768},"capabilities":["completion","tools"]})");
        show.when_body_contains = "qwen2.5";
        server.add(show);
        server.add(json_route("POST", "/api/show", R"({"error":"model 'nope' not found"})", 404));
        std::filesystem::create_directories(env.state_dir());
        pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, env.options(),
                               env.log_path());
        port = l04::test::wait_for_l04d_port(env.log_path());
        REQUIRE(port > 0);
    }
    ~Rig() {
        if (pid > 0) ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
    l04::HttpResponse call(const std::string& method, const std::string& path, const std::string& body = {}) {
        auto t = l04::make_curl_transport();
        l04::HttpRequest req;
        req.method = method;
        req.url = url(path);
        req.body = body;
        if (!body.empty()) req.headers = {{"Content-Type", "application/json"}};
        auto r = l04::perform_buffered(*t, req);
        INFO((r ? std::string() : r.error().to_string()) << "\nl04d log:\n" << l04::test::read_file(env.log_path()));
        REQUIRE(r.has_value());
        return *r;
    }
    json post(const std::string& path, const json& body, int want_status = 200) {
        auto r = call("POST", path, body.dump());
        INFO(r.body);
        CHECK(r.head.status == want_status);
        return json::parse(r.body, nullptr, false);
    }
    // Request targets the fixture server received, in order.
    std::vector<std::string> upstream_paths() const {
        std::vector<std::string> out;
        for (const auto& q : server.requests()) out.push_back(q.method + " " + q.target);
        return out;
    }
    std::size_t count(const std::string& target) const {
        std::size_t n = 0;
        for (const auto& q : server.requests()) n += q.target == target;
        return n;
    }
};

// The data: lines of an SSE body, parsed (the [DONE] marker as a string).
std::vector<json> sse_events(const std::string& body, std::vector<std::string>* names = nullptr) {
    std::vector<json> out;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (names && line.rfind("event: ", 0) == 0) names->push_back(line.substr(7));
        if (line.rfind("data: ", 0) != 0) continue;
        const std::string d = line.substr(6);
        out.push_back(d == "[DONE]" ? json("[DONE]") : json::parse(d));
    }
    return out;
}

}  // namespace

TEST_CASE("the specification's curl example against /v1/completions - and its stream") {
    Rig rig;
    // Verbatim in shape: messages, temperature, max_tokens and a routing
    // object with a strategy of the specification's spelling.
    const std::string body =
        R"({"messages": [{"role": "user", "content": "Explain quantum computing in one sentence"}],)"
        R"( "temperature": 0.7, "max_tokens": 1000,)"
        R"( "routing": {"strategy": "cost_optimized", "preferred_providers": ["openai", "anthropic"],)"
        R"( "exclude_providers": ["ollama", "gemini"]}})";
    auto r = l04::test::run({"/usr/bin/curl", "-sS", "-X", "POST", "http://localhost:" + std::to_string(rig.port) + "/v1/completions",
                             "-H", "Content-Type: application/json", "-d", body});
    REQUIRE(r.exit_code == 0);
    INFO(r.out);
    auto j = json::parse(r.out);
    for (const char* k : {"content", "model_id", "provider", "token_usage", "latency_ms", "cached", "request_id", "metadata"})
        CHECK_MESSAGE(j.contains(k), k);
    CHECK(j["provider"] == "openai");  // the cheaper of the two preferred providers left
    CHECK(j["content"].get<std::string>().find("4242") != std::string::npos);
    CHECK(j["token_usage"]["total_tokens"].get<int>() > 0);
    CHECK(j["cached"] == false);
    CHECK(j["created"].get<std::int64_t>() > 1700000000);
    CHECK(rig.count("/api/chat") == 0);  // excluded: never reached
    CHECK(rig.count("/v1/chat/completions") == 1);

    // The stream: {content, is_final:false} chunks, then one final chunk with the usage.
    auto s = rig.call("POST", "/v1/completions/stream",
                      R"({"model":"mock","messages":[{"role":"user","content":"stream me please"}]})");
    CHECK(s.head.status == 200);
    auto evs = sse_events(s.body);
    REQUIRE(evs.size() >= 3);
    std::string text;
    for (std::size_t i = 0; i + 1 < evs.size(); ++i) {
        CHECK(evs[i]["is_final"] == false);
        text += evs[i]["content"].get<std::string>();
    }
    const json& fin = evs.back();
    CHECK(fin["is_final"] == true);
    CHECK(fin["token_usage"]["completion_tokens"].get<int>() > 0);
    CHECK(fin["model_id"] == "mock");
    CHECK(text.find("stream me please") != std::string::npos);
    // The same request again: a cache hit, with the same text.
    auto again = rig.post("/v1/completions", json::parse(R"({"model":"mock","messages":[{"role":"user","content":"stream me please"}]})"));
    CHECK(again["cached"] == true);
    CHECK(again["content"] == text);
    CHECK(again["created"].get<std::int64_t>() > 1700000000);  // this answer's time, not 0
}

TEST_CASE("routing hints: exclude_providers and preferred_providers decide who is called") {
    Rig rig;
    // cheapest: Ollama's free models first.
    auto free = rig.post("/v1/completions", json::parse(R"({"messages":[{"role":"user","content":"a"}],"routing":{"strategy":"CHEAPEST"}})"));
    CHECK(free["provider"] == "ollama");
    CHECK(rig.count("/api/chat") == 1);
    // Excluding it moves to the next; the excluded upstream sees nothing more.
    auto ex = rig.post("/v1/chat/completions",
                       json::parse(R"({"messages":[{"role":"user","content":"b"}],
                                       "routing":{"strategy":"cheapest","exclude_providers":["ollama","gemini","openai"]}})"));
    CHECK(ex["l04"]["provider"] == "anthropic");
    CHECK(rig.count("/api/chat") == 1);
    CHECK(rig.count("/v1/messages") == 1);
    // A preferred provider goes first whatever the strategy ranks.
    auto pref = rig.post("/v1/completions",
                         json::parse(R"({"messages":[{"role":"user","content":"c"}],"routing":{"strategy":"cheapest","preferred_providers":["openai"]}})"));
    CHECK(pref["provider"] == "openai");
    // A misspelt hint is refused, not ignored: nothing is called.
    const auto before = rig.server.requests().size();
    auto bad = rig.post("/v1/completions",
                        json::parse(R"({"messages":[{"role":"user","content":"d"}],"routing":{"exclude_provider":["ollama"]}})"), 400);
    CHECK(bad["error"]["code"] == "E4502");
    CHECK(bad["error"]["message"].get<std::string>().find("exclude_providers") != std::string::npos);
    auto bad2 = rig.post("/v1/chat/completions",
                         json::parse(R"({"messages":[{"role":"user","content":"d"}],"l04":{"strategyy":"cheapest"}})"), 400);
    CHECK(bad2["error"]["code"] == "E4502");
    CHECK(rig.server.requests().size() == before);

    // A named model is bound by the hints too, and provider names are checked.
    auto named = rig.post("/v1/chat/completions",
                          json::parse(R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"e"}],"routing":{"exclude_providers":["openai"]}})"), 400);
    CHECK(named["error"]["code"] == "E4502");
    auto cased = rig.post("/v1/completions",
                          json::parse(R"({"messages":[{"role":"user","content":"e"}],"routing":{"exclude_providers":["OpenAI"]}})"), 400);
    CHECK(cased["error"]["message"].get<std::string>().find("did you mean 'openai'") != std::string::npos);
    CHECK(rig.server.requests().size() == before);
    // l04ctl's flags are the same hints.
    auto cli = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--json", "--no-cache", "--exclude", "ollama",
                               "--exclude", "gemini", "--exclude", "openai", "--strategy", "cost_optimized", "hi there"},
                              rig.env.options());
    INFO(cli.err);
    REQUIRE(cli.exit_code == 0);
    CHECK(json::parse(cli.out)["provider"] == "anthropic");
}

TEST_CASE("every strategy spelling routes - fallback with no chain uses the balanced ranking") {
    Rig rig;
    const std::vector<std::pair<std::string, std::string>> names = {
        {"FASTEST", "fastest"}, {"CHEAPEST", "cheapest"}, {"BEST_QUALITY", "best_quality"}, {"BALANCED", "balanced"},
        {"CAPABILITY_MATCH", "capability_match"}, {"capability_first", "capability_match"},
        {"cost_optimized", "cheapest"}, {"latency_optimized", "fastest"}, {"quality_optimized", "best_quality"},
        {"cost", "cheapest"}, {"latency", "fastest"}, {"fallback", "fallback"}};
    for (const auto& pair : names) {
        const std::string alias = pair.first, canonical = pair.second;  // clang 14: no bindings in doctest macros
        CAPTURE(alias);
        auto d = rig.post("/v1/route", {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"routing", {{"strategy", alias}}}});
        CHECK(d["strategy"] == canonical);
        CHECK_FALSE(d["primary"].get<std::string>().empty());
    }
    auto fb = rig.post("/v1/route", json::parse(R"({"messages":[{"role":"user","content":"x"}],"l04":{"strategy":"fallback"}})"));
    auto bal = rig.post("/v1/route", json::parse(R"({"messages":[{"role":"user","content":"x"}],"l04":{"strategy":"balanced"}})"));
    CHECK(fb["primary"] == bal["primary"]);
    CHECK(fb["fallbacks"] == bal["fallbacks"]);
    CHECK(fb["note"].get<std::string>().find("balanced ranking") != std::string::npos);
    // A request through it answers (E4100 before, with no chain configured).
    auto done = rig.post("/v1/completions", json::parse(R"({"messages":[{"role":"user","content":"y"}],"routing":{"strategy":"fallback"}})"));
    CHECK_FALSE(done["content"].get<std::string>().empty());
    auto bad = rig.post("/v1/route", json::parse(R"({"messages":[{"role":"user","content":"x"}],"l04":{"strategy":"vibes"}})"), 400);
    CHECK(bad["error"]["code"] == "E4101");
    // --explain says how fallback was applied.
    auto ex = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--explain", "--strategy", "FALLBACK", "q"}, rig.env.options());
    CHECK(ex.exit_code == 0);
    CHECK(ex.out.find("balanced ranking") != std::string::npos);
}

TEST_CASE("OpenAI's legacy text completion on /v1/completions - refused fields are E4502") {
    Rig rig;
    auto j = rig.post("/v1/completions", json::parse(R"({"model":"gpt-4o-mini","prompt":"Say this is a test","max_tokens":7})"));
    CHECK(j["object"] == "text_completion");
    CHECK(j["choices"][0]["text"].get<std::string>().find("4242") != std::string::npos);
    CHECK(j["usage"]["total_tokens"].get<int>() > 0);
    // The upstream got a chat request with the prompt as the user message.
    const auto reqs = rig.server.requests();
    REQUIRE_FALSE(reqs.empty());
    auto sent = json::parse(reqs.back().body);
    CHECK(sent["messages"].back()["content"] == "Say this is a test");
    CHECK(sent["max_completion_tokens"].is_null() + sent["max_tokens"].is_null() == 1);
    auto s = rig.call("POST", "/v1/completions", R"({"model":"mock","prompt":"legacy stream","stream":true})");
    auto evs = sse_events(s.body);
    REQUIRE(evs.size() >= 3);
    CHECK(evs.back() == "[DONE]");
    CHECK(evs[0]["object"] == "text_completion");
    CHECK(evs[evs.size() - 2]["choices"][0]["finish_reason"] == "stop");
    for (const char* body : {R"({"model":"mock","prompt":"x","echo":true})", R"({"model":"mock","prompt":"x","suffix":"y"})",
                             R"({"model":"mock","prompt":"x","best_of":3})", R"({"model":"mock","prompt":"x","logprobs":2})",
                             R"({"model":"mock","prompt":["a","b"]})", R"({"model":"mock","prompt":[1,2,3]})",
                             R"({"model":"mock","prompt":"x","messages":[]})"}) {
        CAPTURE(body);
        auto e = rig.call("POST", "/v1/completions", body);
        CHECK(e.head.status == 400);
        CHECK(json::parse(e.body)["error"]["code"] == "E4502");
    }
}

TEST_CASE("embeddings: OpenAI - Ollama - Gemini - mock - an exact cache - l04ctl embed") {
    Rig rig;
    const json rec = json::parse(fixture("wire/openai/embeddings.json"));
    auto j = rig.post("/v1/embeddings", json::parse(R"({"model":"text-embedding-3-small","input":["Hello world"],"dimensions":256})"));
    CHECK(j["object"] == "list");
    REQUIRE(j["data"].size() == 1);
    CHECK(j["data"][0]["index"] == 0);
    CHECK(j["data"][0]["embedding"].size() == 256);
    CHECK(j["data"][0]["embedding"][0].get<float>() == rec["data"][0]["embedding"][0].get<float>());
    CHECK(j["data"][0]["embedding"][255].get<float>() == rec["data"][0]["embedding"][255].get<float>());
    CHECK(j["usage"]["prompt_tokens"] == rec["usage"]["prompt_tokens"]);
    CHECK(j["model"] == "text-embedding-3-small");
    // What went upstream: the recorded request's fields.
    auto sent = json::parse(rig.server.requests().back().body);
    CHECK(sent["model"] == "text-embedding-3-small");
    CHECK(sent["input"] == json::array({"Hello world"}));
    CHECK(sent["dimensions"] == 256);
    CHECK(rig.server.requests().back().headers.at("authorization") == "Bearer sk-openai-test");
    // Again: from the cache, byte for byte, base64 on request, no upstream call.
    auto again = rig.post("/v1/embeddings", json::parse(R"({"model":"text-embedding-3-small","input":"Hello world","dimensions":256,"encoding_format":"base64"})"));
    CHECK(again["l04"]["cached"] == true);
    CHECK(rig.count("/v1/embeddings") == 1);
    const std::string b64 = again["data"][0]["embedding"].get<std::string>();
    CHECK(b64.size() == (256 * 4 + 2) / 3 * 4);
    // Another size is another key: asked upstream, whose 256 floats are not
    // the 255 asked for, which is refused rather than passed on.
    rig.post("/v1/embeddings", json::parse(R"({"model":"text-embedding-3-small","input":"Hello world","dimensions":255})"), 400);

    auto o = rig.post("/v1/embeddings", json::parse(R"({"model":"nomic-embed-text","input":"Hello world"})"));
    CHECK(o["data"][0]["embedding"].size() == 768);
    CHECK(o["usage"]["prompt_tokens"] == 2);  // prompt_eval_count
    auto osent = json::parse(rig.server.requests().back().body);
    CHECK(rig.server.requests().back().target == "/api/embed");
    CHECK(osent["model"] == "nomic-embed-text");

    auto g = rig.post("/v1/embeddings", json::parse(R"({"model":"gemini-embedding-001","input":["one","two"],"dimensions":4})"));
    REQUIRE(g["data"].size() == 2);
    CHECK(g["data"][1]["embedding"][2].get<float>() == doctest::Approx(-0.7));
    CHECK(g["l04"]["usage_estimated"] == true);
    auto gsent = json::parse(rig.server.requests().back().body);
    CHECK(gsent["requests"].size() == 2);
    CHECK(gsent["requests"][0]["model"] == "models/gemini-embedding-001");
    CHECK(gsent["requests"][0]["outputDimensionality"] == 4);
    CHECK(rig.server.requests().back().headers.at("x-goog-api-key") == "gm-test");

    // Not an embedding model, a token array, an unknown field: E4502, nothing sent.
    const auto before = rig.server.requests().size();
    CHECK(rig.post("/v1/embeddings", json::parse(R"({"model":"gpt-4o-mini","input":"x"})"), 400)["error"]["code"] == "E4502");
    CHECK(rig.post("/v1/embeddings", json::parse(R"({"model":"mock-embed","input":[[1,2]]})"), 400)["error"]["code"] == "E4502");
    CHECK(rig.post("/v1/embeddings", json::parse(R"({"model":"mock-embed","input":"x","truncate":true})"), 400)["error"]["code"] == "E4502");
    CHECK(rig.post("/v1/embeddings", json::parse(R"({"model":"mock-embed","input":""})"), 400)["error"]["code"] == "E4502");
    CHECK(rig.server.requests().size() == before);

    // l04ctl embed: one JSON array per input line; the ledger has the rows.
    auto cli = l04::test::run({l04::test::bin("l04ctl"), "embed", "-m", "mock-embed", "--dimensions", "16", "--lines"},
                              rig.env.options("first text\nsecond text\n"));
    INFO(cli.err);
    REQUIRE(cli.exit_code == 0);
    std::istringstream lines(cli.out);
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
        auto v = json::parse(line);
        CHECK(v.size() == 16);
        ++n;
    }
    CHECK(n == 2);
    auto none = l04::test::run({l04::test::bin("l04ctl"), "embed", "-m", "gpt-4o-mini", "x"}, rig.env.options());
    CHECK(none.exit_code == 3);
    auto usage = l04::test::run({l04::test::bin("l04ctl"), "usage", "--json", "--by", "model"}, rig.env.options());
    CHECK(usage.out.find("text-embedding-3-small") != std::string::npos);
    CHECK(usage.out.find("mock-embed") != std::string::npos);
}

TEST_CASE("Responses API: text - previous_response_id - a streamed function call - unsupported features") {
    Rig rig;
    auto first = rig.post("/v1/responses", json::parse(R"({"model":"gpt-4o-mini","instructions":"be terse","input":"first question"})"));
    CHECK(first["object"] == "response");
    CHECK(first["status"] == "completed");
    CHECK(first["id"].get<std::string>().rfind("resp_", 0) == 0);
    REQUIRE(first["output"].size() == 1);
    CHECK(first["output"][0]["type"] == "message");
    const std::string answer = first["output"][0]["content"][0]["text"].get<std::string>();
    CHECK(answer.find("4242") != std::string::npos);
    CHECK(first["usage"]["input_tokens"].get<int>() > 0);
    auto sent1 = json::parse(rig.server.requests().back().body);
    CHECK(sent1["messages"][0]["role"] == "system");
    CHECK(sent1["messages"][0]["content"] == "be terse");

    // The continuation sends the earlier turn and its answer, then the new input.
    auto second = rig.post("/v1/responses", {{"model", "gpt-4o-mini"}, {"input", "second question"},
                                             {"previous_response_id", first["id"]}, {"l04", {{"cache", "bypass"}}}});
    CHECK(second["previous_response_id"] == first["id"]);
    auto sent2 = json::parse(rig.server.requests().back().body);
    const auto& msgs = sent2["messages"];
    REQUIRE(msgs.size() == 3);  // instructions are not carried over
    CHECK(msgs[0]["content"] == "first question");
    CHECK(msgs[1]["role"] == "assistant");
    CHECK(msgs[1]["content"] == answer);
    CHECK(msgs[2]["content"] == "second question");
    auto missing = rig.post("/v1/responses", json::parse(R"({"model":"mock","input":"x","previous_response_id":"resp_000"})"), 404);
    CHECK(missing["error"]["message"].get<std::string>().find("not found") != std::string::npos);
    // An item_reference to the first answer (what SDKs send for stored
    // earlier turns) is that answer; an unknown one is 404.
    const std::string msg_id = first["output"][0]["id"].get<std::string>();
    rig.post("/v1/responses", {{"model", "gpt-4o-mini"},
                               {"input", json::array({{{"role", "user"}, {"content", "first question"}},
                                                      {{"type", "item_reference"}, {"id", msg_id}},
                                                      {{"role", "user"}, {"content", "and then?"}}})},
                               {"l04", {{"cache", "bypass"}}}});
    auto sent_ref = json::parse(rig.server.requests().back().body);
    REQUIRE(sent_ref["messages"].size() == 3);
    CHECK(sent_ref["messages"][1]["role"] == "assistant");
    CHECK(sent_ref["messages"][1]["content"] == answer);
    rig.post("/v1/responses", json::parse(R"({"model":"mock","input":[{"type":"item_reference","id":"msg_0000"}]})"), 404);

    // A streamed function call: the recorded tool-call stream becomes the
    // Responses event sequence.
    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_tool_calls_with_usage.headers",
                                   "wire/openai/chat_stream_tool_calls_with_usage.sse"));
    auto s = rig.call("POST", "/v1/responses",
                      R"({"model":"gpt-4o-mini","input":"multiply 1231 by 2331","stream":true,
                          "tools":[{"type":"function","name":"multiply","parameters":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}}]})");
    CHECK(s.head.status == 200);
    std::vector<std::string> names;
    auto evs = sse_events(s.body, &names);
    REQUIRE(evs.size() == names.size());
    REQUIRE(names.size() >= 5);
    CHECK(names.front() == "response.created");
    CHECK(names[1] == "response.in_progress");
    CHECK(names.back() == "response.completed");
    for (std::size_t i = 0; i < evs.size(); ++i) {
        CHECK(evs[i]["type"] == names[i]);
        CHECK(evs[i]["sequence_number"] == i);
    }
    std::string args;
    bool added = false;
    for (const auto& e : evs) {
        if (e["type"] == "response.output_item.added" && e["item"]["type"] == "function_call") {
            added = true;
            CHECK(e["item"]["name"] == "multiply");
        }
        if (e["type"] == "response.function_call_arguments.delta") args += e["delta"].get<std::string>();
    }
    CHECK(added);
    CHECK(json::parse(args) == json::parse(R"({"a":1231,"b":2331})"));
    const json& done = evs.back()["response"];
    bool call_out = false;
    for (const auto& item : done["output"])
        if (item["type"] == "function_call") {
            call_out = true;
            CHECK(item["name"] == "multiply");
            CHECK(json::parse(item["arguments"].get<std::string>()) == json::parse(args));
            CHECK_FALSE(item["call_id"].get<std::string>().empty());
        }
    CHECK(call_out);
    CHECK(done["usage"]["output_tokens"].get<int>() > 0);
    auto sent3 = json::parse(rig.server.requests().back().body);
    CHECK(sent3["tools"][0]["function"]["name"] == "multiply");
    // The tool's result goes back as a function_call_output item: upstream
    // it is the assistant's tool call and the tool message.
    rig.server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
    auto back = rig.post("/v1/responses", json::parse(R"({"model":"gpt-4o-mini","input":[
        {"role":"user","content":[{"type":"input_text","text":"multiply 1231 by 2331"}]},
        {"type":"function_call","call_id":"call_1","name":"multiply","arguments":"{\"a\":1231,\"b\":2331}"},
        {"type":"function_call_output","call_id":"call_1","output":"2869461"}]})"));
    CHECK(back["status"] == "completed");
    auto sent4 = json::parse(rig.server.requests().back().body);
    REQUIRE(sent4["messages"].size() == 3);
    CHECK(sent4["messages"][1]["tool_calls"][0]["id"] == "call_1");
    CHECK(sent4["messages"][1]["tool_calls"][0]["function"]["name"] == "multiply");
    CHECK(sent4["messages"][2]["role"] == "tool");
    CHECK(sent4["messages"][2]["tool_call_id"] == "call_1");
    CHECK(sent4["messages"][2]["content"] == "2869461");

    for (const char* body :
         {R"({"model":"mock","input":"x","tools":[{"type":"web_search"}]})", R"({"model":"mock","input":"x","background":true})",
          R"({"model":"mock","input":"x","include":["file_search_call.results"]})",
          R"({"model":"mock","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]})",
          R"({"model":"mock","input":"x","truncation":"auto"})"}) {
        CAPTURE(body);
        auto e = rig.call("POST", "/v1/responses", body);
        CHECK(e.head.status == 400);
        CHECK(json::parse(e.body)["error"]["code"] == "E4502");
    }
}

TEST_CASE("any local model by provider/NAME (Ollama and OpenAI-kind servers) - models list --installed") {
    Rig rig;
    auto r = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--json", "-m", "ollama/qwen2.5", "hello qwen"},
                            rig.env.options());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    auto j = json::parse(r.out);
    CHECK(j["model_id"] == "ollama/qwen2.5");
    CHECK(j["provider"] == "ollama");
    bool asked = false;
    for (const auto& q : rig.server.requests())
        if (q.target == "/api/chat") {
            asked = true;
            CHECK(json::parse(q.body)["model"] == "qwen2.5");
        }
    CHECK(asked);
    // What /api/show said: tools, a 32k window.
    auto m = rig.call("GET", "/v1/models/ollama/qwen2.5");
    CHECK(m.head.status == 200);
    auto mj = json::parse(m.body);
    CHECK(mj["l04"]["context_window"] == 32768);
    const auto caps = mj["l04"]["capabilities"];
    CHECK(std::find(caps.begin(), caps.end(), "tool_use") != caps.end());
    CHECK(std::find(caps.begin(), caps.end(), "vision") == caps.end());
    // A name Ollama does not have: its 404, with how to get it.
    auto nope = l04::test::run({l04::test::bin("l04ctl"), "prompt", "-m", "ollama/nope", "x"}, rig.env.options());
    CHECK(nope.exit_code != 0);
    CHECK(nope.err.find("ollama pull nope") != std::string::npos);
    // A catalogue alias and a catalogue model named by provider/id.
    auto alias = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--json", "-m", "llama3", "hi"}, rig.env.options());
    CHECK(json::parse(alias.out)["model_id"] == "llama3.1:8b");
    auto byprov = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--json", "-m", "ollama/llama3.2:3b", "hi"}, rig.env.options());
    CHECK(json::parse(byprov.out)["model_id"] == "llama3.2:3b");
    // An unknown provider prefix is still an unknown model.
    auto unk = l04::test::run({l04::test::bin("l04ctl"), "prompt", "-m", "nosuch/model", "x"}, rig.env.options());
    CHECK(unk.exit_code == 3);

    // An OpenAI-kind server: a name it lists becomes a model (chat and
    // embeddings allowed); one it does not list is refused before any call.
    rig.server.add(json_route("GET", "/v1/models", R"({"object":"list","data":[{"id":"my-finetune","object":"model"}]})"));
    auto ft = l04::test::run({l04::test::bin("l04ctl"), "prompt", "--json", "--no-cache", "-m", "openai/my-finetune", "hi"},
                             rig.env.options());
    INFO(ft.err);
    REQUIRE(ft.exit_code == 0);
    CHECK(json::parse(ft.out)["model_id"] == "openai/my-finetune");
    CHECK(json::parse(rig.server.requests().back().body)["model"] == "my-finetune");
    auto fe = rig.post("/v1/embeddings", json::parse(R"({"model":"openai/my-finetune","input":"Hello world"})"));
    CHECK(fe["data"][0]["embedding"].size() == 256);
    CHECK(json::parse(rig.server.requests().back().body)["model"] == "my-finetune");
    const auto calls = rig.server.requests().size();
    auto unlisted = l04::test::run({l04::test::bin("l04ctl"), "prompt", "-m", "openai/not-there", "hi"}, rig.env.options());
    CHECK(unlisted.exit_code == 3);
    CHECK(unlisted.err.find("lists no model 'not-there'") != std::string::npos);
    CHECK(rig.server.requests().size() == calls + 1);  // the model list only

    auto inst = l04::test::run({l04::test::bin("l04ctl"), "models", "list", "--provider", "ollama", "--installed", "--json"},
                               rig.env.options());
    INFO(inst.err);
    REQUIRE(inst.exit_code == 0);
    auto arr = json::parse(inst.out);
    CHECK(arr.size() == json::parse(fixture("wire/ollama/tags.json"))["models"].size());
    bool catalogue = false, adhoc = false;
    for (const auto& e : arr) {
        if (e["name"] == "llama3.1:8b") catalogue = e["in_catalogue"] == true && e["model"] == "llama3.1:8b";
        if (e["name"] == "qwen3:8b") adhoc = e["model"] == "ollama/qwen3:8b";
    }
    CHECK(catalogue);
    CHECK(adhoc);
}

TEST_CASE("/openapi.json lists exactly what l04d answers - created times are real") {
    Rig rig;
    auto doc = json::parse(rig.call("GET", "/openapi.json").body);
    CHECK(doc["openapi"] == "3.1.0");
    std::size_t ops = 0;
    for (const auto& path_item : doc["paths"].items()) {
        const std::string path = path_item.key();
        for (const auto& method_op : path_item.value().items()) {
            const std::string method = method_op.key();
            ++ops;
            std::string concrete = path;
            for (std::size_t b; (b = concrete.find('{')) != std::string::npos;)
                concrete.replace(b, concrete.find('}', b) - b + 1, "mock");
            std::string m = method;
            for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            auto r = rig.call(m, concrete);
            CAPTURE(m);
            CAPTURE(concrete);
            CHECK(r.head.status != 404);  // answered (admin endpoints: 403 over TCP without a token)
            CHECK(r.head.status != 405);
        }
    }
    CHECK(ops >= 30);
    // Paths and methods outside the document are not served.
    for (const auto& mp : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/v1/nothing"}, {"GET", "/v1/chat/completions"}, {"PUT", "/v1/models"}, {"GET", "/v1/embeddings/x"},
             {"POST", "/openapi.json"}, {"GET", "/v1/completions/streamx"}}) {
        const std::string m = mp.first, p = mp.second;
        CAPTURE(p);
        auto r = rig.call(m, p);
        const bool documented = doc["paths"].contains(p) && doc["paths"][p].contains([&] {
            std::string lower = m;
            for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return lower;
        }());
        CHECK_FALSE(documented);
        CHECK((r.head.status == 404 || r.head.status == 405));
    }
    // No other spelling of an admin path reaches its handler over TCP
    // without the token: doubled slashes, encoded spaces, empty segments.
    for (const auto& mp : std::vector<std::pair<std::string, std::string>>{
             {"POST", "//admin/shutdown"}, {"POST", "/admin//shutdown"}, {"POST", "/admin/shutdown/"},
             {"DELETE", "//v1/cache"}, {"DELETE", "/v1/cache%20"}, {"DELETE", "/v1//cache"}, {"POST", "/v1//cache/prune"},
             {"GET", "//admin/status"}, {"POST", "/admin/shutdown%00"}}) {
        const std::string m = mp.first, p = mp.second;
        CAPTURE(p);
        auto r = rig.call(m, p);
        CHECK((r.head.status == 403 || r.head.status == 404 || r.head.status == 400));
    }
    CHECK(rig.call("GET", "/health?probe=0").head.status == 200);  // still running
    auto models = json::parse(rig.call("GET", "/v1/models").body);
    for (const auto& m : models["data"]) CHECK(m["created"].get<std::int64_t>() > 1600000000);
    auto c1 = rig.post("/v1/chat/completions", json::parse(R"({"model":"mock","messages":[{"role":"user","content":"t"}]})"));
    auto c2 = rig.post("/v1/chat/completions", json::parse(R"({"model":"mock","messages":[{"role":"user","content":"t"}]})"));
    CHECK(c2["l04"]["cached"] == true);
    CHECK(c1["created"].get<std::int64_t>() > 1700000000);
    CHECK(c2["created"].get<std::int64_t>() >= c1["created"].get<std::int64_t>());
}
