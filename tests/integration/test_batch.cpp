// l04ctl batch and POST /v1/batch through the real binaries, against a local
// OpenAI-protocol server that counts the calls it gets per prompt.
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

using l04::test::DaemonEnv;
using l04::test::FixtureServer;
using l04::test::Route;
using nlohmann::json;

namespace {

struct BatchRig {
    FixtureServer server;
    DaemonEnv env;
    BatchRig() {
        env.env()["OPENAI_BASE_URL"] = server.base_url() + "/v1";
        env.env()["OPENAI_API_KEY"] = "sk-openai-test";
        Route models;
        models.method = "GET";
        models.path = "/v1/models";
        models.headers = {{"Content-Type", "application/json"}};
        models.body = R"({"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]})";
        server.add(models);
        // A paced answer (about 10 pieces, 25 ms apart), so a run can be killed midway.
        auto ok = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                  "wire/openai/chat_nonstream.json");
        ok.chunked = true;
        ok.chunk_size = 64;
        ok.chunk_delay = std::chrono::milliseconds(25);
        server.add(ok);
    }
    // Chat calls whose body holds tag.
    std::size_t calls_for(const std::string& tag) const {
        std::size_t n = 0;
        for (const auto& r : server.requests())
            if (r.method == "POST" && r.body.find(tag) != std::string::npos) ++n;
        return n;
    }
};

std::vector<json> lines_of(const std::string& text) {
    std::vector<json> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) break;  // a torn last line is not a result
        out.push_back(json::parse(text.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    return out;
}

std::string tag(int i) {
    char b[32];
    std::snprintf(b, sizeof b, "q-%03d-end", i);
    return b;
}

}  // namespace

TEST_CASE("l04ctl batch - good and bad lines - 429s waited out - killed with SIGKILL and resumed - nothing answered is asked twice") {
    BatchRig rig;
    auto& env = rig.env;
    // Two prompts get a provider 429 (Retry-After: 1) on their first calls;
    // one always gets a 500.
    Route limited;
    limited.path = "/v1/chat/completions";
    limited.status = 429;
    limited.reason = "Too Many Requests";
    limited.headers = {{"Content-Type", "application/json"}, {"Retry-After", "1"}};
    limited.body = R"({"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}})";
    limited.when_body_contains = "RATELIMITED";
    limited.times = 2;
    rig.server.add(limited);
    Route broken;
    broken.path = "/v1/chat/completions";
    broken.status = 500;
    broken.reason = "Internal Server Error";
    broken.headers = {{"Content-Type", "application/json"}};
    broken.body = R"({"error":{"message":"The server had an error","type":"server_error"}})";
    broken.when_body_contains = "ALWAYSFAILS";
    rig.server.add(broken);

    constexpr int k_good = 30;
    std::string in;
    for (int i = 0; i < k_good; ++i) in += R"({"id":"p)" + std::to_string(i) + R"(","prompt":"question )" + tag(i) + "\"}\n";
    in += "{broken\n";
    in += R"({"id":"noprompt"})" "\n";
    in += R"({"id":"r1","prompt":"RATELIMITED one"})" "\n";
    in += R"({"id":"r2","prompt":"RATELIMITED two"})" "\n";
    in += R"({"id":"f1","prompt":"ALWAYSFAILS"})" "\n";
    const std::string in_path = env.dir().file("in.jsonl");
    const std::string out_path = env.dir().file("out.jsonl");
    std::ofstream(in_path) << in;
    const std::vector<std::string> args{"batch", in_path, "-o", out_path, "-m", "gpt-4o-mini", "--no-cache", "-j", "4",
                                        "--timeout", "20s"};

    // Start l04d first, so the kill below hits the batch, not a start-up.
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    std::vector<std::string> argv{l04::test::bin("l04ctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    const int pid = l04::test::spawn(argv, env.options());
    REQUIRE(pid > 0);
    // Kill it once a few results are on disk (bounded wait for a condition).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::size_t at_kill = 0;
    while (std::chrono::steady_clock::now() < give_up) {
        at_kill = lines_of(l04::test::read_file(out_path)).size();
        if (at_kill >= 8) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    l04::test::wait_pid(pid, std::chrono::seconds(10));
    const auto before = lines_of(l04::test::read_file(out_path));
    REQUIRE(before.size() >= 8);
    REQUIRE(before.size() < 35);  // killed midway, not after the end
    std::set<std::string> answered_before;
    for (const auto& l : before)
        if (l["error"].is_null()) answered_before.insert(l["id"].get<std::string>());

    // Resume: runs what is missing, tries failures again.
    auto r = env.ctl(args, {}, std::chrono::seconds(90));
    INFO(r.err);
    // Failures: the 500 (exit 6) and two bad lines (exit 3): the most common wins.
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("resuming") != std::string::npos);
    CHECK(r.err.find("3 failed") != std::string::npos);
    const auto after = lines_of(l04::test::read_file(out_path));
    std::map<std::string, json> by_id;
    for (const auto& l : after) {
        const std::string id = l["id"].is_string() ? l["id"].get<std::string>() : l["id"].dump();
        INFO(id);
        CHECK(by_id.count(id) == 0);  // one line per id
        by_id[id] = l;
    }
    CHECK(by_id.size() == 35);
    for (int i = 0; i < k_good; ++i) {
        const std::string id = "p" + std::to_string(i);
        INFO(id);
        REQUIRE(by_id.count(id));
        CHECK(by_id[id]["error"].is_null());
        CHECK(by_id[id]["content"] == R"(\(4200 + 42 = 4242\).)");
        CHECK(by_id[id]["usage"]["total_tokens"] == 28);
        // Answered before the kill: never asked again.
        if (answered_before.count(id)) CHECK(rig.calls_for(tag(i)) == 1);
        CHECK(rig.calls_for(tag(i)) >= 1);
    }
    // The 429s were waited out, not reported.
    CHECK(by_id["r1"]["error"].is_null());
    CHECK(by_id["r2"]["error"].is_null());
    CHECK(by_id["f1"]["error"]["code"].get<std::string>().rfind("E42", 0) == 0);
    CHECK(by_id["f1"]["exit"] == 6);
    CHECK(by_id["noprompt"]["error"]["code"] == "E4500");
    CHECK(by_id["31"]["error"]["code"] == "E4500");  // "{broken", by its line number
    CHECK(by_id["31"]["line"] == 31);

    // A third run asks only for the failed ones.
    std::map<int, std::size_t> calls;
    for (int i = 0; i < k_good; ++i) calls[i] = rig.calls_for(tag(i));
    const std::size_t fails = rig.calls_for("ALWAYSFAILS");
    auto again = env.ctl(args, {}, std::chrono::seconds(60));
    CHECK(again.exit_code == 3);
    for (int i = 0; i < k_good; ++i) CHECK(rig.calls_for(tag(i)) == calls[i]);
    CHECK(rig.calls_for("ALWAYSFAILS") > fails);
    CHECK(lines_of(l04::test::read_file(out_path)).size() == 35);
    for (const auto& e : std::filesystem::directory_iterator(env.dir().path()))
        CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
    CHECK((std::filesystem::status(out_path).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
}

TEST_CASE("l04ctl batch - plain lines from stdin in input order - progress lines for logs - a second run is served by the cache") {
    DaemonEnv env;
    const std::string in = "first question\nsecond question\n\nthird question\n";
    auto r = env.ctl({"batch", "-", "-m", "mock", "--ordered", "-j", "3", "--progress-every", "0"}, in);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto out = lines_of(r.out);
    REQUIRE(out.size() == 3);
    CHECK(out[0]["id"] == 1);
    CHECK(out[1]["id"] == 2);
    CHECK(out[2]["id"] == 4);  // line numbers count the blank line
    CHECK(out[2]["content"].get<std::string>().find("third question") != std::string::npos);
    CHECK(out[0]["model"] == "mock");
    // stdout holds only results; progress and the summary go to stderr.
    CHECK(r.err.find("l04ctl batch: 3/3 done") != std::string::npos);
    CHECK(r.err.find("3 item(s): 3 succeeded (0 cached), 0 failed") != std::string::npos);

    auto again = env.ctl({"batch", "-", "-m", "mock", "-q"}, in);
    REQUIRE(again.exit_code == 0);
    CHECK(again.err.empty());
    for (const auto& l : lines_of(again.out)) CHECK(l["cached"] == true);

    // -o never overwrites what is not a batch's output, nor the input itself.
    const std::string notes = env.dir().file("notes.txt");
    std::ofstream(notes) << "my own notes\n{\"id\": 1}\n";
    auto clobber = env.ctl({"batch", "-", "-m", "mock", "-o", notes}, in);
    CHECK(clobber.exit_code == 3);
    CHECK(clobber.err.find("not l04ctl batch results") != std::string::npos);
    CHECK(l04::test::read_file(notes) == "my own notes\n{\"id\": 1}\n");
    const std::string word = env.dir().file("word.txt");
    std::ofstream(word) << "hello";  // no newline: not a torn result either
    CHECK(env.ctl({"batch", "-", "-m", "mock", "-o", word}, in).exit_code == 3);
    CHECK(l04::test::read_file(word) == "hello");
    const std::string in_path = env.dir().file("in.txt");
    std::ofstream(in_path) << in;
    auto self = env.ctl({"batch", in_path, "-m", "mock", "-o", in_path});
    CHECK(self.exit_code == 3);
    CHECK(l04::test::read_file(in_path) == in);

    // Usage errors: a missing input file, -j out of range.
    CHECK(env.ctl({"batch", env.dir().file("nope.jsonl")}).exit_code == 3);
    CHECK(env.ctl({"batch", "-", "-j", "0"}, "x\n").exit_code == 3);
}

TEST_CASE("l04ctl batch --dry-run prices the routed models and sends nothing") {
    BatchRig rig;
    const std::string in = "one\ntwo\n{\"prompt\":\"three\",\"max_tokens\":100}\n";
    auto r = rig.env.ctl({"batch", "-", "-m", "gpt-4o-mini", "--max-tokens", "50", "--dry-run"}, in);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("gpt-4o-mini") != std::string::npos);
    CHECK(r.out.find("200") != std::string::npos);  // 50 + 50 + 100 answer tokens at most
    CHECK(r.out.find("estimate: at least $") != std::string::npos);
    CHECK(rig.calls_for("one") == 0);
    CHECK(rig.calls_for("three") == 0);
    // With -o it reads OUT (answered ids are not priced) but never creates or changes it.
    const std::string out = rig.env.dir().file("dry.jsonl");
    CHECK(rig.env.ctl({"batch", "-", "-m", "gpt-4o-mini", "-o", out, "--dry-run"}, in).exit_code == 0);
    CHECK_FALSE(std::filesystem::exists(out));
    const std::string earlier = R"({"id":1,"line":1,"content":"x","error":null})" "\n"
                                R"({"id":2,"line":2,"error":{"code":"E4201"},"exit":6})" "\n";
    std::ofstream(out) << earlier;
    auto dry = rig.env.ctl({"batch", "-", "-m", "gpt-4o-mini", "-o", out, "--dry-run"}, in);
    CHECK(dry.exit_code == 0);
    CHECK(dry.out.find("1 item(s) already answered") != std::string::npos);
    CHECK(l04::test::read_file(out) == earlier);
}

TEST_CASE("POST /v1/batch streams one JSON line per item") {
    DaemonEnv env;
    REQUIRE(env.ctl({"daemon", "start"}).exit_code == 0);
    l04::test::ProcOptions o;
    o.stdin_data = "{\"id\":\"a\",\"prompt\":\"alpha\",\"model\":\"mock\"}\n{\"id\":\"b\",\"prompt\":\"beta\",\"model\":\"nope\"}\n"
                   "{\"id\":\"c\",\"prompt\":\"gamma\",\"model\":\"mock\"}\n";
    auto r = l04::test::run({"/usr/bin/curl", "-sS", "--unix-socket", env.socket_path(), "-X", "POST",
                             "--data-binary", "@-", "http://l04/v1/batch?ordered=1&concurrency=2"},
                            o);
    REQUIRE(r.exit_code == 0);
    const auto out = lines_of(r.out);
    REQUIRE(out.size() == 3);
    CHECK(out[0]["id"] == "a");
    CHECK(out[0]["error"].is_null());
    CHECK(out[1]["id"] == "b");
    CHECK(out[1]["error"]["code"] == "E4001");
    CHECK(out[1]["exit"] == 3);
    CHECK(out[2]["content"].get<std::string>().find("gamma") != std::string::npos);

    auto bad = l04::test::run({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                               env.socket_path(), "-X", "POST", "--data-binary", "x", "http://l04/v1/batch?concurrency=99"});
    CHECK(bad.out == "400");
}
