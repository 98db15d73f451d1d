// The adapters over the real libcurl transport against a local HTTP/1.1
// server (FixtureServer on 127.0.0.1) serving the recorded bodies with their
// recorded headers: keep-alive, chunked streaming, and injected faults
// (429 + Retry-After, 503, reset mid-stream, stall past the timeout,
// malformed JSON, no answer, nothing listening).
#include "support/fixture_server.hpp"
#include "support/test_util.hpp"

#include <l04/core/clock.hpp>
#include <l04/http/curl_transport.hpp>
#include <l04/http/http1_transport.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>
#include <nlohmann/json.hpp>

using namespace l04;
using nlohmann::json;
using test::Fault;
using test::FixtureServer;
using test::Route;

namespace {

// What l04 uses (the HTTP/1.1 client for these 127.0.0.1 URLs), or libcurl
// when L04_TEST_TRANSPORT=curl (CTest runs these cases both ways).
std::shared_ptr<Transport> test_transport() {
    const char* t = std::getenv("L04_TEST_TRANSPORT");
    if (t && std::string(t) == "curl") return make_curl_transport();
    return make_transport(false);
}

constexpr const char* k_key = "sk-test-http-SECRET-abcdef";

// One adapter wired to the server through a real CurlTransport.
struct Client {
    ProviderInfo info;
    ModelInfo model;
    ProviderConfig cfg;
    std::shared_ptr<Transport> transport = test_transport();
    SystemClock& clock = SystemClock::instance();
    std::unique_ptr<Provider> provider;

    Client(const std::string& kind, const std::string& base_url, const std::string& model_name) {
        info.id = kind;
        info.kind = kind;
        info.base_url = base_url;
        model.id = model_name;
        model.provider = kind;
        model.name = model_name;
        model.max_output_tokens = 8192;
        cfg.info = &info;
        cfg.base_url = base_url;
        cfg.api_key = kind == "ollama" ? "" : k_key;
        cfg.configured = true;
        auto p = make_provider(cfg, *transport, clock);
        REQUIRE(p);
        provider = std::move(*p);
    }

    Result<InferenceResponse> complete(const InferenceRequest& r,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return provider->complete(ProviderRequest{r, model, timeout, nullptr});
    }
    Result<InferenceResponse> stream(const InferenceRequest& r, std::string& seen,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                     const CancelToken* cancel = nullptr, std::function<void()> on_first = {}) {
        return provider->stream(ProviderRequest{r, model, timeout, cancel}, [&](const StreamChunk& c) {
            if (!c.is_final) {
                if (seen.empty() && !c.delta.empty() && on_first) on_first();
                seen += c.delta;
            }
            return true;
        });
    }
};

InferenceRequest prompt(const std::string& text) {
    InferenceRequest r;
    r.request_id = "req_http";
    r.messages.push_back(Message{Role::user, text, "", "", {}});
    return r;
}

}  // namespace

TEST_CASE("http openai: non-streamed and streamed over one kept-alive connection") {
    FixtureServer server;
    server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                               "wire/openai/chat_nonstream.json"));
    Client c("openai", server.base_url() + "/v1", "gpt-4o");
    auto r1 = c.complete(prompt("What is 4200 + 42?"));
    REQUIRE(r1);
    CHECK(r1->content == R"(\(4200 + 42 = 4242\).)");
    CHECK(r1->token_usage == TokenUsage{16, 12, 28, false});

    server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_tool_calls_with_usage.headers",
                               "wire/openai/chat_stream_tool_calls_with_usage.sse"));
    std::string seen;
    auto r2 = c.stream(prompt("What is 1231 * 2331?"), seen);
    REQUIRE(r2);
    REQUIRE(r2->tool_calls.size() == 1);
    CHECK(r2->tool_calls[0] == ToolCall{"call_1EYWDzueHEp8OsB8jJSEp7WB", "multiply", R"({"a":1231,"b":2331})"});
    CHECK(r2->token_usage == TokenUsage{54, 20, 74, false});

    server.add(Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                               "wire/openai/chat_stream_with_usage.sse"));
    seen.clear();
    auto r3 = c.stream(prompt("Count from 1 to 5"), seen);
    REQUIRE(r3);
    CHECK(seen == "1, 2, 3, 4, 5");
    CHECK(r3->token_usage == TokenUsage{14, 13, 27, false});

    CHECK(server.connections_accepted() == 1);  // keep-alive: three requests, one connection
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 3);
    CHECK(reqs[0].target == "/v1/chat/completions");
    CHECK(reqs[0].headers.at("authorization") == std::string("Bearer ") + k_key);
    CHECK(json::parse(reqs[0].body)["model"] == "gpt-4o");
    CHECK_FALSE(json::parse(reqs[0].body).contains("stream"));
    CHECK(json::parse(reqs[2].body)["stream_options"]["include_usage"] == true);
}

TEST_CASE("http openai: concurrent requests keep their connections for the next ones") {
    // libcurl trims its shared connection cache to the finishing handle's
    // MAXCONNECTS (default 5): with more requests in flight than that, the
    // connections of the others were closed and the next round connected
    // again.
    FixtureServer server;
    auto route = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                 "wire/openai/chat_nonstream.json");
    route.chunked = true;  // each answer takes a few paced pieces, so the requests overlap
    route.chunk_size = 128;
    route.chunk_delay = std::chrono::milliseconds(30);
    server.add(route);
    Client c("openai", server.base_url() + "/v1", "gpt-4o");
    constexpr int k_parallel = 12;
    for (int round = 0; round < 3; ++round) {
        std::atomic<int> ok{0};
        std::vector<std::thread> threads;
        for (int i = 0; i < k_parallel; ++i)
            threads.emplace_back([&] {
                if (auto r = c.complete(prompt("What is 4200 + 42?")); r && r->content == R"(\(4200 + 42 = 4242\).)") ++ok;
            });
        for (auto& t : threads) t.join();
        REQUIRE(ok == k_parallel);
    }
    // Never more connections than requests were in flight at once.
    CHECK(server.connections_accepted() <= k_parallel);
    CHECK(server.requests().size() == 3 * k_parallel);
}

TEST_CASE("http openai: a paced stream reaches the sink piece by piece - not buffered whole") {
    FixtureServer server;
    auto route = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                                 "wire/openai/chat_stream_with_usage.sse");
    route.chunked = true;
    route.chunk_size = 256;                             // 21 pieces
    route.chunk_delay = std::chrono::milliseconds(40);  // 800 ms from first to last
    server.add(route);
    Client c("openai", server.base_url() + "/v1", "gpt-4o");
    std::string seen;
    const auto t0 = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point first;
    auto r = c.stream(prompt("Count from 1 to 5"), seen, std::chrono::seconds(10), nullptr,
                      [&] { first = std::chrono::steady_clock::now(); });
    const auto total = std::chrono::steady_clock::now() - t0;
    REQUIRE(r);
    CHECK(seen == "1, 2, 3, 4, 5");
    CHECK(total >= std::chrono::milliseconds(750));
    // The first content delta ends in the third piece (80 ms in).
    CHECK(first - t0 < total / 3);
}

TEST_CASE("http openai: health") {
    FixtureServer server;
    Route models;
    models.method = "GET";
    models.path = "/v1/models";
    models.headers = {{"Content-Type", "application/json"}};
    models.body =
        R"({"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini","object":"model"}]})";
    server.add(models);
    Client c("openai", server.base_url() + "/v1", "gpt-4o-mini");
    auto h = c.provider->health_check(std::chrono::milliseconds(2000));
    CHECK(h.state == HealthState::healthy);
    CHECK(h.message == "2 models listed");
    CHECK(server.requests().back().method == "GET");

    server.add(Route::recorded("GET", "/v1/models", "wire/openai/error_401.headers", "wire/openai/error_401.json"));
    auto bad = c.provider->health_check(std::chrono::milliseconds(2000));
    CHECK(bad.state == HealthState::unhealthy);
    CHECK(bad.message.find("E4203") != std::string::npos);
    CHECK(bad.message.find(k_key) == std::string::npos);
}

TEST_CASE("http anthropic: streamed (chunked) and not") {
    FixtureServer server;
    server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_stream_tool_use.headers",
                               "wire/anthropic/messages_stream_tool_use.sse"));
    Client c("anthropic", server.base_url(), "claude-sonnet-4-0");
    std::string seen;
    auto r = c.stream(prompt("passwords: mellon,radiance"), seen);
    REQUIRE(r);
    CHECK(seen == "I'll retrieve the secrets for both passwords you provided.");
    REQUIRE(r->tool_calls.size() == 2);
    CHECK(r->tool_calls[1].arguments == R"({"password": "radiance"})");
    CHECK(r->token_usage == TokenUsage{416, 109, 525, false});

    server.add(Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_nonstream.headers",
                               "wire/anthropic/messages_nonstream.json"));
    auto n = c.complete(prompt("What is 4200 + 42?"));
    REQUIRE(n);
    CHECK(n->content == "4200 + 42 = 4242");
    CHECK(n->token_usage == TokenUsage{17, 15, 32, false});
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].headers.at("x-api-key") == k_key);
    CHECK(reqs[0].headers.at("anthropic-version") == "2023-06-01");
    CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http ollama: NDJSON stream - chat - tags") {
    FixtureServer server;
    server.add(
        Route::recorded("POST", "/api/chat", "wire/ollama/chat_stream.headers", "wire/ollama/chat_stream.ndjson"));
    server.add(Route::recorded("GET", "/api/tags", "wire/ollama/tags.headers", "wire/ollama/tags.json"));
    Client c("ollama", server.base_url(), "gemma3:1b");
    std::string seen;
    auto r = c.stream(prompt("Count from 1 to 5"), seen);
    REQUIRE(r);
    CHECK(seen == "Okay, here we go!\n\n1, 2, 3, 4, 5\n");
    CHECK(r->token_usage == TokenUsage{16, 22, 38, false});
    CHECK(server.requests()[0].headers.count("authorization") == 0);

    server.add(
        Route::recorded("POST", "/api/chat", "wire/ollama/chat_nonstream.headers", "wire/ollama/chat_nonstream.json"));
    auto n = c.complete(prompt("What is the PH of honey?"));
    REQUIRE(n);
    CHECK(n->token_usage == TokenUsage{17, 358, 375, false});

    auto h = c.provider->health_check(std::chrono::milliseconds(2000));
    CHECK(h.state == HealthState::healthy);
    CHECK(h.message == "24 models installed");
    auto names = ollama_installed_models(*c.transport, c.clock, server.base_url(), std::chrono::milliseconds(2000));
    REQUIRE(names);
    CHECK(names->size() == 24);
    CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http gemini: streamGenerateContent?alt=sse and generateContent") {
    FixtureServer server;
    server.add(Route::recorded("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                               "wire/gemini/stream_generate_content.headers",
                               "wire/gemini/stream_generate_content.sse"));
    server.add(Route::recorded("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                               "wire/gemini/generate_content.headers", "wire/gemini/generate_content.json"));
    Client c("gemini", server.base_url(), "gemini-2.5-flash");
    std::string seen;
    auto r = c.stream(prompt("What is 4200 + 42?"), seen);
    REQUIRE(r);
    CHECK(seen.substr(seen.size() - 19) == "00 + 42 = **4242**.");
    CHECK(r->token_usage == TokenUsage{13, 138, 151, false});
    auto n = c.complete(prompt("What is 4200 + 42?"));
    REQUIRE(n);
    CHECK(n->token_usage == TokenUsage{13, 102, 115, false});
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].target == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    CHECK(reqs[0].headers.at("x-goog-api-key") == k_key);
    CHECK(reqs[1].target == "/v1beta/models/gemini-2.5-flash:generateContent");
}

TEST_CASE("http faults: 429 with Retry-After and 503") {
    FixtureServer server;
    Route limited =
        Route::recorded("POST", "/v1/messages", "wire/anthropic/error_429.headers", "wire/anthropic/error_429.json");
    server.add(limited);
    Client a("anthropic", server.base_url(), "claude-haiku-4-5");
    for (bool stream : {false, true}) {
        std::string seen;
        auto r = stream ? a.stream(prompt("hi"), seen) : a.complete(prompt("hi"));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == ErrorCode::rate_limit_exceeded);
        CHECK(r.error().retryable);
        REQUIRE(r.error().retry_after.has_value());
        CHECK(r.error().retry_after->count() == 16000);
    }
    Route unavailable;
    unavailable.path = "/v1/chat/completions";
    unavailable.status = 503;
    unavailable.reason = "Service Unavailable";
    unavailable.headers = {{"Content-Type", "application/json"}, {"Retry-After", "2"}};
    unavailable.body = test::fixture("wire/openai/error_503.json");
    server.add(unavailable);
    Client o("openai", server.base_url() + "/v1", "gpt-4o");
    auto r = o.complete(prompt("hi"));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::provider_overloaded);
    CHECK(r.error().retryable);
    CHECK(r.error().retry_after == std::chrono::milliseconds(2000));
}

TEST_CASE("http faults: connection reset mid-stream is E4604 after the first chunks") {
    FixtureServer server;
    for (std::string kind : {"openai", "anthropic", "ollama"}) {
        CAPTURE(kind);
        Route r;
        std::string base = server.base_url();
        std::string expect_prefix;
        if (kind == "openai") {
            r = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                                "wire/openai/chat_stream_with_usage.sse");
            base += "/v1";
        } else if (kind == "anthropic") {
            r = Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_stream.headers",
                                "wire/anthropic/messages_stream.sse");
        } else {
            r = Route::recorded("POST", "/api/chat", "wire/ollama/chat_stream.headers",
                                "wire/ollama/chat_stream.ndjson");
        }
        r.fault = Fault::reset_mid_body;
        // Two thirds in; for the short Anthropic stream, right after the text delta.
        r.fault_at = kind == "anthropic" ? r.body.find("event: content_block_stop") : r.body.size() * 2 / 3;
        server.add(r);
        Client c(kind, base, "m");
        std::string seen;
        auto res = c.stream(prompt("x"), seen);
        REQUIRE_FALSE(res);
        CHECK(res.error().code == ErrorCode::streaming_error);
        CHECK(res.error().retryable);
        CHECK_FALSE(seen.empty());  // chunks arrived before the reset
        CHECK(res.error().message.find(k_key) == std::string::npos);
    }
}

TEST_CASE("http faults: a stall past the total timeout is E4202 - and stop() ends the stall") {
    FixtureServer server;
    Route r = Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                              "wire/openai/chat_stream_with_usage.sse");
    r.fault = Fault::stall_mid_body;
    r.fault_at = 1000;
    server.add(r);
    Client c("openai", server.base_url() + "/v1", "gpt-3.5-turbo");
    std::string seen;
    const auto t0 = std::chrono::steady_clock::now();
    auto res = c.stream(prompt("x"), seen, std::chrono::milliseconds(300));
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(res);
    CHECK(res.error().code == ErrorCode::timeout);
    CHECK(res.error().retryable);
    CHECK(seen == "1,");  // the events in the first 1000 bytes
    CHECK(took < std::chrono::seconds(5));
    const auto s0 = std::chrono::steady_clock::now();
    server.stop();  // the stalled connection thread exits at once
    CHECK(std::chrono::steady_clock::now() - s0 < std::chrono::seconds(2));
}

TEST_CASE("http faults: a cancel token ends a stalled stream") {
    FixtureServer server;
    Route r = Route::recorded("POST", "/v1/messages", "wire/anthropic/messages_stream.headers",
                              "wire/anthropic/messages_stream.sse");
    r.fault = Fault::stall_mid_body;
    r.fault_at = r.body.find("event: content_block_stop");
    server.add(r);
    Client c("anthropic", server.base_url(), "claude-haiku-4-5");
    CancelToken cancel;
    std::string seen;
    // The caller goes away once the first text arrived; the upstream then says nothing.
    auto res = c.stream(prompt("x"), seen, std::chrono::seconds(20), &cancel, [&] { cancel.cancelled = true; });
    REQUIRE_FALSE(res);
    CHECK(res.error().code == ErrorCode::streaming_error);
    CHECK(seen == "Hello");
}

TEST_CASE("http faults: malformed JSON - no answer - nothing listening") {
    FixtureServer server;
    Route bad;
    bad.path = "/v1/chat/completions";
    bad.headers = {{"Content-Type", "application/json"}};
    bad.body = R"({"id":"chatcmpl-x","choices":[{"message":{"content":"trunc)";
    server.add(bad);
    Client c("openai", server.base_url() + "/v1", "gpt-4o");
    auto r = c.complete(prompt("x"));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::parse_error);
    CHECK_FALSE(r.error().retryable);

    Route silent;
    silent.path = "/v1/chat/completions";
    silent.fault = Fault::close_without_answer;
    server.add(silent);
    auto s = c.complete(prompt("x"));
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::provider_unavailable);
    CHECK(s.error().retryable);

    std::string dead_url;
    {
        FixtureServer gone;
        dead_url = gone.base_url();
    }
    Client d("openai", dead_url + "/v1", "gpt-4o");
    auto t = d.complete(prompt("x"));
    REQUIRE_FALSE(t);
    CHECK(t.error().code == ErrorCode::provider_unavailable);
    CHECK(t.error().retryable);
    CHECK(t.error().message.find("127.0.0.1") != std::string::npos);
    CHECK(t.error().message.find("/chat/completions") == std::string::npos);  // no path, no query, no key
    auto h = d.provider->health_check(std::chrono::milliseconds(1000));
    CHECK(h.state == HealthState::unhealthy);
}
