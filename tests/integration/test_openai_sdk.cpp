// The official `openai` npm SDK (4.x) against the real l04d over TCP: a
// provider 429 with Retry-After reaches the SDK as a 429 with Retry-After,
// and l04 makes one upstream call per SDK attempt (no retry multiplication).
// The SDK is installed into the build directory on first use; without node,
// npm or the npm registry the test says so and skips.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

// A build-directory prefix holding `check` (a path under it) after
// `npm install pkgs`, or "" (with why) when it cannot be had here.
std::string npm_prefix(const std::string& name, const std::vector<std::string>& pkgs, const std::string& check,
                       std::string& why) {
    const std::string prefix = std::filesystem::path(L04_BIN_DIR).parent_path().string() + "/" + name;
    // `check` appears early in an install, so a marker written after a
    // successful one says it is complete; two tests that need the same
    // packages run at once under ctest -j, so installs take a lock.
    const std::string done = prefix + "/.l04-installed";
    auto installed = [&] {
        return std::filesystem::exists(done) && std::filesystem::exists(prefix + "/" + check);
    };
    if (installed()) return prefix;
    for (const char* tool : {"/usr/bin/node", "/usr/bin/npm"})
        if (!std::filesystem::exists(tool)) {
            why = std::string(tool) + " is not installed";
            return {};
        }
    std::filesystem::create_directories(prefix);
    struct Lock {
        int fd;
        ~Lock() {
            if (fd >= 0) ::close(fd);  // releases the flock
        }
    } lock{::open((prefix + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (lock.fd < 0 || ::flock(lock.fd, LOCK_EX) != 0) {
        why = "cannot lock " + prefix + ".lock";
        return {};
    }
    if (installed()) return prefix;  // the other test installed it meanwhile
    l04::test::ProcOptions o;
    o.timeout = std::chrono::milliseconds(240000);
    std::vector<std::string> argv = {"/usr/bin/npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--silent"};
    argv.insert(argv.end(), pkgs.begin(), pkgs.end());
    auto r = l04::test::run(argv, o);
    if (r.exit_code != 0 || !std::filesystem::exists(prefix + "/" + check)) {
        std::string list;
        for (const auto& p : pkgs) list += (list.empty() ? "" : " ") + p;
        why = "npm could not install " + list + " (registry unreachable?): " + r.err.substr(0, 300);
        return {};
    }
    std::ofstream(done) << "ok\n";
    return prefix;
}

// The directory holding node_modules/openai (the official SDK, 4.x).
std::string openai_sdk(std::string& why) {
    return npm_prefix("npm-openai", {"openai@4"}, "node_modules/openai/package.json", why);
}

// l04d on loopback TCP with the mock provider only (no keys).
struct MockDaemon {
    DaemonEnv env;
    int pid = 0;
    int port = 0;
    MockDaemon() {
        std::filesystem::create_directories(env.state_dir());
        pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, env.options(),
                               env.log_path());
        port = l04::test::wait_for_l04d_port(env.log_path());
    }
    ~MockDaemon() {
        if (pid > 0) ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    }
    // Runs a node script with SDK and BASE set; its last stdout line as JSON.
    json node(const std::string& sdk, const std::string& js) {
        const std::string script = env.dir().file("t.js");
        std::ofstream(script) << js;
        l04::test::ProcOptions o;
        o.env = {{"SDK", sdk}, {"BASE", "http://127.0.0.1:" + std::to_string(port) + "/v1"}};
        o.timeout = std::chrono::milliseconds(90000);
        auto r = l04::test::run({"/usr/bin/node", script}, o);
        INFO(r.out, r.err);
        CHECK(r.exit_code == 0);
        const auto nl = r.out.find_last_of('\n', r.out.size() >= 2 ? r.out.size() - 2 : 0);
        return json::parse(nl == std::string::npos ? r.out : r.out.substr(nl + 1), nullptr, false);
    }
};

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

TEST_CASE("openai SDK: responses.create (plain - continued - streamed - stream helper) - embeddings - legacy completions") {
    std::string why;
    const std::string sdk = openai_sdk(why);
    if (sdk.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    MockDaemon d;
    REQUIRE(d.port > 0);
    auto j = d.node(sdk, R"JS(
const OpenAI = require(process.env.SDK + '/node_modules/openai');
const client = new OpenAI({ baseURL: process.env.BASE, apiKey: 'unused', maxRetries: 0, timeout: 20000 });
(async () => {
  const out = {};
  const r = await client.responses.create({ model: 'mock', input: 'hello responses', instructions: 'be brief' });
  Object.assign(out, { text: r.output_text, id: r.id, status: r.status, usage: r.usage });
  const r2 = await client.responses.create({ model: 'mock', input: 'and again', previous_response_id: r.id });
  Object.assign(out, { text2: r2.output_text, usage2: r2.usage });
  const stream = await client.responses.create({ model: 'mock', input: 'stream this', stream: true });
  const types = []; let deltas = ''; let final = null;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'response.output_text.delta') deltas += ev.delta;
    if (ev.type === 'response.completed') final = ev.response;
  }
  Object.assign(out, { types, deltas, final_text: final && final.output[0].content[0].text });
  const helper = await client.responses.stream({ model: 'mock', input: 'helper stream' }).finalResponse();
  out.helper = helper.output_text || (helper.output[0] && helper.output[0].content[0].text);
  out.helper_status = helper.status;
  const e = await client.embeddings.create({ model: 'mock-embed', input: ['a b', 'c'], dimensions: 8 });
  out.emb = e.data.map(x => x.embedding.length);
  out.emb_norm = Math.hypot(...e.data[0].embedding);
  const c = await client.completions.create({ model: 'mock', prompt: 'legacy prompt', max_tokens: 50 });
  out.legacy = c.choices[0].text;
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ error: String(e), status: e.status || null })); });
)JS");
    REQUIRE(j.is_object());
    INFO(j.dump());
    CHECK_FALSE(j.contains("error"));
    CHECK(j["status"] == "completed");
    CHECK(j["text"].get<std::string>().find("hello responses") != std::string::npos);
    CHECK(j["text2"].get<std::string>().find("and again") != std::string::npos);
    // The continuation carried the first exchange.
    CHECK(j["usage2"]["input_tokens"].get<int>() > j["usage"]["input_tokens"].get<int>() + 10);
    CHECK(j["types"].front() == "response.created");
    CHECK(j["types"].back() == "response.completed");
    CHECK(j["deltas"] == j["final_text"]);
    CHECK(j["deltas"].get<std::string>().find("stream this") != std::string::npos);
    REQUIRE(j["helper"].is_string());
    CHECK(j["helper"].get<std::string>().find("helper stream") != std::string::npos);
    CHECK(j["helper_status"] == "completed");
    CHECK(j["emb"] == json::array({8, 8}));  // the SDK asks for base64 and decodes it
    CHECK(j["emb_norm"].get<double>() == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(j["legacy"].get<std::string>().find("legacy prompt") != std::string::npos);
}

TEST_CASE("Vercel AI SDK: the default openai(model) (Responses API) - generateText - a second turn - streamText - embed") {
    std::string why;
    const std::string sdk = npm_prefix("npm-vercel-ai", {"ai@5", "@ai-sdk/openai@2"},
                                       "node_modules/@ai-sdk/openai/package.json", why);
    if (sdk.empty()) {
        MESSAGE("skipped: " << why);
        return;
    }
    MockDaemon d;
    REQUIRE(d.port > 0);
    auto j = d.node(sdk, R"JS(
const { createOpenAI } = require(process.env.SDK + '/node_modules/@ai-sdk/openai');
const { generateText, streamText, embed } = require(process.env.SDK + '/node_modules/ai');
let sentRefs = 0;
const fetchSeen = async (url, init) => {
  if (init && typeof init.body === 'string' && init.body.includes('"item_reference"')) sentRefs++;
  return fetch(url, init);
};
const openai = createOpenAI({ baseURL: process.env.BASE, apiKey: 'unused', fetch: fetchSeen });
(async () => {
  const out = {};
  const r = await generateText({ model: openai('mock'), prompt: 'hello vercel', maxRetries: 0 });
  Object.assign(out, { text: r.text, finish: r.finishReason, in: r.usage.inputTokens, outTok: r.usage.outputTokens });
  // A second turn built from the first one's messages: with store on (the
  // SDK's default) it refers to the stored answer by item_reference.
  const r2 = await generateText({ model: openai('mock'), maxRetries: 0,
                                  messages: [{ role: 'user', content: 'hello vercel' }, ...r.response.messages,
                                             { role: 'user', content: 'second vercel turn' }] });
  out.text2 = r2.text;
  out.refs = sentRefs;
  out.in2 = r2.usage.inputTokens;
  const s = streamText({ model: openai('mock'), prompt: 'stream vercel', maxRetries: 0,
                         onError: ({ error }) => { out.stream_error = String(error); } });
  let t = '';
  for await (const piece of s.textStream) t += piece;
  out.stream = t;
  out.stream_finish = await s.finishReason;
  const e = await embed({ model: openai.embedding('mock-embed'), value: 'x y z', maxRetries: 0 });
  out.emb = e.embedding.length;
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({ error: String(e), cause: String(e.cause || ''), body: e.responseBody || null })); });
)JS");
    REQUIRE(j.is_object());
    INFO(j.dump());
    CHECK_FALSE(j.contains("error"));
    CHECK_FALSE(j.contains("stream_error"));
    CHECK(j["text"].get<std::string>().find("hello vercel") != std::string::npos);
    CHECK(j["finish"] == "stop");
    CHECK(j["in"].get<int>() > 0);
    CHECK(j["outTok"].get<int>() > 0);
    CHECK(j["text2"].get<std::string>().find("second vercel turn") != std::string::npos);
    CHECK(j["in2"].get<int>() > j["in"].get<int>() + 10);  // the first exchange was sent again
    MESSAGE("item_reference items the SDK sent: " << j["refs"]);
    CHECK(j["stream"].get<std::string>().find("stream vercel") != std::string::npos);
    CHECK(j["stream_finish"] == "stop");
    CHECK(j["emb"] == 384);
}
