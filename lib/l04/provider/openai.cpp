// OpenAI chat completions adapter, also used for every OpenAI-compatible
// server (llama.cpp server, vLLM, Groq, OpenRouter, Ollama's /v1): only the
// base URL, the key variable and the model names differ (models.toml).
#include <l04/core/strings.hpp>
#include <l04/http/sse_parser.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/http_common.hpp>

#include <algorithm>

namespace l04 {

namespace {

using detail::json;

// The HTTP status an OpenAI error object corresponds to, for errors that
// arrive inside a 200 answer or a stream.
int status_for_openai_error(const json& err) {
    const std::string code = detail::str_of(err, "code");
    const std::string type = detail::str_of(err, "type");
    if (auto n = detail::int_of(err, "code"); n && *n >= 400 && *n < 600) return static_cast<int>(*n);
    if (code == "context_length_exceeded") return 400;
    if (code == "invalid_api_key" || type == "authentication_error") return 401;
    if (code == "insufficient_quota" || type == "insufficient_quota") return 429;
    if (code == "rate_limit_exceeded" || type == "rate_limit_error" || type == "requests" || type == "tokens")
        return 429;
    if (code == "model_not_found") return 404;
    if (type == "invalid_request_error") return 400;
    if (type == "overloaded_error") return 503;
    return 500;
}

class OpenAiProvider final : public detail::HttpProviderBase {
public:
    OpenAiProvider(const ProviderConfig& cfg, Transport& transport, Clock& clock)
        : HttpProviderBase(cfg, transport, clock) {
        // api.openai.com deprecated max_tokens (o-series models reject it);
        // compatible servers often know only max_tokens.
        m_max_tokens_field =
            m_base.find("api.openai.com") != std::string::npos ? "max_completion_tokens" : "max_tokens";
    }

    Result<InferenceResponse> complete(const ProviderRequest& req) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> {
            L04_TRY_ASSIGN(auto body, build_body(req, false));
            auto http = detail::make_http_request("POST", detail::join_url(m_base, "/chat/completions"), headers(),
                                                  std::move(body), req.timeout, m_timeout_ms, req.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            return parse_completion(text, req);
        });
    }

    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> { return run_stream(req, sink); });
    }

    // POST {base}/embeddings: data[] ordered by its index, usage.prompt_tokens.
    Result<EmbedResult> embed(const EmbedCall& call) override {
        return detail::guard_json(m_id, [&]() -> Result<EmbedResult> {
            json body{{"model", call.model.name}, {"input", call.inputs}, {"encoding_format", "float"}};
            if (call.dimensions) body["dimensions"] = *call.dimensions;
            auto http = detail::make_http_request("POST", detail::join_url(m_base, "/embeddings"), headers(),
                                                  detail::dump(body), call.timeout, m_timeout_ms, call.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            auto j = detail::parse_json(text);
            if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "embeddings answer is not JSON", text));
            if (const json* err = detail::obj_of(*j, "error")) return fail(detail::payload_error(400, *err, ctx()));
            const json* data = detail::arr_of(*j, "data");
            if (!data) return fail(detail::parse_error(m_id, "embeddings answer has no data array", text));
            json ordered = *data;
            if (std::all_of(ordered.begin(), ordered.end(), [](const json& e) { return e.is_object() && e.contains("index"); }))
                std::stable_sort(ordered.begin(), ordered.end(), [](const json& a, const json& b) {
                    return a.at("index").get<std::int64_t>() < b.at("index").get<std::int64_t>();
                });
            L04_TRY_ASSIGN(auto vecs, detail::embedding_vectors(ordered, "embedding", call.inputs.size(), call.dimensions, m_id));
            EmbedResult r;
            r.vectors = std::move(vecs);
            const json* usage = detail::obj_of(*j, "usage");
            auto pt = usage ? detail::int_of(*usage, "prompt_tokens") : std::nullopt;
            if (pt) r.prompt_tokens = *pt;
            else {
                for (const auto& t : call.inputs) r.prompt_tokens += estimate_tokens(t);
                r.estimated = true;
            }
            return r;
        });
    }

    ProviderHealth health_check(std::chrono::milliseconds timeout) override {
        auto http = detail::make_http_request("GET", detail::join_url(m_base, "/models"), headers(false), "", timeout,
                                              0, nullptr);
        return detail::probe_model_list(ctx(), http, "data", "models listed");
    }

private:
    std::vector<std::pair<std::string, std::string>> headers(bool json_body = true) const {
        std::vector<std::pair<std::string, std::string>> h;
        if (json_body) h.emplace_back("Content-Type", "application/json");
        if (!m_key.empty()) h.emplace_back("Authorization", "Bearer " + m_key);
        return h;
    }

    Result<std::string> build_body(const ProviderRequest& pr, bool stream) const {
        const InferenceRequest& r = pr.request;
        json msgs = json::array();
        if (!r.system_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", r.system_prompt}});
        for (const auto& m : r.messages) {
            json o = {{"role", std::string(role_name(m.role))}};
            if (m.role == Role::assistant && !m.tool_calls.empty()) {
                o["content"] = m.content.empty() && m.parts.empty() ? json(nullptr) : detail::message_content_json(m);
                json calls = json::array();
                for (const auto& tc : m.tool_calls)
                    calls.push_back({{"id", tc.id},
                                     {"type", "function"},
                                     {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
                o["tool_calls"] = std::move(calls);
            } else {
                o["content"] = detail::message_content_json(m);  // parts (images) exactly as sent
            }
            if (m.role == Role::tool) o["tool_call_id"] = m.tool_call_id;
            if (!m.name.empty() && m.role != Role::tool) o["name"] = m.name;
            for (const auto& [k, v] : m.extra) o[k] = detail::parsed_or_string(v);  // prefix, ...
            msgs.push_back(std::move(o));
        }
        json body = {{"model", pr.model.name}, {"messages", std::move(msgs)}};
        if (r.temperature) body["temperature"] = *r.temperature;
        if (r.top_p) body["top_p"] = *r.top_p;
        if (r.max_tokens) body[m_max_tokens_field] = *r.max_tokens;
        if (!r.stop.empty()) body["stop"] = r.stop;
        if (!r.tools.empty()) {
            json tools = json::array();
            for (const auto& t : r.tools) {
                if (!t.raw.empty()) {  // a tool of another type, as sent
                    tools.push_back(detail::parsed_or_string(t.raw));
                    continue;
                }
                json params = json{{"type", "object"}, {"properties", json::object()}};
                if (!t.parameters.empty()) {
                    auto p = detail::parse_json(t.parameters);
                    if (!p || !p->is_object())
                        return fail(ErrorCode::invalid_parameter,
                                    "tool '" + t.name + "': parameters is not a JSON Schema object");
                    params = std::move(*p);
                }
                json fn = {{"name", t.name}, {"parameters", std::move(params)}};
                if (!t.description.empty()) fn["description"] = t.description;
                if (t.strict) fn["strict"] = *t.strict;
                tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
            }
            body["tools"] = std::move(tools);
        }
        if (!r.tool_choice.empty()) body["tool_choice"] = detail::json_or_string(r.tool_choice);
        if (!r.response_format.empty()) body["response_format"] = detail::json_or_string(r.response_format);
        // Every other field of the request table is forwarded as is
        // (core/request_fields.hpp): nothing the caller set is dropped.
        if (r.n) body["n"] = *r.n;
        if (r.seed) body["seed"] = *r.seed;
        if (r.presence_penalty) body["presence_penalty"] = *r.presence_penalty;
        if (r.frequency_penalty) body["frequency_penalty"] = *r.frequency_penalty;
        if (r.logprobs) body["logprobs"] = *r.logprobs;
        if (r.top_logprobs) body["top_logprobs"] = *r.top_logprobs;
        if (!r.logit_bias.empty()) body["logit_bias"] = detail::parsed_or_string(r.logit_bias);
        if (r.parallel_tool_calls) body["parallel_tool_calls"] = *r.parallel_tool_calls;
        if (!r.user.empty()) body["user"] = r.user;
        if (r.store) body["store"] = *r.store;
        if (r.store.value_or(false) && !r.metadata.empty()) body["metadata"] = r.metadata;
        if (!r.service_tier.empty()) body["service_tier"] = r.service_tier;
        if (!r.reasoning_effort.empty()) body["reasoning_effort"] = r.reasoning_effort;
        // Native options (-o) and unknown fields go to the top level, so
        // compatible servers get their top_k, min_p, repetition_penalty.
        for (const auto& [k, v] : r.options) body[k] = detail::option_json(v);
        for (const auto& [k, v] : r.extra) body[k] = detail::parsed_or_string(v);
        if (stream) {
            body["stream"] = true;
            body["stream_options"] = {{"include_usage", true}};
        }
        return detail::dump(body);
    }

    // Tool calls of a non-streamed message.
    static std::vector<ToolCall> tool_calls_of(const json& msg) {
        std::vector<ToolCall> out;
        if (const json* calls = detail::arr_of(msg, "tool_calls")) {
            for (const auto& c : *calls) {
                ToolCall t;
                t.id = detail::str_of(c, "id");
                if (const json* fn = detail::obj_of(c, "function")) {
                    t.name = detail::str_of(*fn, "name");
                    auto it = fn->find("arguments");
                    if (it != fn->end()) t.arguments = it->is_string() ? it->get<std::string>() : detail::dump(*it);
                }
                out.push_back(std::move(t));
            }
        }
        return out;
    }

    Result<InferenceResponse> parse_completion(std::string_view text, const ProviderRequest& req) {
        auto j = detail::parse_json(text);
        if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "chat completion is not a JSON object", text));
        if (const json* err = detail::obj_of(*j, "error"))
            return fail(detail::payload_error(status_for_openai_error(*err), *j, ctx()));
        const json* choices = detail::arr_of(*j, "choices");
        if (!choices) return fail(detail::parse_error(m_id, "chat completion has no choices[]", text));
        if (choices->empty()) return fail(ErrorCode::empty_response, m_id + " returned no choices");
        const json& c0 = (*choices)[0];
        InferenceResponse resp = detail::new_response(req, m_id);
        if (const json* msg = detail::obj_of(c0, "message")) {
            resp.content = detail::str_of(*msg, "content");
            resp.tool_calls = tool_calls_of(*msg);
            if (std::string refusal = detail::str_of(*msg, "refusal"); !refusal.empty())
                resp.metadata["refusal"] = refusal;
        }
        if (std::string fr = detail::str_of(c0, "finish_reason"); !fr.empty()) resp.finish_reason = fr;
        if (const json* lp = detail::obj_of(c0, "logprobs")) resp.logprobs = detail::dump(*lp);
        if (const json* msg = detail::obj_of(c0, "message")) {
            json extra = json::object();
            for (const auto& [k, v] : msg->items())
                if (k != "role" && k != "content" && k != "tool_calls" && k != "refusal" && !v.is_null()) extra[k] = v;
            if (!extra.empty()) resp.message_extra = detail::dump(extra);
        }
        for (std::size_t i = 1; i < choices->size(); ++i) {
            const json& ci = (*choices)[i];
            InferenceResponse::Choice ch;
            if (const json* msg = detail::obj_of(ci, "message")) {
                ch.content = detail::str_of(*msg, "content");
                ch.tool_calls = tool_calls_of(*msg);
            }
            if (std::string fr = detail::str_of(ci, "finish_reason"); !fr.empty()) ch.finish_reason = fr;
            if (const json* lp = detail::obj_of(ci, "logprobs")) ch.logprobs = detail::dump(*lp);
            resp.more_choices.push_back(std::move(ch));
        }
        resp.metadata["provider_model"] = detail::str_of(*j, "model");
        if (std::string id = detail::str_of(*j, "id"); !id.empty()) resp.metadata["provider_response_id"] = id;
        std::optional<std::int64_t> p, c, t;
        if (const json* u = detail::obj_of(*j, "usage")) {
            p = detail::int_of(*u, "prompt_tokens");
            c = detail::int_of(*u, "completion_tokens");
            t = detail::int_of(*u, "total_tokens");
        }
        detail::set_usage(resp, req.request, p, c, t);
        return resp;
    }

    Result<InferenceResponse> run_stream(const ProviderRequest& req, const ChunkSink& sink) {
        L04_TRY_ASSIGN(auto body, build_body(req, true));
        auto http = detail::make_http_request("POST", detail::join_url(m_base, "/chat/completions"), headers(),
                                              std::move(body), req.timeout, m_timeout_ms, req.cancel);
        http.headers.emplace_back("Accept", "text/event-stream");
        InferenceResponse resp = detail::new_response(req, m_id);
        detail::Accumulator acc(&sink);
        SseParser parser;
        std::vector<SseEvent> events;
        std::optional<Error> stream_error;
        bool done = false;
        std::string finish_reason, provider_model, response_id;
        std::optional<std::int64_t> up, uc, ut;

        auto handle = [&](const SseEvent& ev) -> bool {
            if (done) return true;  // nothing may follow [DONE]; ignore it
            std::string_view data = trim(ev.data);
            if (data == "[DONE]") {
                done = true;
                return true;
            }
            auto j = detail::parse_json(data);
            if (!j || !j->is_object()) {
                stream_error = detail::parse_error(m_id, "stream event is not a JSON object", data);
                return false;
            }
            if (const json* err = detail::obj_of(*j, "error")) {
                stream_error = detail::payload_error(status_for_openai_error(*err), *j, ctx());
                return false;
            }
            if (provider_model.empty()) provider_model = detail::str_of(*j, "model");
            if (response_id.empty()) response_id = detail::str_of(*j, "id");
            if (!acc.open()) return false;  // the first event (OpenAI's is the role delta)
            if (const json* u = detail::obj_of(*j, "usage")) {
                up = detail::int_of(*u, "prompt_tokens");
                uc = detail::int_of(*u, "completion_tokens");
                ut = detail::int_of(*u, "total_tokens");
            }
            const json* choices = detail::arr_of(*j, "choices");
            if (!choices) return true;
            for (const auto& ch : *choices) {
                if (detail::int_of(ch, "index").value_or(0) != 0) continue;  // n > 1 is not supported
                if (const json* delta = detail::obj_of(ch, "delta")) {
                    if (!acc.text(detail::str_of(*delta, "content"))) return false;
                    if (const json* calls = detail::arr_of(*delta, "tool_calls")) {
                        std::size_t pos = 0;
                        for (const auto& tc : *calls) {
                            auto index = static_cast<std::size_t>(
                                std::max<std::int64_t>(0, detail::int_of(tc, "index").value_or(pos)));
                            ++pos;
                            const json* fn = detail::obj_of(tc, "function");
                            std::string id = detail::str_of(tc, "id");
                            std::string name = fn ? detail::str_of(*fn, "name") : std::string();
                            if ((!id.empty() || !name.empty()) && !acc.tool_begin(index, id, name)) return false;
                            if (fn && !acc.tool_args(index, detail::str_of(*fn, "arguments"))) return false;
                        }
                    }
                }
                if (std::string fr = detail::str_of(ch, "finish_reason"); !fr.empty()) finish_reason = fr;
            }
            return true;
        };

        // Some compatible servers ignore "stream": true (or fail) with one JSON
        // body; the first bytes are kept until an event shows it is SSE.
        std::string raw;
        bool any_event = false;
        constexpr std::size_t k_raw_keep = 256 * 1024;
        auto on_body = [&](std::string_view piece) -> bool {
            if (!any_event && raw.size() < k_raw_keep) raw.append(piece.substr(0, k_raw_keep - raw.size()));
            events.clear();
            if (auto st = parser.feed(piece, events); !st) {
                stream_error = st.error();
                return false;
            }
            any_event = any_event || !events.empty();
            for (const auto& ev : events)
                if (!handle(ev)) return false;
            return true;
        };
        auto head = detail::exchange(ctx(), http, on_body);
        if (stream_error) return fail(*stream_error);
        if (acc.caller_gone()) return fail(detail::caller_gone_error(m_id));
        if (!head && !done) return fail(head.error());  // a break after [DONE] loses nothing
        if (!any_event && head) {
            if (auto j = detail::parse_json(raw); j && j->is_object()) {
                // A whole chat completion (or an error object) instead of a stream.
                auto whole = parse_completion(raw, req);
                if (!whole) return whole;
                if (!acc.text(whole->content)) return fail(detail::caller_gone_error(m_id));
                acc.finish(*whole);
                return whole;
            }
        }
        L04_TRY(detail::finish_parser(parser, events, handle));
        if (stream_error) return fail(*stream_error);
        if (!done) return fail(detail::truncated_stream_error(m_id, "data: [DONE]"));

        resp.content = std::move(acc.content);
        resp.tool_calls = std::move(acc.tool_calls);
        if (!finish_reason.empty()) resp.finish_reason = finish_reason;
        resp.metadata["provider_model"] = provider_model;
        if (!response_id.empty()) resp.metadata["provider_response_id"] = response_id;
        detail::set_usage(resp, req.request, up, uc, ut);
        acc.finish(resp);
        return resp;
    }

    std::string m_max_tokens_field;
};

}  // namespace

std::unique_ptr<Provider> make_openai_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    return std::make_unique<OpenAiProvider>(cfg, transport, clock);
}

Result<std::vector<std::string>> openai_model_ids(Transport& transport, Clock& clock, const std::string& base_url,
                                                  const std::string& api_key, std::chrono::milliseconds timeout) {
    const std::string id = "openai";
    detail::CallContext ctx{transport, clock, id, api_key};
    std::vector<std::pair<std::string, std::string>> h;
    if (!api_key.empty()) h.emplace_back("Authorization", "Bearer " + api_key);
    auto http = detail::make_http_request("GET", detail::join_url(base_url, "/models"), std::move(h), "", timeout, 0, nullptr);
    L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx, http));
    return detail::guard_json(id, [&]() -> Result<std::vector<std::string>> {
        auto j = detail::parse_json(text);
        const json* data = j ? detail::arr_of(*j, "data") : nullptr;
        if (!data) return fail(detail::parse_error(id, "models answer has no data[]", text));
        std::vector<std::string> out;
        for (const auto& m : *data)
            if (std::string mid = detail::str_of(m, "id"); !mid.empty()) out.push_back(std::move(mid));
        return out;
    });
}

}  // namespace l04
