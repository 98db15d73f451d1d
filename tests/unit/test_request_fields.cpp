// The request field table (core/request_fields.hpp): every field is keyed
// or says why not, every provider kind forwards, maps or refuses it, the
// strict request parser, and what each adapter puts on the wire for images
// and the mapped fields (byte-exact base64).
#include "support/fake_transport.hpp"
#include "support/test_util.hpp"

#include <l04/cache/cache_key.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/provider/factory.hpp>
#include <l04/wire/openai_json.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

using namespace l04;
using nlohmann::json;

namespace {

// A real 1x1 PNG.
constexpr const char* k_png_b64 =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

InferenceRequest base() {
    InferenceRequest r;
    r.request_id = "req_fields";
    r.messages.push_back(Message{Role::user, "hello", "", "", {}});
    return r;
}

InferenceRequest with_image(const std::string& text = "what is in this picture?") {
    InferenceRequest r;
    r.request_id = "req_image";
    Message m;
    m.content = text;
    ContentPart t;
    t.text = text;
    ContentPart i;
    i.kind = ContentPart::Kind::image;
    i.media_type = "image/png";
    i.data = k_png_b64;
    m.parts = {t, i};
    r.messages.push_back(m);
    return r;
}

bool is_message_row(const FieldRow& row) { return std::string_view(row.name).rfind("messages", 0) == 0; }

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("request fields: every row has a sample, and the sample is what is_set sees") {
    REQUIRE(field_table().size() >= 20);
    std::set<std::string> names;
    for (const auto& row : field_table()) {
        INFO(row.name);
        CHECK(names.insert(row.name).second);  // no row twice
        REQUIRE(static_cast<bool>(row.is_set));
        REQUIRE(static_cast<bool>(row.sample));
        CHECK_FALSE(row.is_set(base()));
        auto r = base();
        row.sample(r);
        CHECK(row.is_set(r));
        // A key rule either way: a canonical text, or a reason it is not keyed.
        CHECK((row.key_text != nullptr) != (row.not_keyed_because != nullptr && *row.not_keyed_because));
    }
}

TEST_CASE("request fields: a field that can change the answer changes the cache key - the others do not") {
    // Walks the table: a row added without a key rule fails above; a keyed
    // row whose field the key does not see fails here.
    const auto k0 = make_cache_key(base(), "gpt-4o-mini", "");
    for (const auto& row : field_table()) {
        INFO(row.name);
        auto r = base();
        row.sample(r);
        const auto k1 = make_cache_key(r, "gpt-4o-mini", "");
        if (row.key_text || is_message_row(row)) {
            CHECK(k1.exact != k0.exact);
            CHECK(k1.scope != k0.scope);  // never a semantic hit across it either
        } else {
            CHECK(k1.exact == k0.exact);
        }
    }
}

TEST_CASE("request fields: two values of each keyed field key differently") {
    auto a = base(), b = base();
    a.seed = 1;
    b.seed = 2;
    CHECK(make_cache_key(a, "m", "").exact != make_cache_key(b, "m", "").exact);
    a = base(), b = base();
    a.extra = {{"top_k", "40"}};
    b.extra = {{"top_k", "41"}};
    CHECK(make_cache_key(a, "m", "").exact != make_cache_key(b, "m", "").exact);
    a = base(), b = base();
    a.options["top_k"] = option_from_text("40");
    b.options["top_k"] = {OptionValue::Kind::string, "40"};  // "40" the string is not 40 the number
    CHECK(make_cache_key(a, "m", "").exact != make_cache_key(b, "m", "").exact);
    // Images by their bytes: another image with the same text is another question.
    auto i1 = with_image(), i2 = with_image();
    i2.messages[0].parts[1].data = std::string(k_png_b64).substr(0, 20) + "AAAA";
    const auto k1 = make_cache_key(i1, "m", ""), k2 = make_cache_key(i2, "m", "");
    CHECK(k1.exact != k2.exact);
    CHECK(k1.scope != k2.scope);
    CHECK(k1.prompt == k2.prompt);  // the text is what is embedded
    // The same image by URL is keyed by the URL.
    auto u1 = with_image(), u2 = with_image();
    u1.messages[0].parts[1].data.clear();
    u1.messages[0].parts[1].url = "https://example.com/a.png";
    u2.messages[0].parts[1].data.clear();
    u2.messages[0].parts[1].url = "https://example.com/b.png";
    CHECK(make_cache_key(u1, "m", "").scope != make_cache_key(u2, "m", "").scope);
    // Detail is part of it too.
    auto d1 = with_image(), d2 = with_image();
    d2.messages[0].parts[1].detail = "high";
    CHECK(make_cache_key(d1, "m", "").scope != make_cache_key(d2, "m", "").scope);
}

TEST_CASE("request fields: each kind refuses exactly what its column says") {
    for (const auto& row : field_table()) {
        for (int k = 0; k < k_provider_kind_count; ++k) {
            const auto kind = static_cast<ProviderKind>(k);
            INFO(row.name, " on ", provider_kind_name(kind));
            auto r = base();
            row.sample(r);
            const auto refusal = refused_field(r, kind);
            const auto use = row.support[static_cast<std::size_t>(k)].use;
            if (use == FieldUse::refuse) {
                REQUIRE(refusal);
                CHECK(refusal->field == row.name);
            } else if (use != FieldUse::partly) {
                CHECK_FALSE(refusal);
            }
        }
    }
    // The partly honoured ones, value by value.
    auto r = base();
    r.temperature = 1.5;
    CHECK(refused_field(r, ProviderKind::anthropic));
    r.temperature = 0.5;
    CHECK_FALSE(refused_field(r, ProviderKind::anthropic));
    r = base();
    r.n = 2;
    CHECK_FALSE(refused_field(r, ProviderKind::openai));
    r.stream = true;
    CHECK(refused_field(r, ProviderKind::openai));
    r = base();
    r.parallel_tool_calls = true;
    CHECK_FALSE(refused_field(r, ProviderKind::ollama));
    r.parallel_tool_calls = false;
    CHECK(refused_field(r, ProviderKind::ollama));
    CHECK_FALSE(refused_field(r, ProviderKind::anthropic));
    r = base();
    r.response_format = R"({"type":"json_object"})";
    CHECK(refused_field(r, ProviderKind::anthropic));
    CHECK_FALSE(refused_field(r, ProviderKind::gemini));
    r.response_format = R"({"json_schema":{"name":"x","schema":{"type":"object"}},"type":"json_schema"})";
    CHECK_FALSE(refused_field(r, ProviderKind::anthropic));
    CHECK(refused_field(r, ProviderKind::command));
    r.response_format = R"({"type":"text"})";
    CHECK_FALSE(refused_field(r, ProviderKind::command));
    r.response_format = R"({"json_schema":{"schema":{"type":"text"}},"type":"json_schema"})";  // nested "type"
    CHECK(refused_field(r, ProviderKind::command));
    auto img = with_image();
    CHECK_FALSE(refused_field(img, ProviderKind::ollama));
    img.messages[0].parts[1].data.clear();
    img.messages[0].parts[1].url = "https://example.com/cat.png";
    CHECK(refused_field(img, ProviderKind::ollama));
    CHECK(refused_field(img, ProviderKind::gemini));
    CHECK_FALSE(refused_field(img, ProviderKind::anthropic));
    CHECK_FALSE(refused_field(img, ProviderKind::openai));
    CHECK(refused_field(img, ProviderKind::command));
}

TEST_CASE("request fields: options are checked against the kind's own list") {
    auto r = base();
    r.options["num_ctx"] = option_from_text("8192");
    CHECK_FALSE(refused_field(r, ProviderKind::ollama));
    auto a = refused_field(r, ProviderKind::anthropic);
    REQUIRE(a);
    CHECK(a->reason.find("unknown option 'num_ctx'") != std::string::npos);
    CHECK(a->reason.find("top_k") != std::string::npos);  // lists what it knows
    CHECK_FALSE(refused_field(r, ProviderKind::openai));  // any name: a top-level field
    CHECK(refused_field(r, ProviderKind::command));
    r.options = {{"reply", option_from_text("hi")}};
    CHECK_FALSE(refused_field(r, ProviderKind::mock));
    CHECK(refused_field(r, ProviderKind::ollama));
    const auto e = refusal_error(*refused_field(r, ProviderKind::ollama), "ollama", "llama3.2:3b");
    CHECK(e.code == ErrorCode::invalid_parameter);
    CHECK(e.http_status == 400);
    CHECK(e.message.find("llama3.2:3b") != std::string::npos);
    CHECK(e.message.find("provider ollama") != std::string::npos);
}

TEST_CASE("request fields: typed options from -o text") {
    CHECK(option_from_text("40").kind == OptionValue::Kind::number);
    CHECK(option_from_text("-0.5").kind == OptionValue::Kind::number);
    CHECK(option_from_text("0.05").kind == OptionValue::Kind::number);
    // Spellings a JSON writer would change stay text, so l04d sees what l04ctl saw.
    CHECK(option_from_text("1.50").kind == OptionValue::Kind::string);
    CHECK(option_from_text("007").kind == OptionValue::Kind::string);
    CHECK(option_from_text("1e3").kind == OptionValue::Kind::string);
    CHECK(option_from_text("1234567890123456").kind == OptionValue::Kind::string);
    CHECK(option_from_text("true").kind == OptionValue::Kind::boolean);
    CHECK(option_from_text("[1,2]").kind == OptionValue::Kind::json);
    CHECK(option_from_text("5m").kind == OptionValue::Kind::string);
    CHECK(option_from_text("1.").kind == OptionValue::Kind::string);
    CHECK(option_from_text("").kind == OptionValue::Kind::string);
}

TEST_CASE("request fields: docs/providers.md holds the rendered table") {
    const std::string doc = slurp(std::string(L04_SOURCE_DIR) + "/docs/providers.md");
    const std::string table = render_field_table();
    INFO("regenerate the table in docs/providers.md from render_field_table():\n", table);
    CHECK(doc.find(table) != std::string::npos);
}

// ------------------------------------------------------------------ parsing

TEST_CASE("parse_chat_request: every field of the table survives the round trip through JSON") {
    InferenceRequest all = base();
    for (const auto& row : field_table()) row.sample(all);
    all.stream = false;  // n and logprobs are refused with stream, but parsing takes them
    all.tools.push_back(ToolSpec{"strict_tool", "", R"({"type":"object"})", true, ""});
    all.cache_explicit = true;
    const json j = chat_request_to_json(all);
    auto back = parse_chat_request(j.dump());
    REQUIRE(back);
    CHECK(chat_request_to_json(*back) == j);
    CHECK(make_cache_key(*back, "t", "").exact == make_cache_key(all, "t", "").exact);
    CHECK(back->n == 2);
    CHECK(back->seed == 42);
    CHECK(back->extra == all.extra);
    CHECK(back->options == all.options);
    CHECK(back->metadata == all.metadata);
    CHECK(back->tools == all.tools);
    CHECK(back->cache_explicit);
    REQUIRE(back->messages.size() == all.messages.size());
    for (std::size_t i = 0; i < all.messages.size(); ++i) CHECK(back->messages[i] == all.messages[i]);
}

TEST_CASE("parse_chat_request: content parts in order - images - unknown fields kept") {
    const std::string body = std::string(R"({"model":"gpt-4o-mini","top_k":40,"min_p":0.05,"messages":[{"role":"user","content":[)") +
                             R"({"type":"text","text":"first"},{"type":"image_url","image_url":{"url":"data:image/png;base64,)" +
                             k_png_b64 + R"(","detail":"low"}},{"type":"text","text":"second"},)" +
                             R"({"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]})";
    auto r = parse_chat_request(body);
    REQUIRE(r);
    REQUIRE(r->messages.size() == 1);
    const auto& m = r->messages[0];
    REQUIRE(m.parts.size() == 4);
    CHECK(m.content == "first\nsecond");
    CHECK(m.parts[1].media_type == "image/png");
    CHECK(m.parts[1].data == k_png_b64);
    CHECK(m.parts[1].detail == "low");
    CHECK(m.parts[3].url == "https://example.com/cat.jpg");
    CHECK(has_images(*r));
    REQUIRE(r->extra.size() == 2);
    CHECK(r->extra[0] == std::pair<std::string, std::string>{"min_p", "0.05"});
    CHECK(r->extra[1] == std::pair<std::string, std::string>{"top_k", "40"});
}

TEST_CASE("parse_chat_request: wrong types and out-of-range values are refused, never ignored") {
    auto code = [](const std::string& body) {
        auto r = parse_chat_request(body);
        return r ? std::string("ok") : code_string(r.error().code);
    };
    const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
    CHECK(code("{" + msgs + "}") == "ok");
    CHECK(code(R"({"model":5,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"stop":5,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"stop":["a",1],)" + msgs + "}") == "E4502");
    CHECK(code(R"({"tools":"x",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"tools":[{"type":"function","function":{}}],)" + msgs + "}") == "E4502");
    CHECK(code(R"({"l04":"x",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"max_tokens":1e30,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"max_tokens":9223372036854775807,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"max_tokens":0,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"n":0,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"n":"2",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"seed":1.5,)" + msgs + "}") == "E4502");
    CHECK(code(R"({"logprobs":"yes",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"temperature":"hot",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"stream":"true",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"response_format":"json",)" + msgs + "}") == "E4502");
    CHECK(code(R"({"l04":{"timeout":"inf"},)" + msgs + "}") == "E4502");
    CHECK(code(R"({"l04":{"timeout":-1},)" + msgs + "}") == "E4502");
    CHECK(code(R"({"l04":{"cache_threshold":2},)" + msgs + "}") == "E4502");
    CHECK(code(R"({"l04":{"options":[1]},)" + msgs + "}") == "E4502");
    CHECK(code(R"({"messages":[{"role":"user","content":5}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGk="}}]}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,notbase64"}}]}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"hi"}]})") == "E4501");
    CHECK(code(R"({"messages":[{"role":"tool","content":"42"}]})") == "E4501");
    // Nesting deeper than 64 levels is refused before anything recursive runs.
    std::string deep = R"({"messages":[{"role":"user","content":"hi"}],"tool_choice":)";
    for (int i = 0; i < 2000; ++i) deep += "[";
    for (int i = 0; i < 2000; ++i) deep += "]";
    deep += "}";
    CHECK(code(deep) == "E4500");
}

// ------------------------------------------------------------------ adapters

namespace {

struct Wire {
    json body;
    Result<InferenceResponse> result = fail(ErrorCode::internal_error, "not run");
};

Wire send(const std::string& kind, const InferenceRequest& req, test::FakeResponse resp) {
    ProviderInfo info;
    info.id = kind;
    info.kind = kind;
    info.base_url = "https://upstream.test";
    ModelInfo model;
    model.id = "m";
    model.provider = kind;
    model.name = "upstream-model";
    model.max_output_tokens = 4096;
    ProviderConfig cfg;
    cfg.info = &info;
    cfg.base_url = info.base_url;
    cfg.api_key = "k-test-1234567890";
    cfg.configured = true;
    test::FakeTransport transport(1, 0);
    transport.push(std::move(resp));
    ManualClock clock(1700000000000);
    auto p = make_provider(cfg, transport, clock);
    REQUIRE(p);
    Wire w;
    w.result = (*p)->complete(ProviderRequest{req, model, std::chrono::milliseconds(10000), nullptr});
    w.body = json::parse(transport.last_request().body);
    return w;
}

test::FakeResponse rec(const std::string& dir, const std::string& name) {
    return test::recorded("wire/" + dir + "/" + name + ".headers", "wire/" + dir + "/" + name + ".json");
}

}  // namespace

TEST_CASE("adapters: images reach each provider in its own form, base64 byte for byte") {
    const auto req = with_image();
    auto o = send("openai", req, rec("openai", "chat_nonstream"));
    REQUIRE(o.result);
    const json& oc = o.body["messages"][0]["content"];
    REQUIRE(oc.is_array());
    CHECK(oc[0] == json{{"type", "text"}, {"text", "what is in this picture?"}});
    CHECK(oc[1]["image_url"]["url"] == std::string("data:image/png;base64,") + k_png_b64);

    auto a = send("anthropic", req, rec("anthropic", "messages_nonstream"));
    REQUIRE(a.result);
    const json& ac = a.body["messages"][0]["content"];
    CHECK(ac[0] == json{{"type", "text"}, {"text", "what is in this picture?"}});
    CHECK(ac[1]["type"] == "image");
    CHECK(ac[1]["source"] == json{{"type", "base64"}, {"media_type", "image/png"}, {"data", k_png_b64}});

    auto l = send("ollama", req, rec("ollama", "chat_nonstream"));
    REQUIRE(l.result);
    CHECK(l.body["messages"][0]["content"] == "what is in this picture?");
    CHECK(l.body["messages"][0]["images"] == json::array({k_png_b64}));

    auto g = send("gemini", req, rec("gemini", "generate_content"));
    REQUIRE(g.result);
    const json& gp = g.body["contents"][0]["parts"];
    CHECK(gp[0] == json{{"text", "what is in this picture?"}});
    CHECK(gp[1]["inline_data"] == json{{"mime_type", "image/png"}, {"data", k_png_b64}});

    // A URL image: OpenAI and Anthropic take it as a URL.
    auto u = with_image();
    u.messages[0].parts[1].data.clear();
    u.messages[0].parts[1].url = "https://example.com/cat.png";
    u.messages[0].parts[1].detail = "high";
    auto ou = send("openai", u, rec("openai", "chat_nonstream"));
    CHECK(ou.body["messages"][0]["content"][1]["image_url"] ==
          json{{"url", "https://example.com/cat.png"}, {"detail", "high"}});
    auto au = send("anthropic", u, rec("anthropic", "messages_nonstream"));
    CHECK(au.body["messages"][0]["content"][1]["source"] == json{{"type", "url"}, {"url", "https://example.com/cat.png"}});
}

TEST_CASE("adapters: mapped fields land where each provider reads them, typed") {
    auto r = base();
    r.seed = 7;
    r.presence_penalty = 0.25;
    r.frequency_penalty = 0.5;
    r.stop = {"END"};
    r.options["num_ctx"] = option_from_text("8192");
    r.options["keep_alive"] = option_from_text("5m");
    auto l = send("ollama", r, rec("ollama", "chat_nonstream"));
    REQUIRE(l.result);
    CHECK(l.body["options"]["seed"] == 7);
    CHECK(l.body["options"]["presence_penalty"] == 0.25);
    CHECK(l.body["options"]["frequency_penalty"] == 0.5);
    CHECK(l.body["options"]["num_ctx"] == 8192);  // a number, not "8192"
    CHECK(l.body["keep_alive"] == "5m");

    auto gr = base();
    gr.seed = 7;
    gr.presence_penalty = 0.25;
    gr.response_format = R"({"json_schema":{"name":"p","schema":{"properties":{"a":{"type":"string"}},"type":"object"}},"type":"json_schema"})";
    gr.options["top_k"] = option_from_text("20");
    auto g = send("gemini", gr, rec("gemini", "generate_content"));
    REQUIRE(g.result);
    CHECK(g.body["generationConfig"]["seed"] == 7);
    CHECK(g.body["generationConfig"]["presencePenalty"] == 0.25);
    CHECK(g.body["generationConfig"]["topK"] == 20);
    CHECK(g.body["generationConfig"]["responseMimeType"] == "application/json");
    CHECK(g.body["generationConfig"]["responseJsonSchema"]["properties"]["a"]["type"] == "string");

    auto ar = base();
    ar.temperature = 0.9;  // sent as is, never clamped
    ar.user = "user-7";
    ar.tools.push_back(ToolSpec{"f", "", R"({"type":"object"})"});
    ar.parallel_tool_calls = false;
    ar.options["top_k"] = option_from_text("5");
    ar.response_format = gr.response_format;
    auto a = send("anthropic", ar, rec("anthropic", "messages_nonstream"));
    REQUIRE(a.result);
    CHECK(a.body["temperature"] == 0.9);
    CHECK(a.body["metadata"]["user_id"] == "user-7");
    CHECK(a.body["tool_choice"]["disable_parallel_tool_use"] == true);
    CHECK(a.body["top_k"] == 5);
    CHECK(a.body["output_config"]["format"]["type"] == "json_schema");
    CHECK(a.body["output_config"]["format"]["schema"]["properties"]["a"]["type"] == "string");

    auto orq = base();
    orq.n = 2;
    orq.seed = 3;
    orq.logprobs = true;
    orq.top_logprobs = 2;
    orq.logit_bias = R"({"50256":-100})";
    orq.user = "u";
    orq.store = true;
    orq.metadata["job"] = "nightly";
    orq.reasoning_effort = "low";
    orq.service_tier = "flex";
    orq.tools.push_back(ToolSpec{"f", "", R"({"type":"object"})", true, ""});
    orq.extra = {{"top_k", "40"}, {"repetition_penalty", "1.1"}};
    orq.options["min_p"] = option_from_text("0.05");
    auto o = send("openai", orq, rec("openai", "chat_nonstream"));
    REQUIRE(o.result);
    CHECK(o.body["n"] == 2);
    CHECK(o.body["seed"] == 3);
    CHECK(o.body["logprobs"] == true);
    CHECK(o.body["top_logprobs"] == 2);
    CHECK(o.body["logit_bias"]["50256"] == -100);
    CHECK(o.body["user"] == "u");
    CHECK(o.body["store"] == true);
    CHECK(o.body["metadata"]["job"] == "nightly");
    CHECK(o.body["reasoning_effort"] == "low");
    CHECK(o.body["service_tier"] == "flex");
    CHECK(o.body["tools"][0]["function"]["strict"] == true);
    CHECK(o.body["top_k"] == 40);
    CHECK(o.body["repetition_penalty"] == 1.1);
    CHECK(o.body["min_p"] == 0.05);
}

TEST_CASE("adapters: OpenAI answers with several choices and logprobs come back whole") {
    test::FakeResponse resp;
    resp.head.status = 200;
    resp.head.headers["content-type"] = "application/json";
    resp.body = R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[)"
                R"({"index":0,"message":{"role":"assistant","content":"one","annotations":[{"type":"url_citation","url_citation":{"url":"https://a.example"}}]},"logprobs":{"content":[{"token":"one","logprob":-0.1}]},"finish_reason":"stop"},)"
                R"({"index":1,"message":{"role":"assistant","content":"two"},"logprobs":{"content":[{"token":"two","logprob":-0.2}]},"finish_reason":"length"}],)"
                R"("usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";
    auto r = base();
    r.n = 2;
    r.logprobs = true;
    auto o = send("openai", r, resp);
    REQUIRE(o.result);
    CHECK(o.result->content == "one");
    CHECK(json::parse(o.result->logprobs)["content"][0]["token"] == "one");
    REQUIRE(o.result->more_choices.size() == 1);
    CHECK(o.result->more_choices[0].content == "two");
    CHECK(o.result->more_choices[0].finish_reason == "length");
    CHECK(json::parse(o.result->more_choices[0].logprobs)["content"][0]["logprob"] == -0.2);
    // And l04d's answer carries both.
    const json out = chat_response_to_json(*o.result);
    REQUIRE(out["choices"].size() == 2);
    CHECK(out["choices"][1]["message"]["content"] == "two");
    CHECK(out["choices"][1]["index"] == 1);
    CHECK(out["choices"][0]["logprobs"]["content"][0]["token"] == "one");
    // Keys of the reply message l04 does not read come back as sent.
    CHECK(out["choices"][0]["message"]["annotations"][0]["url_citation"]["url"] == "https://a.example");
    // With stream, fields whose reply parts a stream would not carry are refused.
    auto sr = base();
    sr.stream = true;
    sr.extra = {{"web_search_options", "{}"}};
    CHECK(refused_field(sr, ProviderKind::openai));
    sr.stream = false;
    CHECK_FALSE(refused_field(sr, ProviderKind::openai));
}

TEST_CASE("request fields: options that name a request field are refused for OpenAI-kind servers") {
    for (const char* name : {"model", "messages", "n", "logprobs", "stream", "stream_options", "tools"}) {
        INFO(name);
        auto r = base();
        r.options[name] = option_from_text("3");
        auto refusal = refused_field(r, ProviderKind::openai);
        REQUIRE(refusal);
        CHECK(refusal->reason.find("set the field") != std::string::npos);
    }
    auto r = base();
    r.options["top_k"] = option_from_text("40");
    CHECK_FALSE(refused_field(r, ProviderKind::openai));
}

TEST_CASE("request fields: enum values the mapping adapters do not know are refused, not turned into defaults") {
    auto r = base();
    r.tool_choice = R"("requried")";
    CHECK(refused_field(r, ProviderKind::anthropic));
    CHECK(refused_field(r, ProviderKind::gemini));
    CHECK_FALSE(refused_field(r, ProviderKind::openai));  // forwarded: the server judges it
    r.tool_choice = R"({"function":{"name":"f"},"type":"function"})";
    CHECK_FALSE(refused_field(r, ProviderKind::anthropic));
    CHECK_FALSE(refused_field(r, ProviderKind::gemini));
    r = base();
    r.response_format = R"({"type":"json"})";
    CHECK(refused_field(r, ProviderKind::ollama));
    CHECK(refused_field(r, ProviderKind::gemini));
    CHECK(refused_field(r, ProviderKind::anthropic));
    CHECK_FALSE(refused_field(r, ProviderKind::openai));
}

TEST_CASE("parse_chat_request: message and part keys l04 does not read are kept - forwarded to OpenAI - refused elsewhere") {
    const std::string body =
        R"({"model":"x","messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},)"
        R"({"role":"assistant","content":"The answer is","prefix":true},)"
        R"({"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]})";
    auto r = parse_chat_request(body);
    REQUIRE(r);
    REQUIRE(r->messages.size() == 3);
    CHECK_FALSE(r->messages[0].parts[0].raw.empty());
    REQUIRE(r->messages[1].extra.size() == 1);
    CHECK(r->messages[1].extra[0].first == "prefix");
    CHECK(r->messages[2].parts[0].kind == ContentPart::Kind::other);  // a refusal part is accepted
    CHECK_FALSE(refused_field(*r, ProviderKind::openai));
    CHECK(refused_field(*r, ProviderKind::anthropic));
    CHECK(refused_field(*r, ProviderKind::ollama));
    // The round trip through l04ctl's JSON keeps them.
    auto back = parse_chat_request(chat_request_to_json(*r).dump());
    REQUIRE(back);
    CHECK(back->messages == r->messages);
    // And the OpenAI adapter sends them as they came.
    auto o = send("openai", *r, rec("openai", "chat_nonstream"));
    REQUIRE(o.result);
    CHECK(o.body["messages"][0]["content"][0]["cache_control"]["type"] == "ephemeral");
    CHECK(o.body["messages"][1]["prefix"] == true);
    CHECK(o.body["messages"][2]["content"][0]["type"] == "refusal");
    // They are part of the key.
    auto plain = *r;
    plain.messages[1].extra.clear();
    CHECK(make_cache_key(plain, "t", "").exact != make_cache_key(*r, "t", "").exact);
}

TEST_CASE("response_from_json: every choice keeps its tool calls - malformed ones are skipped") {
    const json j = {{"id", "x"},
                    {"choices",
                     json::array({{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "a"}}}},
                                  {{"index", 1},
                                   {"message",
                                    {{"role", "assistant"},
                                     {"content", ""},
                                     {"tool_calls", json::array({{{"id", "c1"}, {"type", "function"},
                                                                  {"function", {{"name", "f"}, {"arguments", "{}"}}}},
                                                                 {{"id", "bad"}}})}}}}})}};
    auto r = response_from_json(j);
    REQUIRE(r.more_choices.size() == 1);
    REQUIRE(r.more_choices[0].tool_calls.size() == 1);
    CHECK(r.more_choices[0].tool_calls[0].name == "f");
}
