// Google Gemini adapter (Generative Language API v1beta): generateContent,
// streamGenerateContent?alt=sse (each event a whole GenerateContentResponse,
// the last one carrying finishReason; no [DONE] sentinel), the key in the
// x-goog-api-key header (never in the URL), usageMetadata.
#include <l04/core/strings.hpp>
#include <l04/http/sse_parser.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/http_common.hpp>

#include <cmath>
#include <cstdlib>
#include <map>

namespace l04 {

namespace {

using detail::json;

std::string finish_reason_of(const std::string& r) {
    if (r.empty() || r == "STOP") return "stop";
    if (r == "MAX_TOKENS") return "length";
    if (r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" || r == "SPII" ||
        r == "IMAGE_SAFETY")
        return "content_filter";
    return to_lower(r);
}

// google.rpc.RetryInfo in an error's details: {"retryDelay": "17s"}.
std::optional<std::chrono::milliseconds> retry_info_of(const json& body) {
    const json* err = detail::obj_of(body, "error");
    const json* details = err ? detail::arr_of(*err, "details") : nullptr;
    if (!details) return std::nullopt;
    for (const auto& d : *details) {
        if (detail::str_of(d, "@type").find("RetryInfo") == std::string::npos) continue;
        std::string delay = detail::str_of(d, "retryDelay");
        if (delay.empty()) continue;
        char* end = nullptr;
        double secs = std::strtod(delay.c_str(), &end);
        if (end == delay.c_str() || secs < 0) continue;
        return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(secs * 1000)));
    }
    return std::nullopt;
}

// Google reports per-minute limits as "You exceeded your current quota"; a
// RetryInfo says the limit resets soon, so it is a rate limit, not a spent quota.
void refine_gemini_error(Error& e, std::string_view body) {
    auto j = detail::parse_json(body);
    if (!j) return;
    auto retry = retry_info_of(*j);
    if (!retry) return;
    if (e.code == ErrorCode::quota_exhausted) {
        e.code = ErrorCode::rate_limit_exceeded;
        e.retryable = true;
    }
    if (!e.retry_after) e.retry_after = retry;
}

struct Usage {
    std::optional<std::int64_t> prompt, candidates, thoughts, total;
    void take(const json& u) {
        prompt = detail::int_of(u, "promptTokenCount");
        candidates = detail::int_of(u, "candidatesTokenCount");
        thoughts = detail::int_of(u, "thoughtsTokenCount");
        total = detail::int_of(u, "totalTokenCount");
    }
    // Thinking tokens are billed as output: they count as completion tokens.
    std::optional<std::int64_t> completion() const {
        if (!candidates && !thoughts) return std::nullopt;
        return candidates.value_or(0) + thoughts.value_or(0);
    }
};

class GeminiProvider final : public detail::HttpProviderBase {
public:
    using HttpProviderBase::HttpProviderBase;

    Result<InferenceResponse> complete(const ProviderRequest& req) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> {
            L04_TRY_ASSIGN(auto body, build_body(req));
            auto http = detail::make_http_request("POST", model_url(req.model.name, ":generateContent"), headers(),
                                                  std::move(body), req.timeout, m_timeout_ms, req.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            auto j = detail::parse_json(text);
            if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "answer is not a JSON object", text));
            InferenceResponse resp = detail::new_response(req, m_id);
            detail::Accumulator acc(nullptr);
            State st;
            if (auto e = absorb(*j, acc, st)) return fail(std::move(*e));
            return finish(req, acc, st, resp);
        });
    }

    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> { return run_stream(req, sink); });
    }

    // POST .../{model}:batchEmbedContents: one request per input,
    // embeddings[].values. Gemini reports no token count: estimated.
    Result<EmbedResult> embed(const EmbedCall& call) override {
        // Gemini takes at most 100 requests per batch: larger calls go in
        // several, answered in order.
        constexpr std::size_t k_batch = 100;
        if (call.inputs.size() > k_batch) {
            EmbedResult all;
            for (std::size_t i = 0; i < call.inputs.size(); i += k_batch) {
                const std::vector<std::string> part(call.inputs.begin() + static_cast<std::ptrdiff_t>(i),
                                                    call.inputs.begin() + static_cast<std::ptrdiff_t>(std::min(i + k_batch, call.inputs.size())));
                EmbedCall sub{call.model, part, call.dimensions, call.timeout, call.cancel};
                L04_TRY_ASSIGN(auto r, embed(sub));
                for (auto& v : r.vectors) all.vectors.push_back(std::move(v));
                all.prompt_tokens += r.prompt_tokens;
                all.estimated = all.estimated || r.estimated;
            }
            return all;
        }
        return detail::guard_json(m_id, [&]() -> Result<EmbedResult> {
            json reqs = json::array();
            for (const auto& t : call.inputs) {
                json one{{"model", "models/" + bare_model(call.model.name)}, {"content", {{"parts", json::array({{{"text", t}}})}}}};
                if (call.dimensions) one["outputDimensionality"] = *call.dimensions;
                reqs.push_back(std::move(one));
            }
            auto http = detail::make_http_request("POST", model_url(call.model.name, ":batchEmbedContents"), headers(),
                                                  detail::dump(json{{"requests", std::move(reqs)}}), call.timeout,
                                                  m_timeout_ms, call.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            auto j = detail::parse_json(text);
            if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "batchEmbedContents answer is not JSON", text));
            const json* arr = detail::arr_of(*j, "embeddings");
            if (!arr) return fail(detail::parse_error(m_id, "batchEmbedContents answer has no embeddings array", text));
            L04_TRY_ASSIGN(auto vecs, detail::embedding_vectors(*arr, "values", call.inputs.size(), call.dimensions, m_id));
            EmbedResult r;
            r.vectors = std::move(vecs);
            for (const auto& t : call.inputs) r.prompt_tokens += estimate_tokens(t);
            r.estimated = true;
            return r;
        });
    }

    ProviderHealth health_check(std::chrono::milliseconds timeout) override {
        auto http = detail::make_http_request("GET", detail::join_url(m_base, "/v1beta/models"), headers(false), "",
                                              timeout, 0, nullptr);
        return detail::probe_model_list(ctx(), http, "models", "models listed");
    }

private:
    struct State {
        bool finished = false;
        std::string finish_reason, provider_model, response_id;
        Usage usage;
    };

    detail::CallContext ctx() { return detail::CallContext{m_transport, m_clock, m_id, m_key, refine_gemini_error}; }

    static std::string bare_model(const std::string& name) {
        return name.rfind("models/", 0) == 0 ? name.substr(7) : name;
    }

    std::string model_url(const std::string& model, std::string_view method) const {
        return detail::join_url(m_base, "/v1beta/models/" + bare_model(model) + std::string(method));
    }

    std::vector<std::pair<std::string, std::string>> headers(bool json_body = true) const {
        std::vector<std::pair<std::string, std::string>> h;
        if (json_body) h.emplace_back("Content-Type", "application/json");
        if (!m_key.empty()) h.emplace_back("x-goog-api-key", m_key);
        return h;
    }

    static json tool_config_of(const std::string& text) {
        json c = detail::json_or_string(text);
        if (c.is_string()) {
            const std::string s = c.get<std::string>();
            const char* mode = s == "none" ? "NONE" : (s == "required" || s == "any") ? "ANY" : "AUTO";
            return {{"functionCallingConfig", {{"mode", mode}}}};
        }
        if (c.is_object() && detail::str_of(c, "type") == "function") {
            const json* fn = detail::obj_of(c, "function");
            return {{"functionCallingConfig",
                     {{"mode", "ANY"},
                      {"allowedFunctionNames", json::array({fn ? detail::str_of(*fn, "name") : std::string()})}}}};
        }
        return c;
    }

    Result<std::string> build_body(const ProviderRequest& pr) const {
        const InferenceRequest& r = pr.request;
        std::string system = r.system_prompt;
        json contents = json::array();
        std::map<std::string, std::string> tool_names;  // tool_call_id -> function name
        for (const auto& m : r.messages) {
            switch (m.role) {
                case Role::system:
                    if (!system.empty()) system += "\n\n";
                    system += m.content;
                    break;
                case Role::user: {
                    if (m.parts.empty()) {
                        contents.push_back({{"role", "user"}, {"parts", json::array({{{"text", m.content}}})}});
                        break;
                    }
                    json parts = json::array();
                    for (const auto& p : m.parts) {
                        if (p.kind == ContentPart::Kind::text) parts.push_back({{"text", p.text}});
                        else if (p.is_image() && !p.data.empty())
                            parts.push_back({{"inline_data", {{"mime_type", p.media_type}, {"data", p.data}}}});
                        else
                            return fail(ErrorCode::invalid_parameter,
                                        m_id + " takes images only inline and no other content parts");
                    }
                    contents.push_back({{"role", "user"}, {"parts", std::move(parts)}});
                    break;
                }
                case Role::assistant: {
                    json parts = json::array();
                    if (!m.content.empty()) parts.push_back({{"text", m.content}});
                    for (const auto& tc : m.tool_calls) {
                        auto args = detail::parse_json(tc.arguments.empty() ? "{}" : tc.arguments);
                        if (!args || !args->is_object())
                            return fail(ErrorCode::invalid_messages,
                                        "tool call '" + tc.name + "' has arguments that are not a JSON object");
                        parts.push_back({{"functionCall", {{"name", tc.name}, {"args", *args}}}});
                        tool_names[tc.id] = tc.name;
                    }
                    if (!parts.empty()) contents.push_back({{"role", "model"}, {"parts", std::move(parts)}});
                    break;
                }
                case Role::tool: {
                    auto parsed = detail::parse_json(m.content);
                    json response = parsed && parsed->is_object() ? *parsed : json{{"result", m.content}};
                    auto it = tool_names.find(m.tool_call_id);
                    json part = {{"functionResponse",
                                  {{"name", it != tool_names.end() ? it->second : m.name}, {"response", response}}}};
                    // Results of parallel calls go in one turn.
                    if (!contents.empty() && contents.back()["role"] == "user" &&
                        contents.back()["parts"].back().contains("functionResponse"))
                        contents.back()["parts"].push_back(std::move(part));
                    else
                        contents.push_back({{"role", "user"}, {"parts", json::array({std::move(part)})}});
                    break;
                }
            }
        }
        json body = {{"contents", std::move(contents)}};
        if (!system.empty()) body["systemInstruction"] = {{"parts", json::array({{{"text", system}}})}};
        json gen = json::object();
        if (r.temperature) gen["temperature"] = *r.temperature;
        if (r.top_p) gen["topP"] = *r.top_p;
        if (r.max_tokens) gen["maxOutputTokens"] = *r.max_tokens;
        if (!r.stop.empty()) gen["stopSequences"] = r.stop;
        if (r.seed) gen["seed"] = *r.seed;
        if (r.presence_penalty) gen["presencePenalty"] = *r.presence_penalty;
        if (r.frequency_penalty) gen["frequencyPenalty"] = *r.frequency_penalty;
        if (!r.response_format.empty()) {
            json rf = detail::json_or_string(r.response_format);
            const std::string type = detail::str_of(rf, "type");
            if (type == "json_object" || type == "json_schema") gen["responseMimeType"] = "application/json";
            if (type == "json_schema") {
                // The whole JSON Schema (responseSchema takes only an OpenAPI subset).
                const json* js = detail::obj_of(rf, "json_schema");
                const json* schema = js ? detail::obj_of(*js, "schema") : nullptr;
                if (!schema)
                    return fail(ErrorCode::invalid_parameter, "response_format json_schema needs json_schema.schema");
                gen["responseJsonSchema"] = *schema;
            }
        }
        for (const auto& [k, v] : r.options) {
            if (k == "top_k") gen["topK"] = detail::option_json(v);
            else if (k == "thinking_budget") gen["thinkingConfig"] = {{"thinkingBudget", detail::option_json(v)}};
        }
        if (!gen.empty()) body["generationConfig"] = std::move(gen);
        if (!r.tools.empty()) {
            json decls = json::array();
            for (const auto& t : r.tools) {
                json d = {{"name", t.name}};
                if (!t.description.empty()) d["description"] = t.description;
                if (!t.parameters.empty()) {
                    auto p = detail::parse_json(t.parameters);
                    if (!p || !p->is_object())
                        return fail(ErrorCode::invalid_parameter,
                                    "tool '" + t.name + "': parameters is not a JSON Schema object");
                    d["parameters"] = std::move(*p);
                }
                decls.push_back(std::move(d));
            }
            body["tools"] = json::array({{{"functionDeclarations", std::move(decls)}}});
        }
        if (!r.tool_choice.empty()) body["toolConfig"] = tool_config_of(r.tool_choice);
        return detail::dump(body);
    }

    // Takes one GenerateContentResponse into acc/st; an Error when it
    // reports one (an error object, or a prompt blocked with no answer).
    std::optional<Error> absorb(const json& j, detail::Accumulator& acc, State& st) {
        if (const json* err = detail::obj_of(j, "error")) {
            int status = static_cast<int>(detail::int_of(*err, "code").value_or(500));
            return detail::payload_error(status, j, ctx());
        }
        if (std::string v = detail::str_of(j, "modelVersion"); !v.empty()) st.provider_model = v;
        if (std::string v = detail::str_of(j, "responseId"); !v.empty()) st.response_id = v;
        if (const json* u = detail::obj_of(j, "usageMetadata")) st.usage.take(*u);
        const json* candidates = detail::arr_of(j, "candidates");
        if (!candidates || candidates->empty()) {
            if (const json* fb = detail::obj_of(j, "promptFeedback")) {
                if (std::string reason = detail::str_of(*fb, "blockReason"); !reason.empty()) {
                    Error e(ErrorCode::provider_bad_request, m_id + " blocked the prompt (" + reason + ")");
                    e.retryable = false;
                    e.details = reason;
                    return e;
                }
            }
            return std::nullopt;  // a usage-only event
        }
        const json& c0 = (*candidates)[0];
        if (const json* content = detail::obj_of(c0, "content")) {
            if (const json* parts = detail::arr_of(*content, "parts")) {
                for (const auto& p : *parts) {
                    if (p.is_object() && p.value("thought", false)) continue;  // thought summaries
                    if (!acc.text(detail::str_of(p, "text"))) return std::nullopt;
                    if (const json* fc = detail::obj_of(p, "functionCall")) {
                        const std::size_t slot = acc.tool_calls.size();
                        std::string id = detail::str_of(*fc, "id");
                        if (id.empty()) id = "call_" + std::to_string(slot);
                        if (!acc.tool_begin(slot, id, detail::str_of(*fc, "name"))) return std::nullopt;
                        auto it = fc->find("args");
                        if (!acc.tool_args(slot, it != fc->end() ? detail::dump(*it) : "{}")) return std::nullopt;
                    }
                }
            }
        }
        if (std::string fr = detail::str_of(c0, "finishReason"); !fr.empty()) {
            st.finished = true;
            st.finish_reason = fr;
        }
        return std::nullopt;
    }

    Result<InferenceResponse> finish(const ProviderRequest& req, detail::Accumulator& acc, State& st,
                                     InferenceResponse& resp) {
        if (!st.finished) return fail(detail::truncated_stream_error(m_id, "a candidate with finishReason"));
        resp.content = std::move(acc.content);
        resp.tool_calls = std::move(acc.tool_calls);
        resp.finish_reason = resp.tool_calls.empty() ? finish_reason_of(st.finish_reason) : "tool_calls";
        resp.metadata["provider_finish_reason"] = st.finish_reason;
        resp.metadata["provider_model"] = st.provider_model;
        if (!st.response_id.empty()) resp.metadata["provider_response_id"] = st.response_id;
        if (st.usage.thoughts) resp.metadata["reasoning_tokens"] = std::to_string(*st.usage.thoughts);
        detail::set_usage(resp, req.request, st.usage.prompt, st.usage.completion(), st.usage.total);
        return std::move(resp);
    }

    Result<InferenceResponse> run_stream(const ProviderRequest& req, const ChunkSink& sink) {
        L04_TRY_ASSIGN(auto body, build_body(req));
        auto http = detail::make_http_request("POST", model_url(req.model.name, ":streamGenerateContent?alt=sse"),
                                              headers(), std::move(body), req.timeout, m_timeout_ms, req.cancel);
        http.headers.emplace_back("Accept", "text/event-stream");
        InferenceResponse resp = detail::new_response(req, m_id);
        detail::Accumulator acc(&sink);
        SseParser parser;
        std::vector<SseEvent> events;
        std::optional<Error> stream_error;
        State st;

        auto handle = [&](const SseEvent& ev) -> bool {
            auto j = detail::parse_json(ev.data);
            if (!j || !j->is_object()) {
                stream_error = detail::parse_error(m_id, "stream event is not a JSON object", ev.data);
                return false;
            }
            if (auto e = absorb(*j, acc, st)) {
                stream_error = std::move(*e);
                return false;
            }
            return !acc.caller_gone();
        };
        auto on_body = detail::feed_parser(parser, events, handle, stream_error);
        auto head = detail::exchange(ctx(), http, on_body);
        if (stream_error) return fail(*stream_error);
        if (acc.caller_gone()) return fail(detail::caller_gone_error(m_id));
        if (!head) return fail(head.error());  // no sentinel: a broken connection may hide more events
        L04_TRY(detail::finish_parser(parser, events, handle));
        if (stream_error) return fail(*stream_error);
        auto r = finish(req, acc, st, resp);
        if (r) acc.finish(*r);
        return r;
    }

};

}  // namespace

std::unique_ptr<Provider> make_gemini_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    return std::make_unique<GeminiProvider>(cfg, transport, clock);
}

}  // namespace l04
