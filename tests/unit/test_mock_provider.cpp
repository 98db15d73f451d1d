#include <l04/provider/mock.hpp>

#include <doctest/doctest.h>

using namespace l04;

namespace {
struct Call {
    InferenceRequest req;
    ModelInfo model;
    Call(const std::string& prompt, std::map<std::string, std::string> options = {}) {
        req.messages.push_back({Role::user, prompt, {}, {}, {}});
        for (const auto& [k, v] : options) req.options[k] = option_from_text(v);
        model.id = "mock";
        model.name = "mock";
        model.provider = "mock";
    }
    ProviderRequest pr() const { return ProviderRequest{req, model}; }
};
}  // namespace

TEST_CASE("mock: deterministic answer derived from the prompt - streamed in several chunks") {
    ManualClock clock;
    MockProvider p("mock", clock);
    Call a("tell me a joke");
    auto r1 = p.complete(a.pr());
    auto r2 = p.complete(a.pr());
    REQUIRE(r1);
    CHECK(r1->content == r2->content);
    CHECK(r1->content.find("tell me a joke") != std::string::npos);
    Call b("tell me a story");
    CHECK(p.complete(b.pr())->content != r1->content);

    std::vector<StreamChunk> chunks;
    auto s = p.stream(a.pr(), [&](const StreamChunk& c) {
        chunks.push_back(c);
        return true;
    });
    REQUIRE(s);
    REQUIRE(chunks.size() >= 4);
    CHECK(chunks.back().is_final);
    REQUIRE(chunks.back().usage.has_value());
    std::string joined;
    for (const auto& c : chunks) joined += c.delta;
    CHECK(joined == r1->content);
    CHECK(s->content == r1->content);
    CHECK(s->token_usage.total_tokens == s->token_usage.prompt_tokens + s->token_usage.completion_tokens);
    CHECK_FALSE(s->token_usage.estimated);
}

TEST_CASE("mock: options reply - usage - latency and chunk delay on the injected clock") {
    ManualClock clock;
    MockProvider p("mock", clock);
    Call c("x", {{"reply", "a b c d e f g h i"}, {"usage_prompt_tokens", "11"}, {"usage_completion_tokens", "22"},
                 {"latency_ms", "500"}, {"chunk_delay_ms", "100"}});
    int n = 0;
    auto r = p.stream(c.pr(), [&](const StreamChunk& ch) {
        if (!ch.is_final) ++n;
        return true;
    });
    REQUIRE(r);
    CHECK(r->content == "a b c d e f g h i");
    CHECK(r->token_usage.prompt_tokens == 11);
    CHECK(r->token_usage.completion_tokens == 22);
    CHECK(clock.now() == std::chrono::milliseconds(500 + 100 * (n - 1)));
    CHECK(MockProvider::chunks_of("hi").size() >= 2);
}

TEST_CASE("mock: fail_status fails like a provider answering that status") {
    ManualClock clock;
    MockProvider p("mock", clock);
    struct Case {
        int status;
        ErrorCode code;
        bool retryable;
    };
    for (auto [status, code, retryable] : {Case{429, ErrorCode::rate_limit_exceeded, true}, Case{500, ErrorCode::provider_unavailable, true},
                                           Case{503, ErrorCode::provider_overloaded, true}, Case{401, ErrorCode::auth_failed, false},
                                           Case{400, ErrorCode::provider_bad_request, false}}) {
        Call c("x", {{"fail_status", std::to_string(status)}, {"retry_after", "7"}});
        auto r = p.complete(c.pr());
        REQUIRE_FALSE(r);
        CHECK(r.error().code == code);
        CHECK(r.error().retryable == retryable);
        // Retry-After only matters where waiting helps (429, 5xx).
        if (status == 429 || status >= 500) CHECK(r.error().retry_after == std::chrono::milliseconds(7000));
        else CHECK_FALSE(r.error().retry_after.has_value());
    }
}

TEST_CASE("mock: fail_after_chunks breaks the stream with E4604 and a cancelled caller stops it") {
    ManualClock clock;
    MockProvider p("mock", clock);
    Call c("x", {{"reply", "one two three four five six seven eight nine ten"}, {"fail_after_chunks", "1"}});
    int n = 0;
    auto r = p.stream(c.pr(), [&](const StreamChunk&) {
        ++n;
        return true;
    });
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::streaming_error);
    CHECK(n == 1);

    Call d("x", {{"reply", "one two three four five six seven eight nine ten"}});
    int m = 0;
    auto gone = p.stream(d.pr(), [&](const StreamChunk&) { return ++m < 2; });
    REQUIRE_FALSE(gone);
    CHECK(m == 2);
}

TEST_CASE("mock: chunks never cut a UTF-8 character") {
    for (const std::string& text : {std::string("你好"), std::string("日本語のテキスト"), std::string("é"), std::string("a€b")}) {
        auto pieces = MockProvider::chunks_of(text);
        std::string joined;
        for (const auto& p : pieces) {
            joined += p;
            REQUIRE_FALSE(p.empty());
            // No piece starts with a continuation byte.
            CHECK((static_cast<unsigned char>(p[0]) & 0xC0) != 0x80);
        }
        CHECK(joined == text);
    }
}
