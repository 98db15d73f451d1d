// Conformance: every recorded exchange in ../shared/fixtures/wire/ replayed
// through its adapter with a FakeTransport that splits the body at random
// points (and byte by byte). Expected values were read from the fixture
// files by hand and are hard-coded here.
#include "support/fake_transport.hpp"
#include "support/test_util.hpp"

#include <l04/core/clock.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

using namespace l04;
using nlohmann::json;

namespace {

constexpr const char* k_key = "sk-test-conformance-SECRET-0123456789";

struct Setup {
    std::string kind;
    std::string base_url;
    std::string model_name;
    std::int64_t max_output_tokens = 16384;
    std::int64_t wall_ms = 1'700'000'000'000;
    std::string id = {};  // provider id; default = kind
};

Setup openai(std::string model = "gpt-4o") {
    return {"openai", "https://api.openai.com/v1", std::move(model)};
}
Setup anthropic(std::string model = "claude-sonnet-4-0") {
    return {"anthropic", "https://api.anthropic.com", std::move(model), 64000};
}
Setup ollama(std::string model = "llama3:8b") {
    return {"ollama", "http://127.0.0.1:11434", std::move(model), 8192};
}
Setup gemini(std::string model = "gemini-2.5-flash") {
    return {"gemini", "https://generativelanguage.googleapis.com", std::move(model), 65536};
}

// Streamed chunks as the gateway would see them.
struct Seen {
    std::string text;
    std::vector<ToolCall> tools;
    int chunks = 0;  // chunks with text or tool-call deltas
    int opens = 0;   // empty chunks: "the upstream stream has begun" (before any other)
    int finals = 0;
    std::optional<TokenUsage> final_usage;
    int stop_after = -1;  // refuse chunk number N (caller goes away)
};

ChunkSink sink_for(Seen& s) {
    return [&s](const StreamChunk& c) -> bool {
        if (c.is_final) {
            ++s.finals;
            s.final_usage = c.usage;
            return true;
        }
        if (c.delta.empty() && c.tool_call_deltas.empty()) {
            CHECK(s.chunks == 0);  // only ever first
            ++s.opens;
            return true;
        }
        if (s.stop_after >= 0 && s.chunks >= s.stop_after) return false;
        ++s.chunks;
        s.text += c.delta;
        for (std::size_t i = 0; i < c.tool_call_deltas.size(); ++i) {
            const auto& d = c.tool_call_deltas[i];
            if (d.id.empty() && d.name.empty() && d.arguments.empty()) continue;
            if (s.tools.size() <= i) s.tools.resize(i + 1);
            if (!d.id.empty()) s.tools[i].id = d.id;
            s.tools[i].name += d.name;
            s.tools[i].arguments += d.arguments;
        }
        return true;
    };
}

struct Outcome {
    std::optional<Result<InferenceResponse>> result;
    Seen seen;
    HttpRequest sent;
    std::size_t pieces = 0;

    const InferenceResponse& ok() const {
        REQUIRE(result.has_value());
        if (!*result) FAIL("unexpected error: " << result->error().to_string());
        return result->value();
    }
    const Error& err() const {
        REQUIRE(result.has_value());
        REQUIRE_FALSE(result->has_value());
        return result->error();
    }
    json body() const { return json::parse(sent.body); }
};

InferenceRequest user_prompt(const std::string& text) {
    InferenceRequest r;
    r.request_id = "req_conformance";
    r.messages.push_back(Message{Role::user, text, "", "", {}});
    return r;
}

Outcome run(const Setup& s, const InferenceRequest& req, bool stream, test::FakeResponse resp, std::uint64_t seed = 42,
            std::size_t max_piece = 64, int stop_after = -1, const CancelToken* cancel = nullptr) {
    ProviderInfo info;
    info.id = s.id.empty() ? s.kind : s.id;
    info.kind = s.kind;
    info.base_url = s.base_url;
    ModelInfo model;
    model.id = s.model_name;
    model.provider = info.id;
    model.name = s.model_name;
    model.max_output_tokens = s.max_output_tokens;
    ProviderConfig cfg;
    cfg.info = &info;
    cfg.base_url = s.base_url;
    cfg.api_key = s.kind == "ollama" ? "" : k_key;
    cfg.configured = true;
    test::FakeTransport transport(seed, max_piece);
    transport.push(std::move(resp));
    ManualClock clock(s.wall_ms);
    auto p = make_provider(cfg, transport, clock);
    REQUIRE(p);
    Outcome o;
    o.seen.stop_after = stop_after;
    ProviderRequest pr{req, model, std::chrono::milliseconds(30000), cancel};
    if (stream)
        o.result.emplace((*p)->stream(pr, sink_for(o.seen)));
    else
        o.result.emplace((*p)->complete(pr));
    o.sent = transport.last_request();
    o.pieces = transport.last_pieces().size();
    return o;
}

// Runs `check` for a streamed replay under many splits: byte by byte,
// small and large random pieces, and the whole body at once.
template <class F>
void for_each_split(F&& check) {
    const std::pair<std::uint64_t, std::size_t> splits[] = {{1, 1}, {2, 3}, {3, 7}, {4, 64}, {5, 500}, {6, 0}};
    for (const auto& entry_ : splits) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& seed = std::get<0>(entry_);
        const auto& piece = std::get<1>(entry_);
        CAPTURE(seed);
        CAPTURE(piece);
        check(seed, piece);
    }
}

std::string header_of(const HttpRequest& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k == name) return v;
    return {};
}

void expect_no_key(const Error& e) {
    CHECK(e.message.find(k_key) == std::string::npos);
    CHECK(e.details.find(k_key) == std::string::npos);
}

test::FakeResponse rec(const std::string& dir, const std::string& name, const std::string& ext, int status = 200) {
    return test::recorded("wire/" + dir + "/" + name + ".headers", "wire/" + dir + "/" + name + "." + ext, status);
}

// The fixture body cut just before the first occurrence of `marker`.
test::FakeResponse cut_before(test::FakeResponse r, const std::string& marker) {
    auto pos = r.body.find(marker);
    REQUIRE(pos != std::string::npos);
    r.body.resize(pos);
    return r;
}

// Epoch ms of an HTTP date (the recorded Date header), for absolute resets.
std::int64_t epoch_ms(int y, int mon, int d, int h, int mi, int s) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

}  // namespace

// ------------------------------------------------------------------ coverage

TEST_CASE("conformance: every fixture file is replayed by a test in this file") {
    // Keep this list in step with the directory: a new recording must get a test.
    const std::set<std::string> covered = {
        "anthropic/error_401.headers",
        "anthropic/error_401.json",
        "anthropic/error_429.headers",
        "anthropic/error_429.json",
        "anthropic/error_429_input_tokens_per_minute.json",
        "anthropic/error_529.headers",
        "anthropic/error_529.json",
        "anthropic/messages_nonstream.headers",
        "anthropic/messages_nonstream.json",
        "anthropic/messages_nonstream_claude3opus.headers",
        "anthropic/messages_nonstream_claude3opus.json",
        "anthropic/messages_nonstream_claude3opus_request.json",
        "anthropic/messages_nonstream_request.json",
        "anthropic/messages_stream.headers",
        "anthropic/messages_stream.sse",
        "anthropic/messages_stream_request.json",
        "anthropic/messages_stream_tool_use.headers",
        "anthropic/messages_stream_tool_use.sse",
        "anthropic/messages_stream_tool_use_request.json",
        "anthropic/stream_error_event.sse",
        "anthropic/stream_error_event_observed_data.json",
        "gemini/generate_content.headers",
        "gemini/generate_content.json",
        "gemini/generate_content_request.json",
        "gemini/stream_generate_content.headers",
        "gemini/stream_generate_content.sse",
        "gemini/stream_generate_content_request.json",
        "ollama/chat_nonstream.headers",
        "ollama/chat_nonstream.json",
        "ollama/chat_nonstream_request.json",
        "ollama/chat_stream.headers",
        "ollama/chat_stream.ndjson",
        "ollama/chat_stream_request.json",
        "ollama/embed.headers",
        "ollama/embed.json",
        "ollama/embed_request.json",
        "ollama/openai_compat_chat_completions.headers",
        "ollama/openai_compat_chat_completions.json",
        "ollama/openai_compat_chat_completions_request.json",
        "ollama/tags.headers",
        "ollama/tags.json",
        "openai/chat_nonstream.headers",
        "openai/chat_nonstream.json",
        "openai/chat_nonstream_gpt35.headers",
        "openai/chat_nonstream_gpt35.json",
        "openai/chat_nonstream_gpt35_request.json",
        "openai/chat_nonstream_request.json",
        "openai/chat_stream_after_tool_result.headers",
        "openai/chat_stream_after_tool_result.sse",
        "openai/chat_stream_after_tool_result_request.json",
        "openai/chat_stream_parallel_tool_calls.headers",
        "openai/chat_stream_parallel_tool_calls.sse",
        "openai/chat_stream_parallel_tool_calls_request.json",
        "openai/chat_stream_text_gpt4o.headers",
        "openai/chat_stream_text_gpt4o.sse",
        "openai/chat_stream_text_gpt4o_request.json",
        "openai/chat_stream_tool_calls_with_usage.headers",
        "openai/chat_stream_tool_calls_with_usage.sse",
        "openai/chat_stream_tool_calls_with_usage_request.json",
        "openai/chat_stream_with_usage.headers",
        "openai/chat_stream_with_usage.sse",
        "openai/chat_stream_with_usage_request.json",
        "openai/embeddings.headers",
        "openai/embeddings.json",
        "openai/embeddings_request.json",
        "openai/error_400_context_length_exceeded.json",
        "openai/error_400_unsupported_parameter.headers",
        "openai/error_400_unsupported_parameter.json",
        "openai/error_400_unsupported_parameter_request.json",
        "openai/error_401.headers",
        "openai/error_401.json",
        "openai/error_429_insufficient_quota.json",
        "openai/error_429_responses_api.headers",
        "openai/error_500.json",
        "openai/error_503.json",
        "openrouter/error_429.headers",
        "openrouter/error_429.json",
        "openrouter/error_429_request.json",
    };
    std::set<std::string> on_disk;
    for (const auto& dir : std::filesystem::directory_iterator(test::fixture_path("wire"))) {
        if (!dir.is_directory()) continue;
        for (const auto& f : std::filesystem::directory_iterator(dir.path()))
            on_disk.insert(dir.path().filename().string() + "/" + f.path().filename().string());
    }
    CHECK(on_disk == covered);
}

// ------------------------------------------------------------------ OpenAI

TEST_CASE("openai: chat_nonstream (gpt-4o) content - usage - model - request") {
    auto o = run(openai("gpt-4o"), user_prompt("What is 4200 + 42?"), false, rec("openai", "chat_nonstream", "json"));
    const auto& r = o.ok();
    CHECK(r.content == R"(\(4200 + 42 = 4242\).)");
    CHECK(r.finish_reason == "stop");
    CHECK(r.token_usage == TokenUsage{16, 12, 28, false});
    CHECK(r.metadata.at("provider_model") == "gpt-4o-2024-08-06");
    CHECK(r.metadata.count("usage_estimated") == 0);
    CHECK(r.tool_calls.empty());
    CHECK(o.sent.method == "POST");
    CHECK(o.sent.url == "https://api.openai.com/v1/chat/completions");
    CHECK(header_of(o.sent, "Authorization") == std::string("Bearer ") + k_key);
    // The request as recorded in chat_nonstream_request.json.
    CHECK(o.body() == json::parse(test::fixture("wire/openai/chat_nonstream_request.json")));
}

TEST_CASE("openai: chat_nonstream_gpt35 with max tokens and temperature") {
    auto req = user_prompt("Hello, how are you?");
    req.max_tokens = 50;
    req.temperature = 0.0;
    auto o = run(openai("gpt-3.5-turbo"), req, false, rec("openai", "chat_nonstream_gpt35", "json"));
    const auto& r = o.ok();
    CHECK(r.content ==
          "Hello! I'm just a computer program, so I don't have feelings, but I'm here to help you. How can I assist "
          "you today?");
    CHECK(r.token_usage == TokenUsage{13, 31, 44, false});
    CHECK(r.metadata.at("provider_model") == "gpt-3.5-turbo-0125");
    // api.openai.com gets max_completion_tokens, as in the recorded request.
    CHECK(o.body() == json::parse(test::fixture("wire/openai/chat_nonstream_gpt35_request.json")));
}

TEST_CASE("openai: chat_stream_with_usage - any split: text - exact usage - [DONE]") {
    auto req = user_prompt("Count from 1 to 5");
    req.max_tokens = 50;
    req.temperature = 0.0;
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(openai("gpt-3.5-turbo"), req, true, rec("openai", "chat_stream_with_usage", "sse"), seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == "1, 2, 3, 4, 5");
        CHECK(o.seen.text == r.content);
        CHECK(o.seen.chunks == 13);  // "1" "," " " "2" ... "5": 13 non-empty deltas
        CHECK(o.seen.opens == 1);    // the role event, forwarded as soon as it arrived
        CHECK(o.seen.finals == 1);
        CHECK(r.token_usage == TokenUsage{14, 13, 27, false});
        CHECK(o.seen.final_usage == r.token_usage);
        CHECK(r.finish_reason == "stop");
        CHECK(r.metadata.at("provider_model") == "gpt-3.5-turbo-0125");
        CHECK(o.body() == json::parse(test::fixture("wire/openai/chat_stream_with_usage_request.json")));
        CHECK(header_of(o.sent, "Accept") == "text/event-stream");
    });
}

TEST_CASE("openai: chat_stream_text_gpt4o") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto req = user_prompt("What is 4200 + 42?");
        auto o = run(openai("gpt-4o"), req, true, rec("openai", "chat_stream_text_gpt4o", "sse"), seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == "4200 + 42 equals 4242.");
        CHECK(o.seen.text == r.content);
        CHECK(r.token_usage == TokenUsage{16, 10, 26, false});
        CHECK(r.metadata.at("provider_model") == "gpt-4o-2024-08-06");
        auto body = o.body();
        CHECK(body["model"] == "gpt-4o");
        CHECK(body["stream"] == true);
        CHECK(body["stream_options"]["include_usage"] == true);
    });
}

TEST_CASE("openai: chat_stream_tool_calls_with_usage reassembles the streamed tool call") {
    InferenceRequest req = user_prompt("What is 1231 * 2331?");
    req.tools.push_back(ToolSpec{
        "multiply", "Multiply two numbers.",
        R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"type":"object"})"});
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(openai("gpt-4o-mini"), req, true, rec("openai", "chat_stream_tool_calls_with_usage", "sse"), seed,
                     piece);
        const auto& r = o.ok();
        CHECK(r.content.empty());
        REQUIRE(r.tool_calls.size() == 1);
        CHECK(r.tool_calls[0] == ToolCall{"call_1EYWDzueHEp8OsB8jJSEp7WB", "multiply", R"({"a":1231,"b":2331})"});
        CHECK(o.seen.tools == r.tool_calls);  // the deltas add up to the same calls
        CHECK(r.finish_reason == "tool_calls");
        CHECK(r.token_usage == TokenUsage{54, 20, 74, false});
        CHECK(r.metadata.at("provider_model") == "gpt-4o-mini-2024-07-18");
        CHECK(o.body() == json::parse(test::fixture("wire/openai/chat_stream_tool_calls_with_usage_request.json")));
    });
}

TEST_CASE("openai: chat_stream_after_tool_result sends the tool turn and streams the answer") {
    InferenceRequest req = user_prompt("What is 1231 * 2331?");
    req.messages.push_back(Message{Role::assistant, "", "", "", {}});
    req.messages.push_back(
        Message{Role::assistant,
                "",
                "",
                "",
                {ToolCall{"call_1EYWDzueHEp8OsB8jJSEp7WB", "multiply", R"({"a": 1231, "b": 2331})"}}});
    req.messages.push_back(Message{Role::tool, "2869461", "", "call_1EYWDzueHEp8OsB8jJSEp7WB", {}});
    req.tools.push_back(ToolSpec{
        "multiply", "Multiply two numbers.",
        R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"type":"object"})"});
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o =
            run(openai("gpt-4o-mini"), req, true, rec("openai", "chat_stream_after_tool_result", "sse"), seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == R"(The result of \( 1231 \times 2331 \) is \( 2,869,461 \).)");
        CHECK(o.seen.text == r.content);
        CHECK(r.tool_calls.empty());
        CHECK(r.token_usage == TokenUsage{87, 26, 113, false});
        auto sent = o.body();
        auto expected = json::parse(test::fixture("wire/openai/chat_stream_after_tool_result_request.json"));
        CHECK(sent["messages"][2]["tool_calls"] == expected["messages"][2]["tool_calls"]);
        CHECK(sent["messages"][3] == expected["messages"][3]);
        CHECK(sent["tools"] == expected["tools"]);
    });
}

TEST_CASE("openai: chat_stream_parallel_tool_calls gives two calls in index order") {
    InferenceRequest req =
        user_prompt("Please retrieve the secrets associated with each of these passwords: mellon,radiance");
    req.system_prompt = "Use parallel tool calling.";
    req.tools.push_back(ToolSpec{
        "secret_retrieval_tool", "A tool that requires a password to retrieve a secret.",
        R"({"properties":{"password":{"title":"Password","type":"string"}},"required":["password"],"additionalProperties":false,"type":"object"})"});
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(openai("gpt-4o"), req, true, rec("openai", "chat_stream_parallel_tool_calls", "sse"), seed, piece);
        const auto& r = o.ok();
        REQUIRE(r.tool_calls.size() == 2);
        CHECK(r.tool_calls[0] ==
              ToolCall{"call_M26z19sncd7b4LBgzKRRbaUE", "secret_retrieval_tool", R"({"password": "mellon"})"});
        CHECK(r.tool_calls[1] ==
              ToolCall{"call_KPXe5NX7IcKkaBUhc6dto2QV", "secret_retrieval_tool", R"({"password": "radiance"})"});
        CHECK(o.seen.tools == r.tool_calls);
        CHECK(r.finish_reason == "tool_calls");
        CHECK(r.token_usage == TokenUsage{75, 53, 128, false});
        auto sent = o.body();
        CHECK(sent["messages"][0] == json({{"role", "system"}, {"content", "Use parallel tool calling."}}));
        CHECK(sent["tools"][0]["function"]["parameters"]["additionalProperties"] == false);
    });
}

TEST_CASE("openai: error_400_unsupported_parameter is a bad request with the provider's message") {
    auto req = user_prompt("hi");
    req.stop = {"\n"};
    for (bool stream : {false, true}) {
        auto o = run(openai("o3-mini"), req, stream, rec("openai", "error_400_unsupported_parameter", "json"));
        const auto& e = o.err();
        CHECK(e.code == ErrorCode::provider_bad_request);
        CHECK_FALSE(e.retryable);
        CHECK(e.http_status == 400);
        CHECK(e.details == "Unsupported parameter: 'stop' is not supported with this model.");
        CHECK_FALSE(e.retry_after.has_value());  // x-ratelimit-reset-* on a 400 means nothing
        CHECK(o.body()["stop"] == json::array({"\n"}));
        expect_no_key(e);
    }
}

TEST_CASE("openai: error_400_context_length_exceeded") {
    auto o = run(openai("gpt-3.5-turbo"), user_prompt("long"), false,
                 test::recorded("", "wire/openai/error_400_context_length_exceeded.json", 400));
    const auto& e = o.err();
    CHECK(e.code == ErrorCode::context_length_exceeded);
    CHECK_FALSE(e.retryable);
    CHECK(e.details.rfind("This model's maximum context length is 4097 tokens.", 0) == 0);
}

TEST_CASE("openai: error_401 is an auth failure - never retried - key not echoed") {
    for (bool stream : {false, true}) {
        auto o = run(openai(), user_prompt("hi"), stream, rec("openai", "error_401", "json"));
        const auto& e = o.err();
        CHECK(e.code == ErrorCode::auth_failed);
        CHECK_FALSE(e.retryable);
        CHECK(e.details ==
              "Incorrect API key provided: invalid-*****2345. You can find your API key at "
              "https://platform.openai.com/account/api-keys.");
        expect_no_key(e);
    }
    // A provider that echoes the key back verbatim gets it redacted.
    auto echo = rec("openai", "error_401", "json");
    echo.body = std::string(R"({"error":{"message":"Incorrect API key provided: )") + k_key + R"("}})";
    auto o = run(openai(), user_prompt("hi"), false, echo);
    expect_no_key(o.err());
    CHECK(o.err().details == "Incorrect API key provided: [redacted]");
}

TEST_CASE("openai: error_429_insufficient_quota is quota exhaustion - not retryable") {
    auto o = run(openai(), user_prompt("hi"), false,
                 test::recorded("", "wire/openai/error_429_insufficient_quota.json", 429));
    const auto& e = o.err();
    CHECK(e.code == ErrorCode::quota_exhausted);
    CHECK_FALSE(e.retryable);
    CHECK(e.http_status == 429);
    CHECK(e.details == "You exceeded your current quota, please check your plan and billing details.");
}

TEST_CASE("openai: error_429_responses_api headers: a rate limit with no reset information") {
    auto o = run(openai(), user_prompt("hi"), false, test::recorded("wire/openai/error_429_responses_api.headers", ""));
    const auto& e = o.err();
    CHECK(e.code == ErrorCode::rate_limit_exceeded);
    CHECK(e.retryable);
    CHECK_FALSE(e.retry_after.has_value());  // no retry-after, no x-ratelimit-*: nothing invented
}

TEST_CASE("openai: error_500 and error_503 are retryable") {
    auto o500 = run(openai(), user_prompt("hi"), false, test::recorded("", "wire/openai/error_500.json", 500));
    CHECK(o500.err().code == ErrorCode::provider_unavailable);
    CHECK(o500.err().retryable);
    CHECK(o500.err().details.rfind("The server had an error processing your request.", 0) == 0);
    auto o503 = run(openai(), user_prompt("hi"), true, test::recorded("", "wire/openai/error_503.json", 503));
    CHECK(o503.err().code == ErrorCode::provider_overloaded);
    CHECK(o503.err().retryable);
    CHECK(o503.err().details.rfind("That model is currently overloaded with other requests.", 0) == 0);
}

TEST_CASE("openai: a stream cut before [DONE] is E4604 - even with every content chunk received") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto cut = cut_before(rec("openai", "chat_stream_with_usage", "sse"), "data: [DONE]");
        auto o = run(openai("gpt-3.5-turbo"), user_prompt("Count from 1 to 5"), true, cut, seed, piece);
        CHECK(o.err().code == ErrorCode::streaming_error);
        CHECK(o.err().retryable);
        CHECK(o.seen.text == "1, 2, 3, 4, 5");  // delivered, yet not a clean finish
        CHECK(o.seen.finals == 0);
    });
}

TEST_CASE("openai: a connection reset mid-stream is E4604") {
    auto r = rec("openai", "chat_stream_text_gpt4o", "sse");
    r.cut_at = r.body.size() / 2;
    Error reset(ErrorCode::streaming_error, "connection reset");
    reset.retryable = true;
    r.error_after_cut = reset;
    auto o = run(openai(), user_prompt("What is 4200 + 42?"), true, r);
    CHECK(o.err().code == ErrorCode::streaming_error);
    CHECK(o.seen.finals == 0);
}

TEST_CASE("openai: a body that is not JSON is E4600") {
    auto bad = rec("openai", "chat_nonstream", "json");
    bad.body = "<html><body>502 Bad Gateway</body></html>";
    auto o = run(openai(), user_prompt("hi"), false, bad);
    CHECK(o.err().code == ErrorCode::parse_error);
    CHECK_FALSE(o.err().retryable);
    auto bad_stream = rec("openai", "chat_stream_text_gpt4o", "sse");
    bad_stream.body = "data: {\"choices\": [ oops\n\n";
    auto s = run(openai(), user_prompt("hi"), true, bad_stream);
    CHECK(s.err().code == ErrorCode::parse_error);
}

TEST_CASE("openai: no usage chunk (a compatible server without include_usage) → estimated usage") {
    auto r = rec("openai", "chat_stream_with_usage", "sse");
    // Drop the usage-only event.
    auto start = r.body.find(
        "data: {\"id\":\"chatcmpl-C6bjxzOr3Oz1rTiafksd6himIit3q\",\"object\":\"chat.completion.chunk\","
        "\"created\":1755691077,\"model\":\"gpt-3.5-turbo-0125\",\"service_tier\":\"default\","
        "\"system_fingerprint\":null,\"choices\":[]");
    REQUIRE(start != std::string::npos);
    auto end = r.body.find("\n\n", start);
    r.body.erase(start, end + 2 - start);
    auto req = user_prompt("Count from 1 to 5");
    auto o = run({"openai", "http://127.0.0.1:8080/v1", "local-model"}, req, true, r);
    const auto& resp = o.ok();
    CHECK(resp.content == "1, 2, 3, 4, 5");
    CHECK(resp.token_usage.estimated);
    CHECK(resp.metadata.at("usage_estimated") == "true");
    CHECK(resp.token_usage.prompt_tokens == estimate_prompt_tokens(req));
    CHECK(resp.token_usage.completion_tokens == estimate_tokens("1, 2, 3, 4, 5"));
    CHECK(resp.token_usage.total_tokens == resp.token_usage.prompt_tokens + resp.token_usage.completion_tokens);
    // A compatible server gets max_tokens, not max_completion_tokens.
    req.max_tokens = 10;
    auto o2 = run({"openai", "http://127.0.0.1:8080/v1", "local-model"}, req, true, r);
    CHECK(o2.body()["max_tokens"] == 10);
    CHECK_FALSE(o2.body().contains("max_completion_tokens"));
}

TEST_CASE("openai: the caller going away stops the stream (E4604 - not retryable)") {
    auto o = run(openai("gpt-3.5-turbo"), user_prompt("Count from 1 to 5"), true,
                 rec("openai", "chat_stream_with_usage", "sse"), 1, 16, /*stop_after=*/2);
    CHECK(o.err().code == ErrorCode::streaming_error);
    CHECK_FALSE(o.err().retryable);
    CHECK(o.seen.text == "1,");
    // The transfer stopped early: all 5214 bytes in pieces of at most 16 take at least 326 pieces.
    CHECK(o.pieces < 326);
}

TEST_CASE("openai: a cancelled token stops the transfer") {
    CancelToken cancel;
    cancel.cancelled = true;
    auto o = run(openai(), user_prompt("hi"), true, rec("openai", "chat_stream_text_gpt4o", "sse"), 1, 16, -1, &cancel);
    CHECK(o.err().code == ErrorCode::streaming_error);
    CHECK(o.seen.chunks == 0);
}

// ------------------------------------------------------------------ OpenAI-compatible

TEST_CASE("openrouter: error_429 with X-Ratelimit-Reset in epoch ms") {
    Setup s{"openai", "https://openrouter.ai/api/v1", "meta-llama/llama-3.2-3b-instruct:free"};
    s.id = "openrouter";
    s.wall_ms = epoch_ms(2025, 8, 8, 15, 40, 34);  // the recorded Date header
    auto req = user_prompt("Say exactly 'test response' and nothing else");
    req.temperature = 0.0;
    for (bool stream : {false, true}) {
        auto o = run(s, req, stream, rec("openrouter", "error_429", "json"));
        const auto& e = o.err();
        CHECK(e.code == ErrorCode::rate_limit_exceeded);
        CHECK(e.retryable);
        REQUIRE(e.retry_after.has_value());
        CHECK(e.retry_after->count() == 1754667660000 - 1754667634000);  // 26 s
        CHECK(e.details.rfind("Rate limit exceeded: limit_rpm/meta-llama/llama-3.2-3b-instruct/", 0) == 0);
        CHECK(o.sent.url == "https://openrouter.ai/api/v1/chat/completions");
        auto expected = json::parse(test::fixture("wire/openrouter/error_429_request.json"));
        CHECK(o.body()["messages"] == expected["messages"]);
        CHECK(o.body()["model"] == expected["model"]);
    }
}

TEST_CASE("ollama /v1: openai_compat_chat_completions through the OpenAI adapter") {
    Setup s{"openai", "http://127.0.0.1:11434/v1", "gemma3:4b"};
    s.id = "ollama-openai";
    auto o = run(s, user_prompt("What is 4200 + 42?"), false, rec("ollama", "openai_compat_chat_completions", "json"));
    const auto& r = o.ok();
    CHECK(r.content == "4200 + 42 = 4242\n");
    CHECK(r.token_usage == TokenUsage{21, 16, 37, false});
    CHECK(r.metadata.at("provider_model") == "gemma3:4b");
    CHECK(o.sent.url == "http://127.0.0.1:11434/v1/chat/completions");
    CHECK(o.body() == json::parse(test::fixture("wire/ollama/openai_compat_chat_completions_request.json")));
}

// ------------------------------------------------------------------ Anthropic

TEST_CASE("anthropic: messages_nonstream: content - usage - headers - default max_tokens") {
    auto o = run(anthropic("claude-sonnet-4-0"), user_prompt("What is 4200 + 42?"), false,
                 rec("anthropic", "messages_nonstream", "json"));
    const auto& r = o.ok();
    CHECK(r.content == "4200 + 42 = 4242");
    CHECK(r.finish_reason == "stop");
    CHECK(r.metadata.at("provider_finish_reason") == "end_turn");
    CHECK(r.token_usage == TokenUsage{17, 15, 32, false});
    CHECK(r.metadata.at("provider_model") == "claude-sonnet-4-20250514");
    CHECK(o.sent.url == "https://api.anthropic.com/v1/messages");
    CHECK(header_of(o.sent, "x-api-key") == k_key);
    CHECK(header_of(o.sent, "anthropic-version") == "2023-06-01");
    CHECK(header_of(o.sent, "Authorization").empty());
    auto body = o.body();
    auto recorded = json::parse(test::fixture("wire/anthropic/messages_nonstream_request.json"));
    CHECK(body["messages"] == recorded["messages"]);
    CHECK(body["model"] == recorded["model"]);
    CHECK(body["max_tokens"] == 4096);  // none requested: the model's 64000 capped at 4096
    CHECK_FALSE(body.contains("stream"));
}

TEST_CASE("anthropic: messages_nonstream_claude3opus with explicit max_tokens") {
    auto req = user_prompt("Hello, how are you?");
    req.max_tokens = 100;
    req.temperature = 0.0;
    auto o = run(anthropic("claude-3-opus-20240229"), req, false,
                 rec("anthropic", "messages_nonstream_claude3opus", "json"));
    const auto& r = o.ok();
    CHECK(r.content ==
          "Hello! As an AI language model, I don't have feelings, but I'm functioning properly and ready to assist "
          "you. How can I help you today?");
    CHECK(r.token_usage == TokenUsage{13, 35, 48, false});
    CHECK(r.metadata.at("provider_model") == "claude-3-opus-20240229");
    CHECK(o.body() == json::parse(test::fixture("wire/anthropic/messages_nonstream_claude3opus_request.json")));
}

TEST_CASE("anthropic: messages_stream - any split: text - usage = message_start input + message_delta output") {
    auto req = user_prompt("Say just hello");
    req.max_tokens = 8192;
    req.temperature = 1.0;
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(anthropic("claude-haiku-4-5-20251001"), req, true, rec("anthropic", "messages_stream", "sse"),
                     seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == "Hello");
        CHECK(o.seen.text == "Hello");
        CHECK(o.seen.opens == 1);  // at message_start, before the first text
        CHECK(o.seen.finals == 1);
        CHECK(r.token_usage == TokenUsage{10, 4, 14, false});
        CHECK(r.finish_reason == "stop");
        CHECK(r.metadata.at("provider_model") == "claude-haiku-4-5-20251001");
        auto body = o.body();
        auto recorded = json::parse(test::fixture("wire/anthropic/messages_stream_request.json"));
        CHECK(body["max_tokens"] == recorded["max_tokens"]);
        CHECK(body["model"] == recorded["model"]);
        CHECK(body["stream"] == true);
        CHECK(body["temperature"] == recorded["temperature"]);
        CHECK(body["messages"][0]["content"] == "Say just hello");  // plain string = one text block
    });
}

TEST_CASE("anthropic: messages_stream_tool_use: text - ping - two tool_use blocks from input_json_delta") {
    InferenceRequest req =
        user_prompt("Please retrieve the secrets associated with each of these passwords: mellon,radiance");
    req.system_prompt = "Use parallel tool calling.";
    req.max_tokens = 16000;
    req.tools.push_back(ToolSpec{
        "secret_retrieval_tool", "A tool that requires a password to retrieve a secret.",
        R"({"properties":{"password":{"title":"Password","type":"string"}},"required":["password"],"additionalProperties":false,"type":"object"})"});
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(anthropic("claude-sonnet-4-0"), req, true, rec("anthropic", "messages_stream_tool_use", "sse"),
                     seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == "I'll retrieve the secrets for both passwords you provided.");
        REQUIRE(r.tool_calls.size() == 2);
        CHECK(r.tool_calls[0] ==
              ToolCall{"toolu_015cUijgET79LXjgeYQerN2h", "secret_retrieval_tool", R"({"password": "mellon"})"});
        CHECK(r.tool_calls[1] ==
              ToolCall{"toolu_01XZTimPexA7h3EVKesnKt5T", "secret_retrieval_tool", R"({"password": "radiance"})"});
        CHECK(o.seen.tools == r.tool_calls);
        CHECK(r.finish_reason == "tool_calls");
        CHECK(r.metadata.at("provider_finish_reason") == "tool_use");
        CHECK(r.token_usage == TokenUsage{416, 109, 525, false});
        CHECK(r.metadata.at("provider_model") == "claude-sonnet-4-20250514");
        auto body = o.body();
        auto recorded = json::parse(test::fixture("wire/anthropic/messages_stream_tool_use_request.json"));
        CHECK(body["system"] == "Use parallel tool calling.");  // top-level, not a message
        CHECK(body["messages"] == recorded["messages"]);
        CHECK(body["tools"][0]["name"] == recorded["tools"][0]["name"]);
        CHECK(body["tools"][0]["description"] == recorded["tools"][0]["description"]);
        CHECK(body["tools"][0]["input_schema"] == recorded["tools"][0]["input_schema"]);
        CHECK(body["max_tokens"] == 16000);
    });
}

TEST_CASE("anthropic: the error event mid-stream (stream_error_event.sse) is an Error - not a finish") {
    auto r = rec("anthropic", "messages_stream", "sse");
    // Recorded start of a stream, then the SDK's error frame.
    auto cut = cut_before(r, "event: content_block_stop");
    cut.body += test::fixture("wire/anthropic/stream_error_event.sse");
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(anthropic(), user_prompt("Say just hello"), true, cut, seed, piece);
        const auto& e = o.err();
        CHECK(e.code == ErrorCode::provider_overloaded);
        CHECK(e.retryable);
        CHECK(e.details == "Overloaded");
        CHECK(o.seen.text == "Hello");
        CHECK(o.seen.finals == 0);
    });
    // The frame alone.
    auto alone = rec("anthropic", "messages_stream", "sse");
    alone.body = test::fixture("wire/anthropic/stream_error_event.sse");
    auto o = run(anthropic(), user_prompt("x"), true, alone);
    CHECK(o.err().code == ErrorCode::provider_overloaded);
}

TEST_CASE("anthropic: the observed mid-stream error payload (details:null - padding) maps the same") {
    auto r = rec("anthropic", "messages_stream", "sse");
    auto cut = cut_before(r, "event: ping");
    std::string payload = test::fixture("wire/anthropic/stream_error_event_observed_data.json");
    while (!payload.empty() && payload.back() == '\n') payload.pop_back();
    cut.body += "event: error\ndata: " + payload + "\n\n";
    auto o = run(anthropic(), user_prompt("x"), true, cut);
    CHECK(o.err().code == ErrorCode::provider_overloaded);
    CHECK(o.err().retryable);
    CHECK(o.err().details == "Overloaded");
}

TEST_CASE("anthropic: error_401 (x-should-retry: false)") {
    for (bool stream : {false, true}) {
        auto o = run(anthropic(), user_prompt("hi"), stream, rec("anthropic", "error_401", "json"));
        CHECK(o.err().code == ErrorCode::auth_failed);
        CHECK_FALSE(o.err().retryable);
        CHECK(o.err().details == "invalid x-api-key");
        expect_no_key(o.err());
    }
}

TEST_CASE("anthropic: error_429 with retry-after: 16 and the anthropic-ratelimit-* set") {
    auto o = run(anthropic(), user_prompt("hi"), true, rec("anthropic", "error_429", "json"));
    const auto& e = o.err();
    CHECK(e.code == ErrorCode::rate_limit_exceeded);
    CHECK(e.retryable);
    REQUIRE(e.retry_after.has_value());
    CHECK(e.retry_after->count() == 16000);
    CHECK(e.details == "This request would exceed your account's rate limit. Please try again later.");
}

TEST_CASE("anthropic: error_429 headers without retry-after fall back to the exhausted limit's reset") {
    auto r = rec("anthropic", "error_429", "json");
    r.head.headers.erase("retry-after");
    Setup s = anthropic();
    s.wall_ms = epoch_ms(2025, 6, 2, 15, 15, 30);
    auto o = run(s, user_prompt("hi"), false, r);
    REQUIRE(o.err().retry_after.has_value());
    // input-tokens-remaining is 0, reset 15:15:48: 18 s away.
    CHECK(o.err().retry_after->count() == 18000);
}

TEST_CASE("anthropic: error_429_input_tokens_per_minute (no headers)") {
    auto o = run(anthropic(), user_prompt("hi"), false,
                 test::recorded("", "wire/anthropic/error_429_input_tokens_per_minute.json", 429));
    CHECK(o.err().code == ErrorCode::rate_limit_exceeded);
    CHECK(o.err().retryable);
    CHECK_FALSE(o.err().retry_after.has_value());
    CHECK(o.err().details.rfind("Number of request tokens has exceeded your per-minute rate limit", 0) == 0);
}

TEST_CASE("anthropic: error_529 overloaded") {
    for (bool stream : {false, true}) {
        auto o = run(anthropic(), user_prompt("hi"), stream, rec("anthropic", "error_529", "json"));
        CHECK(o.err().code == ErrorCode::provider_overloaded);
        CHECK(o.err().retryable);
        CHECK_FALSE(o.err().retry_after.has_value());
        CHECK(o.err().details == "Overloaded");
    }
}

TEST_CASE("anthropic: a stream without message_stop is E4604") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto cut = cut_before(rec("anthropic", "messages_stream_tool_use", "sse"), "event: message_stop");
        auto o = run(anthropic(), user_prompt("x"), true, cut, seed, piece);
        CHECK(o.err().code == ErrorCode::streaming_error);
        CHECK(o.seen.finals == 0);
    });
}

TEST_CASE("anthropic: a body that is not JSON is E4600") {
    auto bad = rec("anthropic", "messages_nonstream", "json");
    bad.body = "{\"content\": [";
    CHECK(run(anthropic(), user_prompt("x"), false, bad).err().code == ErrorCode::parse_error);
}

// ------------------------------------------------------------------ Ollama

TEST_CASE("ollama: chat_nonstream: content - prompt_eval_count/eval_count - durations") {
    auto req = user_prompt("What is the PH of honey?");
    req.temperature = 0.0;
    auto o = run(ollama("llama3:8b"), req, false, rec("ollama", "chat_nonstream", "json"));
    const auto& r = o.ok();
    CHECK(r.content.size() == 1353);
    CHECK(r.content.rfind("A sweet question!\n\nThe pH of honey can vary depending on sev", 0) == 0);
    CHECK(r.content.substr(r.content.size() - 40) == "l of Apicultural Research, 52(1), 15-20.");
    CHECK(r.token_usage == TokenUsage{17, 358, 375, false});
    CHECK(r.finish_reason == "stop");
    CHECK(r.metadata.at("provider_model") == "llama3:8b");
    CHECK(r.metadata.at("ollama_total_duration_ns") == "579168209073");
    CHECK(r.metadata.at("ollama_eval_duration_ns") == "552034145799");
    CHECK(o.sent.url == "http://127.0.0.1:11434/api/chat");
    CHECK(o.body() == json::parse(test::fixture("wire/ollama/chat_nonstream_request.json")));
}

TEST_CASE("ollama: chat_stream (NDJSON) - any split") {
    auto req = user_prompt("Count from 1 to 5");
    req.max_tokens = 50;
    req.temperature = 0.0;
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(ollama("gemma3:1b"), req, true, rec("ollama", "chat_stream", "ndjson"), seed, piece);
        const auto& r = o.ok();
        CHECK(r.content == "Okay, here we go!\n\n1, 2, 3, 4, 5\n");
        CHECK(o.seen.text == r.content);
        CHECK(o.seen.chunks == 21);  // 21 done:false lines, each with text
        CHECK(r.token_usage == TokenUsage{16, 22, 38, false});
        CHECK(r.metadata.at("provider_model") == "gemma3:1b");
        CHECK(r.metadata.at("ollama_total_duration_ns") == "171946792");
        auto body = o.body();
        auto recorded = json::parse(test::fixture("wire/ollama/chat_stream_request.json"));
        CHECK(body["messages"] == recorded["messages"]);
        CHECK(body["options"] == recorded["options"]);
        CHECK(body["stream"] == true);
    });
}

TEST_CASE("ollama: a stream without the done:true line is E4604") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto cut = cut_before(rec("ollama", "chat_stream", "ndjson"),
                              "{\"model\":\"gemma3:1b\",\"created_at\":\"2025-08-20T13:48:24.421331Z\"");
        auto o = run(ollama("gemma3:1b"), user_prompt("x"), true, cut, seed, piece);
        CHECK(o.err().code == ErrorCode::streaming_error);
        CHECK(o.seen.text == "Okay, here we go!\n\n1, 2, 3, 4, 5\n");
    });
}

TEST_CASE("ollama: an error line mid-stream and a non-JSON line") {
    auto r = rec("ollama", "chat_stream", "ndjson");
    auto cut = cut_before(r, "{\"model\":\"gemma3:1b\",\"created_at\":\"2025-08-20T13:48:24.331");
    auto with_error = cut;
    with_error.body += "{\"error\":\"model runner has unexpectedly stopped\"}\n";
    auto o = run(ollama("gemma3:1b"), user_prompt("x"), true, with_error);
    CHECK(o.err().code == ErrorCode::provider_unavailable);
    CHECK(o.err().details == "model runner has unexpectedly stopped");
    auto garbage = cut;
    garbage.body += "not json\n";
    CHECK(run(ollama("gemma3:1b"), user_prompt("x"), true, garbage).err().code == ErrorCode::parse_error);
}

TEST_CASE("ollama: tags for health and the installed models") {
    ProviderInfo info{"ollama", "ollama", "http://127.0.0.1:11434", "", "OLLAMA_URL", {}, 0};
    ProviderConfig cfg{&info, info.base_url, "", true, ""};
    test::FakeTransport t(3, 128);
    t.push(rec("ollama", "tags", "json"));
    ManualClock clock;
    auto p = make_provider(cfg, t, clock);
    REQUIRE(p);
    auto h = (*p)->health_check(std::chrono::milliseconds(2000));
    CHECK(h.state == HealthState::healthy);
    CHECK(h.message == "24 models installed");
    CHECK(t.last_request().method == "GET");
    CHECK(t.last_request().url == "http://127.0.0.1:11434/api/tags");
    auto names = ollama_installed_models(t, clock, "http://127.0.0.1:11434", std::chrono::milliseconds(2000));
    REQUIRE(names);
    REQUIRE(names->size() == 24);
    CHECK(names->front() == "llama3:8b");
    CHECK((*names)[20] == "llama3.2:3b");
    CHECK(names->back() == "qwen3:32b");
}

// ------------------------------------------------------------------ Gemini

TEST_CASE("gemini: generate_content: text - usageMetadata with thoughts - key in a header") {
    auto o = run(gemini(), user_prompt("What is 4200 + 42?"), false, rec("gemini", "generate_content", "json"));
    const auto& r = o.ok();
    CHECK(r.content ==
          "To calculate 4200 + 42:\n\n*   **Hundreds, thousands:** 4200\n*   **Tens, ones:** 42\n\nAdding them "
          "together:\n4200\n+  42\n-----\n4242\n\nSo, 4200 + 42 = **4242**.");
    // completion = candidatesTokenCount 77 + thoughtsTokenCount 25 (billed as output).
    CHECK(r.token_usage == TokenUsage{13, 102, 115, false});
    CHECK(r.metadata.at("reasoning_tokens") == "25");
    CHECK(r.finish_reason == "stop");
    CHECK(r.metadata.at("provider_model") == "gemini-2.5-flash");
    CHECK(o.sent.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
    CHECK(o.sent.url.find(k_key) == std::string::npos);
    CHECK(header_of(o.sent, "x-goog-api-key") == k_key);
    CHECK(o.body() == json::parse(test::fixture("wire/gemini/generate_content_request.json")));
}

TEST_CASE("gemini: stream_generate_content (SSE with \\r\\n\\r\\n) - any split") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run(gemini(), user_prompt("What is 4200 + 42?"), true, rec("gemini", "stream_generate_content", "sse"),
                     seed, piece);
        const auto& r = o.ok();
        CHECK(
            r.content ==
            "To find the sum of 4200 + 42, we can align the numbers by their place values:\n\n  4200\n+   42\n------\n "
            " 4242\n\nSo, 4200 + 42 = **4242**.");
        CHECK(o.seen.text == r.content);
        CHECK(o.seen.chunks == 2);
        // The last usageMetadata: 13 prompt, 63 candidates + 75 thoughts, total 151.
        CHECK(r.token_usage == TokenUsage{13, 138, 151, false});
        CHECK(r.metadata.at("provider_model") == "gemini-2.5-flash");
        CHECK(o.sent.url ==
              "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        CHECK(o.body() == json::parse(test::fixture("wire/gemini/stream_generate_content_request.json")));
    });
}

TEST_CASE("gemini: a stream without a finishReason is E4604 (there is no [DONE])") {
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto cut = cut_before(rec("gemini", "stream_generate_content", "sse"),
                              "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"00 + 42");
        auto o = run(gemini(), user_prompt("x"), true, cut, seed, piece);
        CHECK(o.err().code == ErrorCode::streaming_error);
        CHECK(o.seen.finals == 0);
    });
}

TEST_CASE("gemini: an error body with RetryInfo is a rate limit with its delay") {
    auto r = rec("gemini", "generate_content", "json");
    r.head.status = 429;
    // Shape of Google's RESOURCE_EXHAUSTED answer (hand-written, not a recording).
    r.body =
        R"({"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17s"}]}})";
    auto o = run(gemini(), user_prompt("x"), false, r);
    CHECK(o.err().code == ErrorCode::rate_limit_exceeded);
    CHECK(o.err().retryable);
    REQUIRE(o.err().retry_after.has_value());
    CHECK(o.err().retry_after->count() == 17000);
    auto bad = rec("gemini", "generate_content", "json");
    bad.body = "]]";
    CHECK(run(gemini(), user_prompt("x"), false, bad).err().code == ErrorCode::parse_error);
}

// ------------------------------------------------------------------ transport failures

TEST_CASE("every adapter passes transport failures through unchanged in kind") {
    for (const Setup& s : {openai(), anthropic(), ollama(), gemini()}) {
        CAPTURE(s.kind);
        test::FakeResponse refused;
        Error e(ErrorCode::provider_unavailable, "cannot reach http://127.0.0.1:1: Couldn't connect to server");
        e.retryable = true;
        refused.error_before_head = e;
        for (bool stream : {false, true}) {
            auto o = run(s, user_prompt("x"), stream, refused);
            CHECK(o.err().code == ErrorCode::provider_unavailable);
            CHECK(o.err().retryable);
        }
        test::FakeResponse timed_out;
        Error t(ErrorCode::timeout, "upstream timed out");
        t.retryable = true;
        timed_out.error_before_head = t;
        CHECK(run(s, user_prompt("x"), true, timed_out).err().code == ErrorCode::timeout);
    }
}

TEST_CASE("openai: a compatible server that answers a stream request with one JSON body") {
    // Ollama's /v1 completion served where an event stream was asked for.
    auto r = rec("ollama", "openai_compat_chat_completions", "json");
    for_each_split([&](std::uint64_t seed, std::size_t piece) {
        auto o = run({"openai", "http://127.0.0.1:11434/v1", "gemma3:4b"}, user_prompt("What is 4200 + 42?"), true, r,
                     seed, piece);
        const auto& resp = o.ok();
        CHECK(resp.content == "4200 + 42 = 4242\n");
        CHECK(o.seen.text == resp.content);
        CHECK(resp.token_usage == TokenUsage{21, 16, 37, false});
    });
    // ...or with an error object: mapped, not a truncated stream.
    auto err = rec("ollama", "openai_compat_chat_completions", "json");
    err.body = R"({"error":{"message":"model 'x' not found","type":"invalid_request_error","code":"model_not_found"}})";
    auto o = run({"openai", "http://127.0.0.1:11434/v1", "x"}, user_prompt("hi"), true, err);
    CHECK(o.err().code == ErrorCode::provider_model_not_found);
    CHECK(o.err().details == "model 'x' not found");
}
