// Batch input lines, result lines and the worker pool (lib/l04/batch).
#include <l04/batch/batch.hpp>
#include <l04/core/clock.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace l04;
using nlohmann::json;

TEST_CASE("batch lines - plain text, JSON strings and request objects") {
    BatchDefaults d;
    d.model = "mock-fast";
    d.system = "be brief";
    auto items = parse_batch_input(
        "What is 2+2?\n"
        "\n"
        "\"a JSON string prompt\"\n"
        R"({"id":"q7","prompt":"hi","model":"mock-smart","temperature":0.5,"max_tokens":9,"priority":"high"})"
        "\n"
        R"({"messages":[{"role":"system","content":"own system"},{"role":"user","content":"x"}],"cache":"bypass"})"
        "\r\n"
        "\"unterminated quote starts a prompt\n"
        R"({"id":7,"prompt":"with options","options":{"reply":"R"},"strategy":"cheapest","timeout":"5s"})",
        d);
    REQUIRE(items.size() == 6);
    // Line numbers count blank lines.
    CHECK(items[0].line == 1);
    CHECK(items[1].line == 3);
    CHECK(items[0].id == 1);
    CHECK(items[0].key == "1");
    REQUIRE(items[0].request);
    CHECK(items[0].request->messages.back().content == "What is 2+2?");
    CHECK(items[0].request->model == "mock-fast");
    CHECK(items[0].request->system_prompt == "be brief");
    CHECK(items[0].request->priority == Priority::low);
    CHECK(items[0].request->wait_for_limits);
    CHECK_FALSE(items[0].request->stream);
    REQUIRE(items[1].request);
    CHECK(items[1].request->messages.back().content == "a JSON string prompt");

    REQUIRE(items[2].request);
    CHECK(items[2].id == "q7");
    CHECK(items[2].key == "\"q7\"");
    CHECK(items[2].request->model == "mock-smart");
    CHECK(*items[2].request->temperature == doctest::Approx(0.5));
    CHECK(*items[2].request->max_tokens == 9);
    CHECK(items[2].request->priority == Priority::high);

    // The item's own system message wins over -s; its cache choice over the default.
    REQUIRE(items[3].request);
    CHECK(items[3].request->system_prompt == "own system");
    CHECK(items[3].request->cache_mode == CacheMode::bypass);

    REQUIRE(items[4].request);
    CHECK(items[4].request->messages.back().content == "\"unterminated quote starts a prompt");

    REQUIRE(items[5].request);
    CHECK(items[5].id == 7);
    CHECK(items[5].request->options.at("reply").text == "R");
    CHECK(items[5].request->strategy == "cheapest");
    CHECK(*items[5].request->timeout_ms == 5000);
}

TEST_CASE("batch lines - bad lines are items with an error and never a request") {
    BatchDefaults d;
    auto items = parse_batch_input(
        "{not json\n"
        "[1,2]\n"
        R"({"id":"a"})"
        "\n"
        R"({"id":"b","prompt":"x","temperature":"hot"})"
        "\n"
        R"({"id":"c","prompt":"x","stream":true})"
        "\n"
        R"({"id":{"x":1},"prompt":"x"})"
        "\n"
        R"({"id":"d","prompt":"x","priority":"urgent"})"
        "\n"
        R"({"id":"e","prompt":"first"})"
        "\n"
        R"({"id":"e","prompt":"second"})"
        "\n"
        R"({"id":"f","prompt":"x","strategy":"cheapest","l04":{"strategy":"fastest"}})"
        "\n" +
            std::string(70, '[') + std::string(70, ']') + "\n",
        d);
    REQUIRE(items.size() == 11);
    for (std::size_t i : {0u, 1u, 2u, 3u, 4u, 5u, 6u, 8u, 9u, 10u}) {
        INFO("item " << i);
        CHECK_FALSE(items[i].request);
        REQUIRE(items[i].error);
        CHECK(items[i].error->message.rfind("line " + std::to_string(items[i].line) + ": ", 0) == 0);
    }
    CHECK(items[0].error->code == ErrorCode::invalid_request);
    CHECK(items[3].error->code == ErrorCode::invalid_parameter);  // strict field types, as on /v1/chat/completions
    REQUIRE(items[7].request);
    // A repeated id: the later line fails and gets its line number as id.
    CHECK(items[8].error->message.find("ids must be unique") != std::string::npos);
    CHECK(items[8].id == 9);
    CHECK(items[10].error->message.find("deeper than 64") != std::string::npos);
    // Keys stay unique even so.
    std::set<std::string> keys;
    for (const auto& it : items) keys.insert(it.key);
    CHECK(keys.size() == items.size());
}

TEST_CASE("batch results - success and error lines") {
    BatchItem it;
    it.line = 3;
    it.id = "q";
    InferenceResponse r;
    r.content = "4";
    r.model_id = "mock-fast";
    r.provider = "mock";
    r.token_usage.prompt_tokens = 5;
    r.token_usage.completion_tokens = 1;
    r.token_usage.total_tokens = 6;
    r.cost_usd = 0.25;
    r.cache_hit = CacheHit::exact;
    const auto ok = batch_result_json(it, r);
    CHECK(ok["id"] == "q");
    CHECK(ok["line"] == 3);
    CHECK(ok["content"] == "4");
    CHECK(ok["usage"]["total_tokens"] == 6);
    CHECK(ok["cached"] == true);
    CHECK(ok["cache_hit"] == "exact");
    CHECK(ok["error"].is_null());
    Error e(ErrorCode::rate_limit_exceeded, "slow down");
    const auto bad = batch_error_json(it, e, exit_status(e.code));
    CHECK(bad["error"]["code"] == "E4401");
    CHECK(bad["error"]["type"] == "rate_limit_exceeded");
    CHECK(bad["exit"] == 5);
    CHECK_FALSE(bad.contains("content"));
}

namespace {

std::vector<BatchItem> prompts(std::size_t n) {
    std::string text;
    for (std::size_t i = 0; i < n; ++i) text += "prompt " + std::to_string(i) + "\n";
    return parse_batch_input(text, BatchDefaults{});
}

InferenceResponse answer(const InferenceRequest& req) {
    InferenceResponse r;
    r.content = "answer to " + req.messages.back().content;
    return r;
}

}  // namespace

TEST_CASE("run_batch - every item once, ordered output keeps input order") {
    const auto items = prompts(200);
    for (bool ordered : {false, true}) {
        std::mutex mu;
        std::map<std::string, int> calls;
        std::vector<std::size_t> lines;
        BatchRunOptions o;
        o.concurrency = 8;
        o.ordered = ordered;
        std::atomic<int> in_flight{0}, peak{0};
        const auto n = run_batch(
            items,
            [&](std::size_t, const InferenceRequest& req) -> Result<InferenceResponse> {
                const int now = ++in_flight;
                int p = peak.load();
                while (now > p && !peak.compare_exchange_weak(p, now)) {
                }
                {
                    std::lock_guard lk(mu);
                    ++calls[req.messages.back().content];
                }
                // Later items finish sooner, so completion order differs from input order.
                std::this_thread::yield();
                --in_flight;
                return answer(req);
            },
            [&](const BatchItem& it, const Result<InferenceResponse>& r) {
                CHECK(r);
                lines.push_back(it.line);
                return true;
            },
            o);
        CHECK(n == 200);
        CHECK(calls.size() == 200);
        for (const auto& [p, c] : calls) CHECK(c == 1);
        CHECK(peak.load() <= 8);
        if (ordered) {
            for (std::size_t i = 0; i < lines.size(); ++i) CHECK(lines[i] == i + 1);
        }
        std::set<std::size_t> uniq(lines.begin(), lines.end());
        CHECK(uniq.size() == 200);
    }
}

TEST_CASE("run_batch - rate limits are waited out by Retry-After within the item's time") {
    ManualClock clock;
    auto items = prompts(1);
    int attempts = 0;
    std::vector<std::int64_t> timeouts;
    BatchRunOptions o;
    o.clock = &clock;
    o.default_timeout_ms = 10000;
    std::optional<bool> ok;
    run_batch(
        items,
        [&](std::size_t, const InferenceRequest& req) -> Result<InferenceResponse> {
            timeouts.push_back(*req.timeout_ms);
            if (++attempts < 4) {
                Error e(ErrorCode::rate_limit_exceeded, "429 from the provider");
                e.retry_after = std::chrono::milliseconds(2000);
                return fail(e);
            }
            return answer(req);
        },
        [&](const BatchItem&, const Result<InferenceResponse>& r) {
            ok = r.has_value();
            return true;
        },
        o);
    CHECK(attempts == 4);
    REQUIRE(ok);
    CHECK(*ok);
    // Each attempt gets only what is left of the item's 10 s.
    CHECK(timeouts == std::vector<std::int64_t>{10000, 8000, 6000, 4000});
    CHECK(clock.now() == std::chrono::milliseconds(6000));

    SUBCASE("past the item's time the limit's error stands") {
        ManualClock c2;
        o.clock = &c2;
        int n = 0;
        std::optional<Error> err;
        run_batch(
            items,
            [&](std::size_t, const InferenceRequest&) -> Result<InferenceResponse> {
                ++n;
                Error e(ErrorCode::rate_limit_exceeded, "429");
                e.retry_after = std::chrono::milliseconds(3000);
                return fail(e);
            },
            [&](const BatchItem&, const Result<InferenceResponse>& r) {
                if (!r) err = r.error();
                return true;
            },
            o);
        CHECK(n == 4);  // at 0, 3, 6 and 9 s; the next turn (12 s) is past 10 s
        REQUIRE(err);
        CHECK(err->code == ErrorCode::rate_limit_exceeded);
        CHECK(c2.now() == std::chrono::milliseconds(9000));
    }
    SUBCASE("final errors are not tried again") {
        ManualClock c3;
        o.clock = &c3;
        int n = 0;
        for (auto code : {ErrorCode::auth_failed, ErrorCode::quota_exhausted, ErrorCode::invalid_parameter,
                          ErrorCode::provider_error}) {
            n = 0;
            run_batch(
                items,
                [&](std::size_t, const InferenceRequest&) -> Result<InferenceResponse> {
                    ++n;
                    return fail(Error(code, "no"));
                },
                [&](const BatchItem&, const Result<InferenceResponse>&) { return true; }, o);
            CHECK(n == 1);
        }
        CHECK(c3.now() == std::chrono::nanoseconds(0));
    }
}

TEST_CASE("run_batch - a false from emit stops new items") {
    const auto items = prompts(100);
    std::atomic<int> calls{0};
    int emitted = 0;
    BatchRunOptions o;
    o.concurrency = 2;
    run_batch(
        items,
        [&](std::size_t, const InferenceRequest& req) -> Result<InferenceResponse> {
            ++calls;
            return answer(req);
        },
        [&](const BatchItem&, const Result<InferenceResponse>&) { return ++emitted < 5; }, o);
    CHECK(emitted == 5);
    CHECK(calls.load() <= 7);  // the two in flight when it said stop may finish
}
