#include <l04/bootstrap.hpp>
#include <l04/core/error.hpp>
#include <l04/core/hash.hpp>
#include <l04/core/strings.hpp>
#include <l04/core/types.hpp>

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>

using namespace l04;

TEST_CASE("error codes: the spec's codes - strings - retryable flags and HTTP statuses") {
    CHECK(code_string(ErrorCode::model_not_found) == "E4001");
    CHECK(code_string(ErrorCode::provider_not_configured) == "E4002");
    CHECK(code_string(ErrorCode::no_suitable_model) == "E4100");
    CHECK(code_string(ErrorCode::all_models_unavailable) == "E4102");
    CHECK(code_string(ErrorCode::provider_error) == "E4200");
    CHECK(code_string(ErrorCode::timeout) == "E4202");
    CHECK(code_string(ErrorCode::auth_failed) == "E4203");
    CHECK(code_string(ErrorCode::cache_error) == "E4300");
    CHECK(code_string(ErrorCode::embedding_failed) == "E4301");
    CHECK(code_string(ErrorCode::rate_limit_exceeded) == "E4401");
    CHECK(code_string(ErrorCode::quota_exhausted) == "E4402");
    CHECK(code_string(ErrorCode::invalid_request) == "E4500");
    CHECK(code_string(ErrorCode::invalid_messages) == "E4501");
    CHECK(code_string(ErrorCode::parse_error) == "E4600");
    CHECK(code_string(ErrorCode::streaming_error) == "E4604");
    CHECK(code_string(ErrorCode::circuit_open) == "E4701");
    CHECK(code_string(ErrorCode::recovery_failed) == "E4702");
    CHECK(default_retryable(ErrorCode::timeout));
    CHECK(default_retryable(ErrorCode::rate_limit_exceeded));
    CHECK_FALSE(default_retryable(ErrorCode::auth_failed));
    CHECK_FALSE(default_retryable(ErrorCode::invalid_request));
    CHECK(Error(ErrorCode::model_not_found, "x").http_status == 404);
    CHECK(Error(ErrorCode::invalid_messages, "x").http_status == 400);
    CHECK(Error(ErrorCode::rate_limit_exceeded, "x").http_status == 429);
    CHECK(Error(ErrorCode::auth_failed, "bad key").to_string() == "E4203 auth_failed: bad key");
}

TEST_CASE("Result holds a value or an error") {
    Result<int> ok = 42;
    CHECK(ok.has_value());
    CHECK(*ok == 42);
    CHECK(ok.value_or(1) == 42);
    Result<int> bad = fail(ErrorCode::timeout, "slow");
    CHECK_FALSE(bad);
    CHECK(bad.error().code == ErrorCode::timeout);
    CHECK(bad.value_or(7) == 7);
    Status s;
    CHECK(s.has_value());
    Status f = fail(ErrorCode::config_error, "x");
    CHECK(f.error().message == "x");
}

TEST_CASE("sha256 matches reference digests (FIPS 180-4 vectors and Python hashlib)") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmjklmnklmnolmnopmnopqnopq") ==
          "9ad289b5b8ca3b67b3e1238ea026560d218cac02ee49b871795a3311874d107e");
    std::string million(1000000, 'a');
    CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    Sha256 a, b;
    a.update_field("ab");
    a.update_field("c");
    b.update_field("a");
    b.update_field("bc");
    CHECK(a.hex_digest() != b.hex_digest());
}

TEST_CASE("string helpers") {
    CHECK(trim("  a b \n") == "a b");
    CHECK(split("a, b,,c", ',') == std::vector<std::string>{"a", "b", "c"});
    CHECK(edit_distance("kitten", "sitting") == 3);
    auto near = closest_names("gpt-4o-mni", {"gpt-4o-mini", "gpt-4o", "claude-3-haiku", "mistral"});
    REQUIRE_FALSE(near.empty());
    CHECK(near[0] == "gpt-4o-mini");
    CHECK(closest_names("zzzzzzzzzzzz", {"mock"}).empty());
    CHECK(parse_duration_ms("90s") == 90000);
    CHECK(parse_duration_ms("15m") == 900000);
    CHECK(parse_duration_ms("24h") == 86400000);
    CHECK(parse_duration_ms("7d") == 604800000);
    CHECK(parse_duration_ms("250ms") == 250);
    CHECK(parse_duration_ms("3600") == 3600000);
    CHECK_FALSE(parse_duration_ms("soon"));
    CHECK_FALSE(parse_duration_ms("-1s"));
    // Out of range: refused, never converted (that was undefined behaviour).
    CHECK_FALSE(parse_duration_ms("inf"));
    CHECK_FALSE(parse_duration_ms("nan"));
    CHECK_FALSE(parse_duration_ms("1e300s"));
    CHECK_FALSE(parse_duration_ms("99999999999999w"));
    CHECK(parse_bool("yes") == true);
    CHECK(parse_bool("0") == false);
    CHECK_FALSE(parse_bool("maybe"));
    CHECK(iso8601_utc(0) == "1970-01-01T00:00:00Z");
    CHECK(url_encode("a-b_c.d~9") == "a-b_c.d~9");
    CHECK(url_encode("is 2+2=4? & 100%") == "is%202%2B2%3D4%3F%20%26%20100%25");
    CHECK(url_encode("\xc3\xa9\n") == "%C3%A9%0A");
}

TEST_CASE("token estimates and tool-call encoding") {
    CHECK(estimate_tokens("") == 0);
    CHECK(estimate_tokens("abcd") == 1);
    CHECK(estimate_tokens("abcde") == 2);
    InferenceRequest r;
    r.messages.push_back({Role::user, "hello world", {}, {}, {}});
    CHECK(estimate_prompt_tokens(r) == 4 + 3 + 3);
    std::vector<ToolCall> calls{{"call_1", "get_weather", R"({"city":"Paris"})"}, {"", "x", ""}};
    CHECK(decode_tool_calls(encode_tool_calls(calls)) == calls);
    CHECK(decode_tool_calls("garbage").empty());
    CHECK(parse_role("developer") == Role::system);
    CHECK_FALSE(parse_role("robot"));
    CHECK(parse_capability("tool_use") == Capability::tool_use);
    CapabilitySet s;
    s.add(Capability::code);
    s.add(Capability::vision);
    CapabilitySet need;
    need.add(Capability::code);
    CHECK(s.contains_all(need));
    CHECK(s.names() == std::vector<std::string>{"code", "vision"});
}

TEST_CASE("raise_fd_limit lifts the soft open-file limit to the hard one") {
    rlimit before{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
    rlimit low = before;
    low.rlim_cur = std::min<rlim_t>(before.rlim_max, 256);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    const std::uint64_t now = raise_fd_limit();
    rlimit after{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
    CHECK(now == static_cast<std::uint64_t>(after.rlim_cur));
    if (before.rlim_max != RLIM_INFINITY) CHECK(after.rlim_cur == before.rlim_max);
    else CHECK(after.rlim_cur >= low.rlim_cur);
    ::setrlimit(RLIMIT_NOFILE, &before);
}

TEST_CASE("pair lists: key=first[/second] entries for settings") {
    auto ok = parse_pair_list(" a=1/2 ; b = 3 ,c=-", "x.list", "k=v");
    REQUIRE(ok);
    REQUIRE(ok->size() == 3);
    CHECK((*ok)[0].key == "a");
    CHECK((*ok)[0].first == "1");
    CHECK((*ok)[0].second == "2");
    CHECK((*ok)[1].key == "b");
    CHECK((*ok)[1].first == "3");
    CHECK_FALSE((*ok)[1].second.has_value());
    CHECK((*ok)[2].first == "-");
    auto missing = parse_pair_list("a", "x.list", "k=v");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ErrorCode::config_invalid);
    CHECK(missing.error().message == "x.list: 'a': missing '=' (expected k=v)");
    CHECK_FALSE(parse_pair_list("=1", "x.list", "k=v"));
    auto twice = parse_pair_list("a=1, a=2", "x.list", "k=v");
    REQUIRE_FALSE(twice);
    CHECK(twice.error().message.find("given twice") != std::string::npos);
    CHECK(parse_pair_list("", "x.list", "k=v")->empty());
}

TEST_CASE("redact_secrets: whole values of at least 8 characters") {
    CHECK(l04::redact_secrets("key sk-1234567890 leaked twice: sk-1234567890", {"sk-1234567890"}) ==
          "key [redacted] leaked twice: [redacted]");
    CHECK(l04::redact_secrets("exceeded", {"x", "ee"}) == "exceeded");  // short keys never mangle text
    CHECK(l04::redact_secrets("", {"sk-1234567890"}).empty());
}
