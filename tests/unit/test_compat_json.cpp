// The body translations of l04d's non-chat endpoints: the specification's
// and OpenAI's legacy /v1/completions, /v1/embeddings and /v1/responses.
#include <l04/core/strings.hpp>
#include <l04/wire/admin_json.hpp>
#include <l04/wire/completions_json.hpp>
#include <l04/wire/openai_json.hpp>
#include <l04/wire/responses_json.hpp>

#include <doctest/doctest.h>

#include <cstring>

using namespace l04;
using nlohmann::json;

TEST_CASE("completions: the specification's body is a chat body - legacy prompt becomes the user message") {
    auto spec = parse_completions_request(
        R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"routing":{"strategy":"FASTEST"}})");
    REQUIRE(spec);
    CHECK(spec->shape == CompletionShape::spec);
    CHECK(spec->req.strategy == "FASTEST");
    CHECK(spec->req.max_tokens == 5);

    auto legacy = parse_completions_request(R"({"model":"m","prompt":["only one"],"temperature":0.1,"stop":"\n"})");
    REQUIRE(legacy);
    CHECK(legacy->shape == CompletionShape::legacy);
    REQUIRE(legacy->req.messages.size() == 1);
    CHECK(legacy->req.messages[0].role == Role::user);
    CHECK(legacy->req.messages[0].content == "only one");
    CHECK(legacy->req.temperature == 0.1);
    CHECK(legacy->req.stop == std::vector<std::string>{"\n"});
    CHECK(legacy->req.extra.empty());  // nothing of the legacy API leaks upstream
    // Defaults of the legacy API that change nothing are accepted.
    CHECK(parse_completions_request(R"({"prompt":"x","echo":false,"best_of":1,"suffix":"","logprobs":null})"));

    InferenceResponse r;
    r.request_id = "req_1";
    r.content = "text";
    r.model_id = "m";
    r.provider = "p";
    r.token_usage = {3, 4, 7};
    r.created_ms = 1'800'000'000'000;
    auto j = spec_completion_json(r);
    CHECK(j["content"] == "text");
    CHECK(j["token_usage"]["total_tokens"] == 7);
    CHECK(j["created"] == 1'800'000'000);
    auto fin = spec_final_chunk_json(r);
    CHECK(fin["is_final"] == true);
    CHECK(fin["content"] == "");
    auto lj = legacy_completion_json(r);
    CHECK(lj["object"] == "text_completion");
    CHECK(lj["choices"][0]["text"] == "text");
}

TEST_CASE("embeddings: input forms - base64 is little-endian float32") {
    auto one = parse_embeddings_request(R"({"input":"a","model":"m","dimensions":8,"encoding_format":"base64","user":"u"})");
    REQUIRE(one);
    CHECK(one->req.inputs == std::vector<std::string>{"a"});
    CHECK(one->req.dimensions == 8);
    CHECK(one->base64);
    CHECK(one->req.agent_did == "u");
    auto many = parse_embeddings_request(R"({"input":["a","b"],"l04":{"cache":"bypass","timeout":2.5}})");
    REQUIRE(many);
    CHECK(many->req.inputs.size() == 2);
    CHECK(many->req.cache_mode == CacheMode::bypass);
    CHECK(many->req.timeout_ms == 2500);
    for (const char* bad : {R"({"model":"m"})", R"({"input":[1,2]})", R"({"input":"a","dimensions":0})",
                            R"({"input":"a","encoding_format":"int8"})", R"({"input":"a","extra":1})",
                            R"({"input":"a","l04":{"strategy":"x"}})", R"([1])", R"({)"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_embeddings_request(bad));
    }
    const std::vector<float> v = {1.0f, -2.5f, 0.0f};
    const std::string b64 = floats_base64(v);
    CHECK(b64 == base64_encode(std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0\x00\x00\x00\x00", 12)));
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
}

TEST_CASE("responses: items become chat messages - unsupported features are refused by name") {
    auto r = parse_responses_request(R"({
      "model": "m", "instructions": "sys", "max_output_tokens": 9, "store": false, "previous_response_id": "resp_x",
      "input": [
        {"role": "developer", "content": "dev rule"},
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "https://example.invalid/a.png", "detail": "low"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]}],
      "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
      "tool_choice": {"type": "function", "name": "f"},
      "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
      "reasoning": {"effort": "low"}
    })");
    REQUIRE(r);
    CHECK_FALSE(r->store);
    CHECK(r->previous_response_id == "resp_x");
    const auto& q = r->req;
    CHECK(r->instructions == "sys");
    CHECK(q.system_prompt == "dev rule");  // this turn's developer items; instructions stay apart
    CHECK(q.max_tokens == 9);
    REQUIRE(q.messages.size() == 4);  // user, assistant (two calls), tool, tool
    CHECK(q.messages[0].parts.size() == 2);
    CHECK(q.messages[1].tool_calls.size() == 2);
    CHECK(q.messages[2].tool_call_id == "c1");
    CHECK(q.messages[3].content == "two");
    REQUIRE(q.tools.size() == 1);
    CHECK(q.tools[0].strict == true);
    CHECK(json::parse(q.tool_choice)["function"]["name"] == "f");
    CHECK(json::parse(q.response_format)["json_schema"]["name"] == "out");
    CHECK(q.reasoning_effort == "low");
    CHECK(r->echo["max_output_tokens"] == 9);

    for (const char* bad :
         {R"({"input":"x","tools":[{"type":"file_search"}]})", R"({"input":"x","background":true})",
          R"({"input":"x","conversation":"c"})", R"({"input":"x","prompt":{"id":"p"}})",
          R"({"input":"x","text":{"verbosity":"low"}})", R"({"input":"x","reasoning":{"summary":"auto"}})",
          R"({"input":[{"role":"user","content":[{"type":"input_audio"}]}]})",
          R"({"input":[{"type":"reasoning","id":"r"}]})", R"({"input":"x","max_tool_calls":2})"}) {
        CAPTURE(bad);
        auto e = parse_responses_request(bad);
        REQUIRE_FALSE(e);
        CHECK(e.error().code == ErrorCode::invalid_parameter);
        CHECK(e.error().message.find("not supported") != std::string::npos);
    }
    CHECK(parse_responses_request(R"({"model":"m"})").error().code == ErrorCode::invalid_messages);

    // A stored turn reads back as the same system text and messages.
    InferenceResponse resp;
    resp.content = "answer";
    resp.tool_calls = {{"c9", "f", "{\"a\":1}"}};
    auto turn = turn_content(turn_json(q.system_prompt, q.messages, resp));
    REQUIRE(turn);
    CHECK(turn->system == "dev rule");
    const auto* turns = &turn->messages;
    REQUIRE(turns->size() == 5);
    CHECK(turns->back().role == Role::assistant);
    CHECK(turns->back().content == "answer");
    CHECK(turns->back().tool_calls.at(0).id == "c9");
    CHECK((*turns)[0].parts.size() == 2);  // the image survives
    // Output item ids of the turn resolve to input items (item_reference).
    auto msg = output_item_of_turn(*turn, "msg_abc");
    REQUIRE(msg);
    CHECK((*msg)["content"] == "answer");
    auto call = output_item_of_turn(*turn, "fc_abc_0");
    REQUIRE(call);
    CHECK((*call)["call_id"] == "c9");
    CHECK_FALSE(output_item_of_turn(*turn, "fc_abc_1"));
    CHECK_FALSE(output_item_of_turn(*turn, "rs_abc"));
    // An item_reference is resolved through the caller's resolver.
    ItemResolver resolver = [&](const std::string& id) { return output_item_of_turn(*turn, id); };
    auto withref = parse_responses_request(
        R"({"input":[{"role":"user","content":"q"},{"type":"item_reference","id":"msg_abc"},{"type":"item_reference","id":"fc_abc_0"},
                     {"type":"function_call_output","call_id":"c9","output":"r"}]})",
        resolver);
    REQUIRE(withref);
    REQUIRE(withref->req.messages.size() == 3);  // the text and its call are one assistant turn
    CHECK(withref->req.messages[1].content == "answer");
    CHECK(withref->req.messages[1].tool_calls.at(0).id == "c9");
    CHECK_FALSE(parse_responses_request(R"({"input":[{"type":"item_reference","id":"msg_abc"}]})"));
    // Wrong types are E4502, never an internal error.
    for (const char* bad : {R"({"input":[{"type":1}]})", R"({"input":"x","tools":[{"type":7}]})",
                            R"({"input":"x","text":{"format":{"type":"json_schema","name":5}}})"}) {
        CAPTURE(bad);
        auto e = parse_responses_request(bad);
        REQUIRE_FALSE(e);
        CHECK(e.error().code != ErrorCode::internal_error);
    }

    // The response object: message first, then calls; length is incomplete.
    resp.finish_reason = "length";
    resp.model_id = "m";
    auto o = response_object("resp_abc", 1, *r, &resp, {}, "incomplete");
    CHECK(o["incomplete_details"]["reason"] == "max_output_tokens");
    REQUIRE(o["output"].size() == 2);
    CHECK(o["output"][0]["type"] == "message");
    CHECK(o["output"][1]["call_id"] == "c9");
    CHECK(o["output"][1]["id"] == call_item_id("resp_abc", 0));
    CHECK(new_response_id().size() == 5 + 24);
}

TEST_CASE("admin JSON: cache stats round-trip through the shared codec - a daemon of another version never aborts l04ctl") {
    CacheStats s;
    s.entries = 12;
    s.bytes = 3456;
    s.exact_hits = 5;
    s.semantic_hits = 2;
    s.misses = 7;
    s.embedder = "builtin";
    s.similarity_threshold = 0.93;
    s.semantic_guard = true;
    s.index_loaded = true;
    s.oldest_ms = 1'700'000'000'000;
    s.newest_ms = 1'700'000'100'000;
    const auto v = cache_stats_from_json(cache_stats_to_json(s));
    CHECK(v.stats.entries == 12);
    CHECK(v.stats.bytes == 3456);
    CHECK(v.stats.exact_hits == 5);
    CHECK(v.stats.semantic_hits == 2);
    CHECK(v.stats.misses == 7);
    CHECK(v.stats.hit_rate() == doctest::Approx(0.5));
    CHECK(v.stats.embedder == "builtin");
    CHECK(v.stats.similarity_threshold == doctest::Approx(0.93));
    CHECK(v.stats.index_loaded);
    CHECK(v.oldest == "2023-11-14T22:13:20Z");
    CHECK_FALSE(v.newest.empty());

    // Missing fields, wrong types, not even an object: defaults, no throw.
    const auto odd = nlohmann::json::parse(R"({"entries":"many","hits":null,"embedder":7,"oldest":null})");
    const auto w = cache_stats_from_json(odd);
    CHECK(w.stats.entries == 0);
    CHECK(w.stats.embedder.empty());
    CHECK(w.oldest.empty());
    CHECK(cache_stats_from_json(nlohmann::json::array()).stats.entries == 0);
    CHECK(cache_stats_from_json(nlohmann::json("text")).stats.misses == 0);
}

TEST_CASE("admin JSON: health decodes what l04d sends and tolerates what it does not") {
    const auto j = nlohmann::json::parse(R"({
        "gateway": "degraded", "version": "0.1.0", "pid": 42, "daemon": false,
        "registry": {"total_models": 30}, "cache": {"entries": 3},
        "queue": {"pending_requests": 1, "active_requests": 2},
        "providers": {"mock": {"status": "healthy", "circuit": "closed", "latency_ms": 0.5},
                      "openai": {"status": "unconfigured", "circuit": "closed", "message": "set OPENAI_API_KEY"}}})");
    const HealthView h = health_from_json(j);
    CHECK(h.gateway == "degraded");
    CHECK(h.pid == 42);
    CHECK_FALSE(h.daemon);
    CHECK(h.total_models == 30);
    CHECK(h.cache_entries == 3);
    CHECK(h.pending_requests == 1);
    CHECK(h.active_requests == 2);
    REQUIRE(h.providers.size() == 2);
    CHECK(h.providers[0].id == "mock");
    CHECK(h.providers[0].latency_ms == doctest::Approx(0.5));
    CHECK(h.providers[1].message == "set OPENAI_API_KEY");

    const HealthView odd = health_from_json(nlohmann::json::parse(R"({"gateway": 3, "registry": [], "providers": {"x": 5}})"));
    CHECK(odd.gateway == "unknown");
    CHECK(odd.total_models == 0);
    REQUIRE(odd.providers.size() == 1);
    CHECK(odd.providers[0].status == "unknown");
    CHECK(health_from_json(nlohmann::json()).gateway == "unknown");
}
