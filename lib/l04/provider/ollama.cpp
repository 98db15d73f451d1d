// Ollama native API adapter: POST /api/chat (NDJSON stream ending with an
// object that has done:true, prompt_eval_count, eval_count and durations),
// POST /api/embed, GET /api/tags for health and for the installed models.
#include <l04/core/strings.hpp>
#include <l04/http/ndjson_parser.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/http_common.hpp>

namespace l04 {

namespace {

using detail::json;

// Ollama answers errors as {"error":"..."}; mid-stream the status is gone,
// so guess it from the words.
int status_for_ollama_error(const std::string& msg) {
    const std::string m = to_lower(msg);
    if (m.find("not found") != std::string::npos) return 404;
    if (m.find("context") != std::string::npos && m.find("length") != std::string::npos) return 400;
    if (m.find("invalid") != std::string::npos) return 400;
    if (m.find("overloaded") != std::string::npos || m.find("busy") != std::string::npos) return 503;
    return 500;
}

// The NDJSON fields that are not counted tokens are kept as metadata.
void durations_to_metadata(const json& j, InferenceResponse& r) {
    for (const char* k : {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"})
        if (auto v = detail::int_of(j, k)) r.metadata[std::string("ollama_") + k + "_ns"] = std::to_string(*v);
}

class OllamaProvider final : public detail::HttpProviderBase {
public:
    using HttpProviderBase::HttpProviderBase;

    Result<InferenceResponse> complete(const ProviderRequest& req) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> {
            L04_TRY_ASSIGN(auto body, build_body(req, false));
            auto http = detail::make_http_request("POST", detail::join_url(m_base, "/api/chat"), headers(),
                                                  std::move(body), req.timeout, m_timeout_ms, req.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            auto j = detail::parse_json(text);
            if (!j || !j->is_object())
                return fail(detail::parse_error(m_id, "chat answer is not a JSON object", text));
            if (std::string e = detail::str_of(*j, "error"); !e.empty())
                return fail(detail::payload_error(status_for_ollama_error(e), *j, ctx()));
            InferenceResponse resp = detail::new_response(req, m_id);
            detail::Accumulator acc(nullptr);
            if (!absorb(*j, acc, resp)) return fail(detail::parse_error(m_id, "chat answer has no message", text));
            if (!j->value("done", false)) return fail(detail::truncated_stream_error(m_id, "done: true"));
            resp.content = std::move(acc.content);
            resp.tool_calls = std::move(acc.tool_calls);
            finish(*j, req, resp);
            return resp;
        });
    }

    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> { return run_stream(req, sink); });
    }

    // POST /api/embed with every input; embeddings[], prompt_eval_count.
    Result<EmbedResult> embed(const EmbedCall& call) override {
        return detail::guard_json(m_id, [&]() -> Result<EmbedResult> {
            json body{{"model", call.model.name}, {"input", call.inputs}};
            if (call.dimensions) body["dimensions"] = *call.dimensions;
            auto http = detail::make_http_request("POST", detail::join_url(m_base, "/api/embed"), headers(),
                                                  detail::dump(body), call.timeout, m_timeout_ms, call.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            auto j = detail::parse_json(text);
            if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "embed answer is not JSON", text));
            const json* arr = detail::arr_of(*j, "embeddings");
            if (!arr) return fail(detail::parse_error(m_id, "embed answer has no embeddings array", text));
            L04_TRY_ASSIGN(auto vecs, detail::embedding_vectors(*arr, "", call.inputs.size(), call.dimensions, m_id));
            EmbedResult r;
            r.vectors = std::move(vecs);
            if (auto n = detail::int_of(*j, "prompt_eval_count")) r.prompt_tokens = *n;
            else {
                for (const auto& t : call.inputs) r.prompt_tokens += estimate_tokens(t);
                r.estimated = true;
            }
            return r;
        });
    }

    ProviderHealth health_check(std::chrono::milliseconds timeout) override {
        auto http = detail::make_http_request("GET", detail::join_url(m_base, "/api/tags"), headers(false), "", timeout,
                                              0, nullptr);
        return detail::probe_model_list(ctx(), http, "models", "models installed");
    }

private:
    std::vector<std::pair<std::string, std::string>> headers(bool json_body = true) const {
        std::vector<std::pair<std::string, std::string>> h;
        if (json_body) h.emplace_back("Content-Type", "application/json");
        // A key only when one is configured (an Ollama behind an authenticating proxy).
        if (!m_key.empty()) h.emplace_back("Authorization", "Bearer " + m_key);
        return h;
    }

    Result<std::string> build_body(const ProviderRequest& pr, bool stream) const {
        const InferenceRequest& r = pr.request;
        json msgs = json::array();
        if (!r.system_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", r.system_prompt}});
        std::map<std::string, std::string> tool_names;  // tool_call_id -> function name
        for (const auto& m : r.messages) {
            json o = {{"role", std::string(role_name(m.role))}, {"content", m.content}};
            // Images go beside the text, base64 as sent (URLs were refused).
            json images = json::array();
            for (const auto& p : m.parts)
                if (p.is_image()) {
                    if (p.data.empty())
                        return fail(ErrorCode::invalid_parameter, m_id + " takes images only inline, not by URL");
                    images.push_back(p.data);
                }
            if (!images.empty()) o["images"] = std::move(images);
            if (m.role == Role::assistant && !m.tool_calls.empty()) {
                json calls = json::array();
                for (const auto& tc : m.tool_calls) {
                    auto args = detail::parse_json(tc.arguments.empty() ? "{}" : tc.arguments);
                    if (!args || !args->is_object())
                        return fail(ErrorCode::invalid_messages,
                                    "tool call '" + tc.name + "' has arguments that are not a JSON object");
                    calls.push_back({{"function", {{"name", tc.name}, {"arguments", *args}}}});
                    tool_names[tc.id] = tc.name;
                }
                o["tool_calls"] = std::move(calls);
            }
            if (m.role == Role::tool) {
                if (auto it = tool_names.find(m.tool_call_id); it != tool_names.end()) o["tool_name"] = it->second;
            }
            msgs.push_back(std::move(o));
        }
        json options = json::object();
        if (r.temperature) options["temperature"] = *r.temperature;
        if (r.top_p) options["top_p"] = *r.top_p;
        if (r.max_tokens) options["num_predict"] = *r.max_tokens;
        if (!r.stop.empty()) options["stop"] = r.stop;
        if (r.seed) options["seed"] = *r.seed;
        if (r.presence_penalty) options["presence_penalty"] = *r.presence_penalty;
        if (r.frequency_penalty) options["frequency_penalty"] = *r.frequency_penalty;
        json top = json::object();  // native options that live beside "options"
        for (const auto& [k, v] : r.options) {
            if (k == "keep_alive" || k == "think") top[k] = detail::option_json(v);
            else options[k] = detail::option_json(v);
        }
        json body = {{"model", pr.model.name}, {"messages", std::move(msgs)}, {"stream", stream}};
        if (!options.empty()) body["options"] = std::move(options);
        for (auto& [k, v] : top.items()) body[k] = v;
        if (!r.tools.empty()) {
            json tools = json::array();
            for (const auto& t : r.tools) {
                json params = json{{"type", "object"}, {"properties", json::object()}};
                if (!t.parameters.empty()) {
                    auto p = detail::parse_json(t.parameters);
                    if (!p || !p->is_object())
                        return fail(ErrorCode::invalid_parameter,
                                    "tool '" + t.name + "': parameters is not a JSON Schema object");
                    params = std::move(*p);
                }
                tools.push_back(
                    {{"type", "function"},
                     {"function",
                      {{"name", t.name}, {"description", t.description}, {"parameters", std::move(params)}}}});
            }
            body["tools"] = std::move(tools);
        }
        if (!r.response_format.empty()) {
            // OpenAI's response_format → Ollama's format: "json" or a schema.
            json rf = detail::json_or_string(r.response_format);
            const std::string type = detail::str_of(rf, "type");
            if (type == "json_object")
                body["format"] = "json";
            else if (type == "json_schema") {
                const json* js = detail::obj_of(rf, "json_schema");
                const json* schema = js ? detail::obj_of(*js, "schema") : nullptr;
                body["format"] = schema ? *schema : json("json");
            }
        }
        return detail::dump(body);
    }

    // Takes one chat object's message (content and tool calls) into acc.
    // False when the object has no message at all.
    bool absorb(const json& j, detail::Accumulator& acc, InferenceResponse& resp) {
        if (resp.metadata["provider_model"].empty()) resp.metadata["provider_model"] = detail::str_of(j, "model");
        const json* msg = detail::obj_of(j, "message");
        if (!msg) return false;
        acc.text(detail::str_of(*msg, "content"));
        if (const json* calls = detail::arr_of(*msg, "tool_calls")) {
            for (const auto& c : *calls) {
                const json* fn = detail::obj_of(c, "function");
                if (!fn) continue;
                const std::size_t slot = acc.tool_calls.size();
                std::string id = detail::str_of(c, "id");
                if (id.empty()) id = "call_" + std::to_string(slot);  // older Ollama sends no id
                acc.tool_begin(slot, id, detail::str_of(*fn, "name"));
                auto it = fn->find("arguments");
                std::string args = "{}";
                if (it != fn->end()) args = it->is_string() ? it->get<std::string>() : detail::dump(*it);
                acc.tool_args(slot, args);
            }
        }
        return true;
    }

    void finish(const json& last, const ProviderRequest& req, InferenceResponse& resp) {
        std::string reason = detail::str_of(last, "done_reason");
        if (!reason.empty()) resp.metadata["provider_finish_reason"] = reason;
        if (!resp.tool_calls.empty())
            resp.finish_reason = "tool_calls";
        else if (reason == "length")
            resp.finish_reason = "length";
        else
            resp.finish_reason = "stop";
        durations_to_metadata(last, resp);
        // Ollama omits prompt_eval_count when the whole prompt came from its cache.
        detail::set_usage(resp, req.request, detail::int_of(last, "prompt_eval_count"),
                          detail::int_of(last, "eval_count"));
    }

    Result<InferenceResponse> run_stream(const ProviderRequest& req, const ChunkSink& sink) {
        L04_TRY_ASSIGN(auto body, build_body(req, true));
        auto http = detail::make_http_request("POST", detail::join_url(m_base, "/api/chat"), headers(),
                                              std::move(body), req.timeout, m_timeout_ms, req.cancel);
        InferenceResponse resp = detail::new_response(req, m_id);
        detail::Accumulator acc(&sink);
        NdjsonParser parser;
        std::vector<std::string> lines;
        std::optional<Error> stream_error;
        std::optional<json> last;

        auto handle = [&](const std::string& line) -> bool {
            if (last) return true;  // nothing may follow the done object
            auto j = detail::parse_json(line);
            if (!j || !j->is_object()) {
                stream_error = detail::parse_error(m_id, "stream line is not a JSON object", line);
                return false;
            }
            if (std::string e = detail::str_of(*j, "error"); !e.empty()) {
                stream_error = detail::payload_error(status_for_ollama_error(e), *j, ctx());
                return false;
            }
            absorb(*j, acc, resp);
            if (acc.caller_gone()) return false;
            if (j->value("done", false)) last = std::move(*j);
            return true;
        };
        auto on_body = detail::feed_parser(parser, lines, handle, stream_error);
        auto head = detail::exchange(ctx(), http, on_body);
        if (stream_error) return fail(*stream_error);
        if (acc.caller_gone()) return fail(detail::caller_gone_error(m_id));
        if (!head && !last) return fail(head.error());
        L04_TRY(detail::finish_parser(parser, lines, handle));
        if (stream_error) return fail(*stream_error);
        if (!last) return fail(detail::truncated_stream_error(m_id, "done: true"));

        resp.content = std::move(acc.content);
        resp.tool_calls = std::move(acc.tool_calls);
        finish(*last, req, resp);
        acc.finish(resp);
        return resp;
    }

};

}  // namespace

std::unique_ptr<Provider> make_ollama_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    return std::make_unique<OllamaProvider>(cfg, transport, clock);
}

Result<std::vector<std::string>> ollama_installed_models(Transport& transport, Clock& clock,
                                                         const std::string& base_url,
                                                         std::chrono::milliseconds timeout) {
    const std::string id = "ollama";
    const std::string no_key;
    detail::CallContext ctx{transport, clock, id, no_key};
    auto http = detail::make_http_request("GET", detail::join_url(base_url, "/api/tags"), {}, "", timeout, 0, nullptr);
    L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx, http));
    return detail::guard_json(id, [&]() -> Result<std::vector<std::string>> {
        auto j = detail::parse_json(text);
        const json* models = j ? detail::arr_of(*j, "models") : nullptr;
        if (!models) return fail(detail::parse_error(id, "tags answer has no models[]", text));
        std::vector<std::string> out;
        for (const auto& m : *models) {
            std::string name = detail::str_of(m, "name");
            if (name.empty()) name = detail::str_of(m, "model");
            if (!name.empty()) out.push_back(std::move(name));
        }
        return out;
    });
}

Result<OllamaModelFacts> ollama_show(Transport& transport, Clock& clock, const std::string& base_url,
                                     const std::string& model, std::chrono::milliseconds timeout) {
    const std::string id = "ollama";
    const std::string no_key;
    detail::CallContext ctx{transport, clock, id, no_key};
    auto http = detail::make_http_request("POST", detail::join_url(base_url, "/api/show"),
                                          {{"Content-Type", "application/json"}}, detail::dump(json{{"model", model}}),
                                          timeout, 0, nullptr);
    auto text = detail::exchange_buffered(ctx, http);
    if (!text) {
        Error e = text.error();
        if (e.code == ErrorCode::provider_model_not_found)
            e.message = "Ollama has no model '" + model + "' (`ollama pull " + model + "` fetches it; `l04ctl models list "
                        "--provider ollama --installed` lists what it has)";
        return fail(std::move(e));
    }
    return detail::guard_json(id, [&]() -> Result<OllamaModelFacts> {
        auto j = detail::parse_json(*text);
        if (!j || !j->is_object()) return fail(detail::parse_error(id, "show answer is not a JSON object", *text));
        OllamaModelFacts f;
        if (const json* caps = detail::arr_of(*j, "capabilities"))
            for (const auto& c : *caps)
                if (c.is_string()) f.capabilities.push_back(c.get<std::string>());
        if (const json* info = detail::obj_of(*j, "model_info"))
            for (const auto& [k, v] : info->items()) {
                const std::string_view suffix = ".context_length";
                if (k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                    v.is_number_integer())
                    f.context_length = v.get<std::int64_t>();
            }
        return f;
    });
}

}  // namespace l04
