// Request fidelity through the real binaries: images and mapped fields reach
// a local fixture upstream (which logs what it received) exactly as sent,
// refused fields never leave l04d, another image is never a cache hit, and
// l04ctl's -a and typed -o options.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <l04/http/curl_transport.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

// A real 1x1 PNG, as base64 and as bytes.
constexpr const char* k_png_b64 =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const unsigned char k_png[] = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
                               0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
                               0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
                               0xda, 0x63, 0x64, 0xf8, 0xcf, 0x50, 0x0f, 0x00, 0x03, 0x86, 0x01, 0x80, 0x5a, 0x34,
                               0x7d, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

// l04d on loopback TCP with OpenAI and Anthropic pointed at a fixture server.
struct Rig {
    FixtureServer server;
    DaemonEnv env;
    int pid = 0;
    int port = 0;
    Rig() {
        const std::string base = server.base_url();
        env.env()["OPENAI_BASE_URL"] = base + "/v1";
        env.env()["OPENAI_API_KEY"] = "sk-openai-test";
        env.env()["ANTHROPIC_BASE_URL"] = base;
        env.env()["ANTHROPIC_API_KEY"] = "sk-ant-test";
        server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                   "wire/openai/chat_nonstream.json"));
        server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_nonstream.headers",
                                   "wire/anthropic/messages_nonstream.json"));
        std::filesystem::create_directories(env.state_dir());
        pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, env.options(),
                               env.log_path());
        port = l04::test::wait_for_l04d_port(env.log_path());
        REQUIRE(port > 0);
    }
    ~Rig() {
        if (pid > 0) ::kill(pid, SIGTERM);  // never kill(0) or kill(-1)
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
    l04::HttpResponse post(const std::string& body) const {
        auto t = l04::make_curl_transport();
        l04::HttpRequest req;
        req.method = "POST";
        req.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
        req.body = body;
        req.headers = {{"Content-Type", "application/json"}};
        auto r = l04::perform_buffered(*t, req);
        REQUIRE(r.has_value());
        return *r;
    }
    // Bodies the upstream received on `path`, in order.
    std::vector<json> received(const std::string& path) const {
        std::vector<json> out;
        for (const auto& r : server.requests())
            if (r.target == path) out.push_back(json::parse(r.body));
        return out;
    }
};

std::string image_request(const std::string& model, const std::string& b64, const std::string& extra = "") {
    return R"({"model":")" + model + R"(",)" + extra +
           R"("messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},)"
           R"({"type":"image_url","image_url":{"url":"data:image/png;base64,)" +
           b64 + R"("}}]}]})";
}

}  // namespace

TEST_CASE("images reach OpenAI and Anthropic byte for byte - another image is never a cache hit") {
    Rig rig;
    auto o = rig.post(image_request("gpt-4o-mini", k_png_b64));
    INFO(o.body);
    REQUIRE(o.head.status == 200);
    auto sent = rig.received("/v1/chat/completions");
    REQUIRE(sent.size() == 1);
    CHECK(sent[0]["messages"][0]["content"][0]["text"] == "What is in this image?");
    CHECK(sent[0]["messages"][0]["content"][1]["image_url"]["url"] == std::string("data:image/png;base64,") + k_png_b64);

    // The same text with another image: asked again upstream, not served from the cache.
    const std::string other = std::string(k_png_b64).substr(0, 40) + "AAAAAAAAAAAAAAAAAAAAAAAA";
    auto o2 = rig.post(image_request("gpt-4o-mini", other));
    REQUIRE(o2.head.status == 200);
    CHECK(o2.head.headers["x-l04-cache-hit"] == "none");
    CHECK(rig.received("/v1/chat/completions").size() == 2);
    // The same image again: an exact hit.
    auto o3 = rig.post(image_request("gpt-4o-mini", k_png_b64));
    CHECK(o3.head.headers["x-l04-cache-hit"] == "exact");
    CHECK(rig.received("/v1/chat/completions").size() == 2);

    auto a = rig.post(image_request("claude-haiku-4-5", k_png_b64));
    INFO(a.body);
    REQUIRE(a.head.status == 200);
    auto msgs = rig.received("/v1/messages");
    REQUIRE(msgs.size() == 1);
    const json& block = msgs[0]["messages"][0]["content"][1];
    CHECK(block["type"] == "image");
    CHECK(block["source"] == json{{"type", "base64"}, {"media_type", "image/png"}, {"data", k_png_b64}});

    // A model without vision refuses the image; nothing is sent.
    auto l = rig.post(image_request("llama3.2:3b", k_png_b64));
    CHECK(l.head.status == 400);
    CHECK(json::parse(l.body)["error"]["code"] == "E4502");
    CHECK(json::parse(l.body)["error"]["message"].get<std::string>().find("cannot read images") != std::string::npos);
}

TEST_CASE("refused fields never leave l04d - forwarded ones arrive as sent") {
    Rig rig;
    // Anthropic has no seed, no n > 1, no logprobs: 400 E4502 naming the field, upstream untouched.
    for (const char* field : {R"("seed":42,)", R"("n":2,)", R"("logprobs":true,)", R"("temperature":1.5,)",
                                     R"("top_k":40,)", R"("response_format":{"type":"json_object"},)"}) {
        INFO(field);
        auto r = rig.post(std::string(R"({"model":"claude-haiku-4-5",)") + field + R"("messages":[{"role":"user","content":"hi"}]})");
        CHECK(r.head.status == 400);
        auto e = json::parse(r.body)["error"];
        CHECK(e["code"] == "E4502");
        CHECK(e["message"].get<std::string>().find("anthropic") != std::string::npos);
    }
    CHECK(rig.received("/v1/messages").empty());

    // OpenAI-kind: every field forwarded, unknown ones verbatim, -o options typed.
    auto r = rig.post(R"({"model":"gpt-4o-mini","seed":42,"n":1,"presence_penalty":0.5,"frequency_penalty":0.25,)"
                      R"("logit_bias":{"50256":-100},"user":"u-1","top_k":40,"min_p":0.05,"parallel_tool_calls":false,)"
                      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true}}],)"
                      R"("l04":{"options":{"repetition_penalty":1.1}},"messages":[{"role":"user","content":"hi"}]})");
    INFO(r.body);
    REQUIRE(r.head.status == 200);
    auto sent = rig.received("/v1/chat/completions");
    REQUIRE(sent.size() == 1);
    const json& b = sent[0];
    CHECK(b["seed"] == 42);
    CHECK(b["n"] == 1);
    CHECK(b["presence_penalty"] == 0.5);
    CHECK(b["frequency_penalty"] == 0.25);
    CHECK(b["logit_bias"]["50256"] == -100);
    CHECK(b["user"] == "u-1");
    CHECK(b["top_k"] == 40);
    CHECK(b["min_p"] == 0.05);
    CHECK(b["parallel_tool_calls"] == false);
    CHECK(b["tools"][0]["function"]["strict"] == true);
    CHECK(b["repetition_penalty"] == 1.1);
    CHECK_FALSE(b.contains("l04"));

    // A request that changes only seed is another question: the cache does not answer it.
    auto r2 = rig.post(R"({"model":"gpt-4o-mini","seed":43,"temperature":0,"messages":[{"role":"user","content":"hi"}]})");
    CHECK(r2.head.headers["x-l04-cache-hit"] == "none");
    auto r3 = rig.post(R"({"model":"gpt-4o-mini","seed":44,"temperature":0,"messages":[{"role":"user","content":"hi"}]})");
    CHECK(r3.head.headers["x-l04-cache-hit"] == "none");
    CHECK(rig.received("/v1/chat/completions").size() == 3);

    // Wrong types are refused, not ignored.
    auto bad = rig.post(R"({"model":5,"messages":[{"role":"user","content":"hi"}]})");
    CHECK(bad.head.status == 400);
    CHECK(json::parse(bad.body)["error"]["code"] == "E4502");
}

TEST_CASE("OpenAI n > 1 and logprobs come back whole through l04d") {
    Rig rig;
    Route two;
    two.path = "/v1/chat/completions";
    two.headers = {{"Content-Type", "application/json"}};
    two.body = R"({"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[)"
               R"({"index":0,"message":{"role":"assistant","content":"red"},"logprobs":{"content":[{"token":"red","logprob":-0.5,"top_logprobs":[]}]},"finish_reason":"stop"},)"
               R"({"index":1,"message":{"role":"assistant","content":"blue"},"logprobs":{"content":[{"token":"blue","logprob":-0.9,"top_logprobs":[]}]},"finish_reason":"stop"}],)"
               R"("usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}})";
    rig.server.add(two);
    auto r = rig.post(R"({"model":"gpt-4o-mini","n":2,"logprobs":true,"messages":[{"role":"user","content":"a colour"}]})");
    INFO(r.body);
    REQUIRE(r.head.status == 200);
    auto j = json::parse(r.body);
    REQUIRE(j["choices"].size() == 2);
    CHECK(j["choices"][0]["message"]["content"] == "red");
    CHECK(j["choices"][1]["message"]["content"] == "blue");
    CHECK(j["choices"][1]["logprobs"]["content"][0]["token"] == "blue");
    CHECK(j["usage"]["completion_tokens"] == 2);
    // Not cached by default: asked again upstream.
    auto again = rig.post(R"({"model":"gpt-4o-mini","n":2,"logprobs":true,"messages":[{"role":"user","content":"a colour"}]})");
    CHECK(again.head.headers["x-l04-cache-hit"] == "none");
    CHECK(rig.received("/v1/chat/completions").size() == 2);
    // n > 1 with stream is refused, not quietly reduced to one choice.
    auto s = rig.post(R"({"model":"gpt-4o-mini","n":2,"stream":true,"messages":[{"role":"user","content":"a colour"}]})");
    CHECK(s.head.status == 400);
    CHECK(json::parse(s.body)["error"]["code"] == "E4502");
}

TEST_CASE("l04ctl -a attaches an image file - typed -o - refused options exit 3") {
    DaemonEnv env;
    const std::string png = env.dir().file("dot.png");
    {
        std::ofstream f(png, std::ios::binary);
        f.write(reinterpret_cast<const char*>(k_png), sizeof k_png);
    }
    auto o = env.ctl({"prompt", "-m", "mock", "--json", "-a", png, "what is this?"});
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    auto j = json::parse(o.out);
    CHECK(j["sent"]["parts"] == 2);
    CHECK(j["sent"]["images"] == 1);
    CHECK(j["content"].get<std::string>().find("(with 1 image)") != std::string::npos);
    // Same text without the image: not the cached answer.
    auto plain = env.ctl({"prompt", "-m", "mock", "--json", "what is this?"});
    REQUIRE(plain.exit_code == 0);
    CHECK(json::parse(plain.out)["cache_hit"] == "none");
    // The same image again: exact hit.
    auto again = env.ctl({"prompt", "-m", "mock", "--json", "-a", png, "what is this?"});
    REQUIRE(again.exit_code == 0);
    CHECK(json::parse(again.out)["cache_hit"] == "exact");
    // "sent" describes the new turn, not the conversation's first one.
    auto follow = env.ctl({"prompt", "-m", "mock", "--json", "-c", "and the colour?"});
    INFO(follow.err);
    REQUIRE(follow.exit_code == 0);
    auto fj = json::parse(follow.out);
    CHECK(fj["sent"]["parts"] == 1);
    CHECK(fj["sent"]["images"] == 0);

    // Not an image: refused before anything is sent.
    const std::string txt = env.dir().file("notes.txt");
    std::ofstream(txt) << "just text";
    auto bad = env.ctl({"prompt", "-m", "mock", "-a", txt, "what is this?"});
    CHECK(bad.exit_code == 3);
    CHECK(bad.err.find("not a PNG, JPEG, GIF or WebP") != std::string::npos);
    auto missing = env.ctl({"prompt", "-m", "mock", "-a", env.dir().file("nope.png"), "x"});
    CHECK(missing.exit_code == 3);
    // A model without vision.
    auto nv = env.ctl({"prompt", "-m", "llama3.2:3b", "-a", png, "what is this?"});
    CHECK(nv.exit_code == 3);
    CHECK(nv.err.find("cannot read images") != std::string::npos);
    // An option the mock does not know: refused with the list of known ones.
    auto opt = env.ctl({"prompt", "-m", "mock", "-o", "num_ctx=4096", "hi"});
    CHECK(opt.exit_code == 3);
    CHECK(opt.err.find("unknown option 'num_ctx'") != std::string::npos);
    CHECK(opt.err.find("latency_ms") != std::string::npos);
}

TEST_CASE("an upstream that echoes the API key never hands it to the client - bytes that are not UTF-8 are sent, not fatal") {
    Rig rig;
    Route echo;
    echo.path = "/v1/chat/completions";
    echo.headers = {{"Content-Type", "text/plain"}};
    echo.body = "proxy saw Authorization: Bearer sk-openai-test and rejected it";  // 200, not JSON
    rig.server.add(echo);
    auto r = rig.post(R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})");
    CHECK(r.head.status >= 400);
    CHECK(r.body.find("sk-openai-test") == std::string::npos);
    CHECK(r.body.find("[redacted]") != std::string::npos);
    std::ifstream log(rig.env.log_path());
    std::stringstream ss;
    ss << log.rdbuf();
    CHECK(ss.str().find("sk-openai-test") == std::string::npos);

    // l04ctl with bytes that are not UTF-8 on stdin: sent with U+FFFD, no abort.
    auto bin = rig.env.ctl({"prompt", "-m", "mock", "--json"}, std::string("caf\xe9 \xff\xfe bytes"));
    INFO(bin.err);
    CHECK(bin.exit_code == 0);
    CHECK(json::parse(bin.out)["content"].get<std::string>().find("\xef\xbf\xbd") != std::string::npos);
    auto arg = rig.env.ctl({"prompt", "-m", "mock", "-s", "sys\xff", "arg \xc3"});
    CHECK(arg.exit_code == 0);
}
