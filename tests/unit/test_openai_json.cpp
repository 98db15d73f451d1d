#include <l04/wire/openai_json.hpp>

#include <doctest/doctest.h>

using namespace l04;
using nlohmann::json;

TEST_CASE("OpenAI request parsing: messages - parameters - tools and the l04 object") {
    auto r = parse_chat_request(R"({
      "model": "gpt-4o",
      "messages": [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
      ],
      "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 100, "stop": "END",
      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
      "stream": true, "user": "u1",
      "l04": {"agent": "batch", "strategy": "cheapest", "priority": "low", "cache": "refresh", "timeout": "30s",
              "options": {"reply": "x", "latency_ms": 5}, "capabilities": ["code"],
              "constraints": {"max_cost_cents": 2, "excluded_providers": ["gemini"]}}
    })");
    REQUIRE(r.has_value());
    CHECK(r->model == "gpt-4o");
    CHECK(r->system_prompt == "be terse");
    REQUIRE(r->messages.size() == 3);
    CHECK(r->messages[0].content == "part one\npart two");
    CHECK(r->messages[1].tool_calls.at(0).name == "get_weather");
    CHECK(r->messages[1].tool_calls.at(0).arguments == R"({"city":"Paris"})");
    CHECK(r->messages[2].role == Role::tool);
    CHECK(r->messages[2].tool_call_id == "c1");
    CHECK(r->temperature == 0.2);
    CHECK(r->max_tokens == 100);
    CHECK(r->stop == std::vector<std::string>{"END"});
    CHECK(r->tools.at(0).parameters == R"({"type":"object"})");
    CHECK(r->stream);
    CHECK(r->agent_did == "batch");
    CHECK(r->strategy == "cheapest");
    CHECK(r->priority == Priority::low);
    CHECK(r->cache_mode == CacheMode::refresh);
    CHECK(r->timeout_ms == 30000);
    CHECK(r->options.at("reply").text == "x");
    CHECK(r->options.at("latency_ms").text == "5");
    CHECK(r->options.at("latency_ms").kind == OptionValue::Kind::number);
    CHECK(r->capabilities == std::vector<std::string>{"code"});
    CHECK(r->constraints.max_cost_cents == 2);
    CHECK(r->constraints.excluded_providers == std::vector<std::string>{"gemini"});
}

TEST_CASE("OpenAI request parsing: bad input is E45xx") {
    CHECK(parse_chat_request("{").error().code == ErrorCode::invalid_request);
    CHECK(parse_chat_request("[]").error().code == ErrorCode::invalid_request);
    CHECK(parse_chat_request(R"({"model":"x"})").error().code == ErrorCode::invalid_messages);
    CHECK(parse_chat_request(R"({"messages":[{"role":"robot","content":"x"}]})").error().code == ErrorCode::invalid_messages);
    CHECK(parse_chat_request(R"({"messages":[],"temperature":"hot"})").error().code == ErrorCode::invalid_parameter);
    CHECK(parse_chat_request(R"({"messages":[],"l04":{"priority":"urgent"}})").error().code == ErrorCode::invalid_parameter);
    CHECK(parse_chat_request(R"({"model":"auto","messages":[]})")->model.empty());
}

TEST_CASE("requests round-trip through chat_request_to_json") {
    InferenceRequest r;
    r.model = "mock";
    r.system_prompt = "sys";
    r.messages.push_back({Role::user, "hello", {}, {}, {}});
    r.temperature = 0.5;
    r.max_tokens = 42;
    r.agent_did = "alice";
    r.options = {{"reply", option_from_text("hi")}};
    r.cache_mode = CacheMode::bypass;
    r.timeout_ms = 1500;
    auto back = parse_chat_request(chat_request_to_json(r).dump());
    REQUIRE(back);
    CHECK(back->model == "mock");
    CHECK(back->system_prompt == "sys");
    CHECK(back->messages == r.messages);
    CHECK(back->temperature == 0.5);
    CHECK(back->max_tokens == 42);
    CHECK(back->agent_did == "alice");
    CHECK(back->options == r.options);
    CHECK(back->cache_mode == CacheMode::bypass);
    CHECK(back->timeout_ms == 1500);
}

TEST_CASE("responses - chunks and errors in the OpenAI shape with l04 facts") {
    InferenceResponse r;
    r.request_id = "req_1";
    r.content = "hello";
    r.model_id = "gpt-4o";
    r.provider = "openai";
    r.token_usage = {3, 4, 7, false};
    r.cache_hit = CacheHit::semantic;
    r.similarity = 0.93;
    r.cost_usd = 0.001;
    r.created_ms = 1700000000000;
    r.tool_calls = {{"c1", "f", "{}"}};
    auto j = chat_response_to_json(r);
    CHECK(j["object"] == "chat.completion");
    CHECK(j["created"] == 1700000000);
    CHECK(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f");
    CHECK(j["usage"]["total_tokens"] == 7);
    CHECK(j["l04"]["cache_hit"] == "semantic");
    auto back = response_from_json(j);
    CHECK(back.content == "hello");
    CHECK(back.provider == "openai");
    CHECK(back.cache_hit == CacheHit::semantic);
    CHECK(back.similarity == doctest::Approx(0.93));
    CHECK(back.tool_calls == r.tool_calls);
    CHECK(back.token_usage.total_tokens == 7);
    CHECK(back.from_cache());
    CHECK(j["l04"]["cached"] == true);
    CHECK_FALSE(j["l04"].contains("metadata"));  // nothing to say

    StreamChunk c;
    c.delta = "he";
    c.model_id = "gpt-4o";
    auto cj = chunk_to_json(c, "req_1", 1, true);
    CHECK(cj["object"] == "chat.completion.chunk");
    CHECK(cj["choices"][0]["delta"]["role"] == "assistant");
    CHECK(cj["choices"][0]["delta"]["content"] == "he");
    CHECK(usage_chunk_json(r, 1)["choices"].empty());

    Error e(ErrorCode::rate_limit_exceeded, "slow down");
    e.retry_after = std::chrono::milliseconds(2500);
    auto ej = error_to_json(e);
    CHECK(ej["error"]["code"] == "E4401");
    auto eb = error_from_json(ej, 429);
    CHECK(eb.code == ErrorCode::rate_limit_exceeded);
    CHECK(eb.retry_after == std::chrono::milliseconds(2500));
    CHECK(eb.retryable);

    auto h = fact_headers(r);
    bool sim = false;
    for (const auto& [k, v] : h)
        if (k == "x-l04-similarity") sim = v == "0.9300";
    CHECK(sim);
}

TEST_CASE("the specification's routing object: flat and nested hints - merged with l04 - unknown keys refused") {
    auto r = parse_chat_request(R"({
      "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.7, "max_tokens": 100,
      "routing": {"strategy": "COST_OPTIMIZED", "preferred_providers": ["anthropic"], "exclude_providers": ["openai"],
                  "max_cost_cents": 5, "max_latency_ms": 3000, "required_capabilities": ["code"],
                  "min_context_length": 16000,
                  "constraints": {"excluded_providers": ["gemini"]}, "requirements": {"max_output_tokens": 500}}
    })");
    REQUIRE(r.has_value());
    CHECK(r->strategy == "COST_OPTIMIZED");
    CHECK(r->constraints.preferred_providers == std::vector<std::string>{"anthropic"});
    CHECK(r->constraints.excluded_providers == std::vector<std::string>{"openai", "gemini"});
    CHECK(r->constraints.max_cost_cents == 5);
    CHECK(r->constraints.max_latency_ms == 3000);
    CHECK(r->requirements.capabilities == std::vector<std::string>{"code"});
    CHECK(r->requirements.min_context_length == 16000);
    CHECK(r->requirements.max_output_tokens == 500);
    // routing is a gateway field: never forwarded to a provider.
    CHECK(r->extra.empty());
    // It survives the l04ctl → l04d round trip (as the l04 object).
    auto back = parse_chat_request(to_wire(chat_request_to_json(*r)));
    REQUIRE(back);
    CHECK(back->constraints.excluded_providers == r->constraints.excluded_providers);
    CHECK(back->strategy == r->strategy);
    CHECK(back->requirements.min_context_length == 16000);

    // Both objects together: lists merge; the same strategy twice is fine; two different ones are refused.
    auto both = parse_chat_request(R"({"messages":[],"l04":{"strategy":"cheapest","constraints":{"excluded_providers":["a"]}},
                                       "routing":{"strategy":"cheapest","exclude_providers":["b"]}})");
    REQUIRE(both);
    CHECK(both->constraints.excluded_providers == std::vector<std::string>{"a", "b"});
    auto clash = parse_chat_request(R"({"messages":[],"l04":{"strategy":"cheapest"},"routing":{"strategy":"fastest"}})");
    REQUIRE_FALSE(clash);
    CHECK(clash.error().code == ErrorCode::invalid_parameter);

    // A misspelt hint is refused, naming the known keys: never silently dropped.
    for (const char* body :
         {R"({"messages":[],"routing":{"exclude_provider":["openai"]}})",
          R"({"messages":[],"routing":{"constraints":{"max_cost":1}}})",
          R"({"messages":[],"routing":{"requirements":{"context":1}}})",
          R"({"messages":[],"l04":{"stratgy":"cheapest"}})",
          R"({"messages":[],"l04":{"constraints":{"exclude":["a"]}}})",
          R"({"messages":[],"l04":{"requirements":{"caps":["code"]}}})",
          R"({"messages":[],"routing":"cheapest"})",
          R"({"messages":[],"routing":{"exclude_providers":[1]}})",
          R"({"messages":[],"routing":{"max_cost_cents":-1}})",
          R"({"messages":[],"routing":{"min_context_length":1.5}})"}) {
        CAPTURE(body);
        auto e = parse_chat_request(body);
        REQUIRE_FALSE(e);
        CHECK(e.error().code == ErrorCode::invalid_parameter);
    }
    auto e = parse_chat_request(R"({"messages":[],"routing":{"exclude_provider":["openai"]}})");
    CHECK(e.error().message.find("exclude_providers") != std::string::npos);  // the list of known keys
    CHECK(e.error().message.find("'exclude_provider'") != std::string::npos);
}

TEST_CASE("error_from_json takes only a well-formed code of l04's range - never throws on another server's answer") {
    auto code_of = [](const char* code) { return error_from_json(json{{"error", {{"code", code}, {"message", "m"}}}}, 500).code; };
    CHECK(code_of("E4401") == ErrorCode::rate_limit_exceeded);
    CHECK(code_of("E4x01") == ErrorCode::internal_error);
    CHECK(code_of("E9999") == ErrorCode::internal_error);
    CHECK(code_of("E-123") == ErrorCode::internal_error);
    CHECK(code_of("E 401") == ErrorCode::internal_error);
    CHECK(code_of("rate_limit_exceeded") == ErrorCode::internal_error);
    CHECK(error_from_json(json{{"error", {{"code", 429}}}}, 429).code == ErrorCode::internal_error);
    auto odd = error_from_json(json{{"error", {{"message", 5}, {"retryable", "yes"}, {"retry_after", 1e300}, {"details", {1}}}}}, 503);
    CHECK(odd.message == "HTTP 503");
    CHECK_FALSE(odd.retryable);
    CHECK_FALSE(odd.retry_after.has_value());
    CHECK(odd.details.empty());
    CHECK(error_from_json(json::array(), 502).http_status == 502);
}

TEST_CASE("responses - the gateway's typed facts travel in the l04 metadata under their historical keys") {
    InferenceResponse r;
    r.request_id = "req_2";
    r.model_id = "gpt-4o";
    r.provider = "openai";
    r.metadata["provider_model"] = "gpt-4o-2024-08-06";
    r.attempts = 3;
    r.fallback_from = "claude-sonnet";
    r.cache_refusal = CacheRefusalFact{"roles", 0.9571};
    const auto j = chat_response_to_json(r);
    const auto& m = j["l04"]["metadata"];
    CHECK(m["attempts"] == "3");
    CHECK(m["fallback_from"] == "claude-sonnet");
    CHECK(m["cache_refused"] == "roles");
    CHECK(m["cache_refused_similarity"] == "0.957");
    CHECK(m["provider_model"] == "gpt-4o-2024-08-06");
    CHECK_FALSE(j["l04"]["cached"].get<bool>());

    const auto back = response_from_json(j);
    CHECK(back.attempts == 3);
    CHECK(back.fallback_from == "claude-sonnet");
    REQUIRE(back.cache_refusal.has_value());
    CHECK(back.cache_refusal->reason == "roles");
    CHECK(back.cache_refusal->similarity == doctest::Approx(0.957));
    // Only the provider's own entries stay in metadata.
    CHECK(back.metadata.size() == 1);
    CHECK(back.metadata.at("provider_model") == "gpt-4o-2024-08-06");

    // One call: no attempts key (as before the facts were typed).
    InferenceResponse one;
    one.attempts = 1;
    CHECK_FALSE(chat_response_to_json(one)["l04"].contains("metadata"));
}
