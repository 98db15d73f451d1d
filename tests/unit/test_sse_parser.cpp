// SseParser and NdjsonParser: fed whole, byte by byte and in random splits,
// they must give the same events; the field rules of the SSE specification.
#include "support/test_util.hpp"

#include <l04/http/ndjson_parser.hpp>
#include <l04/http/sse_parser.hpp>

#include <doctest/doctest.h>

#include <random>

using namespace l04;

namespace {

std::vector<SseEvent> parse_whole(std::string_view body) {
    SseParser p;
    std::vector<SseEvent> out;
    REQUIRE(p.feed(body, out));
    REQUIRE(p.finish(out));
    return out;
}

std::vector<SseEvent> parse_bytewise(std::string_view body) {
    SseParser p;
    std::vector<SseEvent> out;
    for (char c : body) REQUIRE(p.feed(std::string_view(&c, 1), out));
    REQUIRE(p.finish(out));
    return out;
}

std::vector<SseEvent> parse_random(std::string_view body, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    SseParser p;
    std::vector<SseEvent> out;
    std::size_t pos = 0;
    while (pos < body.size()) {
        std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);  // empty feeds too
        n = std::min(n, body.size() - pos);
        REQUIRE(p.feed(body.substr(pos, n), out));
        pos += n;
    }
    REQUIRE(p.finish(out));
    return out;
}

std::vector<std::string> ndjson_whole(std::string_view body) {
    NdjsonParser p;
    std::vector<std::string> out;
    REQUIRE(p.feed(body, out));
    REQUIRE(p.finish(out));
    return out;
}

}  // namespace

TEST_CASE("sse: every recorded stream parses the same whole - byte by byte and in random splits") {
    struct Case {
        const char* file;
        std::size_t events;
    };
    // Event counts counted in the fixture files (blocks with a data: line).
    const Case cases[] = {
        {"wire/openai/chat_stream_with_usage.sse", 17},
        {"wire/openai/chat_stream_text_gpt4o.sse", 14},
        {"wire/openai/chat_stream_tool_calls_with_usage.sse", 15},
        {"wire/openai/chat_stream_after_tool_result.sse", 28},
        {"wire/openai/chat_stream_parallel_tool_calls.sse", 16},
        {"wire/anthropic/messages_stream.sse", 7},
        {"wire/anthropic/messages_stream_tool_use.sse", 23},
        {"wire/anthropic/stream_error_event.sse", 1},
        {"wire/gemini/stream_generate_content.sse", 2},
    };
    for (const auto& c : cases) {
        CAPTURE(c.file);
        const std::string body = test::fixture(c.file);
        REQUIRE(!body.empty());
        auto whole = parse_whole(body);
        CHECK(whole.size() == c.events);
        CHECK(parse_bytewise(body) == whole);
        for (std::uint64_t seed = 1; seed <= 20; ++seed) {
            CAPTURE(seed);
            CHECK(parse_random(body, seed) == whole);
        }
    }
}

TEST_CASE("sse: field values from the recorded streams") {
    auto anth = parse_whole(test::fixture("wire/anthropic/messages_stream.sse"));
    REQUIRE(anth.size() == 7);
    CHECK(anth[0].event == "message_start");
    CHECK(anth[2].event == "ping");
    CHECK(anth[2].data == R"({"type": "ping"})");
    CHECK(anth[6].event == "message_stop");
    // The padding inside the data line is kept as sent.
    CHECK(anth[6].data == R"({"type":"message_stop"   })");

    auto openai = parse_whole(test::fixture("wire/openai/chat_stream_with_usage.sse"));
    CHECK(openai.back().event == "message");
    CHECK(openai.back().data == "[DONE]");

    // Gemini separates events with \r\n\r\n: no \r may leak into the data.
    auto gem = parse_whole(test::fixture("wire/gemini/stream_generate_content.sse"));
    REQUIRE(gem.size() == 2);
    for (const auto& e : gem) CHECK(e.data.find('\r') == std::string::npos);
    CHECK(gem[1].data.rfind(R"({"candidates": [{"content": {"parts": [{"text": "00 + 42 = **4242**."}])", 0) == 0);
}

TEST_CASE("sse: multi-line data - comments - id - retry - unknown fields") {
    const std::string body =
        ": a comment\n"
        "event: update\n"
        "id: 7\n"
        "retry: 1500\n"
        "data: first\n"
        "data:second\n"
        "data\n"
        "bogus: ignored\n"
        "\n"
        ": keep-alive\n"
        "data: next\n"
        "\n";
    SseParser p;
    std::vector<SseEvent> out;
    REQUIRE(p.feed(body, out));
    REQUIRE(p.finish(out));
    REQUIRE(out.size() == 2);
    CHECK(out[0].event == "update");
    CHECK(out[0].data == "first\nsecond\n");  // "data" with no colon adds an empty line
    CHECK(out[0].id == "7");
    CHECK(out[0].retry_ms == 1500);
    CHECK(out[1].event == "message");  // the event type does not carry over
    CHECK(out[1].data == "next");
    CHECK(out[1].id == "7");  // the last event id does
    CHECK(p.comments() == 2);
}

TEST_CASE("sse: \\r\\n - \\n and \\r line endings give the same events - also split between feeds") {
    const std::string lf = "event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n";
    const std::string crlf = "event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n";
    const std::string cr = "event: a\rdata: 1\rdata: 2\r\rdata: 3\r\r";
    const std::string mixed = "event: a\r\ndata: 1\rdata: 2\n\r\ndata: 3\r\n\n";
    auto expected = parse_whole(lf);
    REQUIRE(expected.size() == 2);
    CHECK(expected[0].data == "1\n2");
    CHECK(expected[1].data == "3");
    for (const auto* body : {&crlf, &cr, &mixed}) {
        CHECK(parse_whole(*body) == expected);
        CHECK(parse_bytewise(*body) == expected);
        for (std::uint64_t seed = 1; seed <= 10; ++seed) CHECK(parse_random(*body, seed) == expected);
    }
    // A CR at the very end of one feed and the LF at the start of the next is one line end.
    SseParser p;
    std::vector<SseEvent> out;
    REQUIRE(p.feed("data: x\r", out));
    REQUIRE(p.feed("\n\r", out));
    CHECK(out.size() == 1);  // "\r\n" then "\r": the blank line dispatched
    REQUIRE(p.feed("\ndata: y\n\n", out));
    REQUIRE(out.size() == 2);  // the "\n" after the lone "\r" belongs to it, not a second blank line
    CHECK(out[1].data == "y");
}

TEST_CASE("sse: finish() flushes a last event that has no blank line after it") {
    SseParser p;
    std::vector<SseEvent> out;
    REQUIRE(p.feed("data: one\n\ndata: two", out));
    CHECK(out.size() == 1);
    REQUIRE(p.finish(out));
    REQUIRE(out.size() == 2);
    CHECK(out[1].data == "two");

    // Terminated line but no blank line.
    out.clear();
    SseParser q;
    REQUIRE(q.feed("event: last\ndata: three\n", out));
    CHECK(out.empty());
    REQUIRE(q.finish(out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].event == "last");
    CHECK(out[0].data == "three");
}

TEST_CASE("sse: an event with no data line is not dispatched - empty data is") {
    auto out = parse_whole("event: nothing\n\ndata:\n\n");
    REQUIRE(out.size() == 1);
    CHECK(out[0].event == "message");
    CHECK(out[0].data.empty());
}

TEST_CASE("sse: a leading UTF-8 BOM is skipped - even split across feeds") {
    const std::string body =
        "\xEF\xBB\xBF"
        "data: hi\n\n";
    auto whole = parse_whole(body);
    REQUIRE(whole.size() == 1);
    CHECK(whole[0].data == "hi");
    CHECK(parse_bytewise(body) == whole);
    // A first byte that only looks like a BOM start is content.
    auto other = parse_whole(
        "\xEF"
        "data: x\n\n");
    CHECK(other.empty());  // the field name is "\xEF" "data", unknown
}

TEST_CASE("sse: a line longer than the limit fails with E4600") {
    SseParser p(16);
    std::vector<SseEvent> out;
    auto st = p.feed("data: 0123456789abcdef", out);
    REQUIRE_FALSE(st);
    CHECK(st.error().code == ErrorCode::parse_error);
    CHECK_FALSE(p.feed("\n\n", out));
}

TEST_CASE("ndjson: the recorded Ollama stream splits the same in any pieces") {
    const std::string body = test::fixture("wire/ollama/chat_stream.ndjson");
    auto whole = ndjson_whole(body);
    CHECK(whole.size() == 22);  // 21 done:false lines and the done:true line
    CHECK(whole.back().find(R"("done":true)") != std::string::npos);
    {
        NdjsonParser p;
        std::vector<std::string> out;
        for (char c : body) REQUIRE(p.feed(std::string_view(&c, 1), out));
        REQUIRE(p.finish(out));
        CHECK(out == whole);
    }
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        NdjsonParser p;
        std::vector<std::string> out;
        for (std::size_t pos = 0; pos < body.size();) {
            std::size_t n = std::min(body.size() - pos, std::uniform_int_distribution<std::size_t>(0, 50)(rng));
            REQUIRE(p.feed(std::string_view(body).substr(pos, n), out));
            pos += n;
        }
        REQUIRE(p.finish(out));
        CHECK(out == whole);
    }
}

TEST_CASE("ndjson: CRLF - blank lines and a last line without newline") {
    auto out = ndjson_whole("{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}");
    REQUIRE(out.size() == 3);
    CHECK(out[0] == R"({"a":1})");
    CHECK(out[1] == R"({"b":2})");
    CHECK(out[2] == R"({"c":3})");
    NdjsonParser p(8);
    std::vector<std::string> lines;
    CHECK_FALSE(p.feed("0123456789", lines));
}
