// Anthropic Messages API adapter: system as a top-level field, max_tokens
// always sent, the SSE event sequence (message_start, content_block_start,
// ping, content_block_delta with text_delta / input_json_delta,
// content_block_stop, message_delta with usage, message_stop) and the
// `error` event mid-stream.
#include <l04/core/strings.hpp>
#include <l04/http/sse_parser.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/http_common.hpp>

#include <algorithm>
#include <map>

namespace l04 {

namespace {

using detail::json;

constexpr const char* k_api_version = "2023-06-01";
// max_tokens when the request has none: the model's limit, capped so an
// unbounded prompt does not reserve (and bill) a huge answer.
constexpr std::int64_t k_default_max_tokens = 4096;

int status_for_anthropic_error(const json& payload) {
    const json* err = detail::obj_of(payload, "error");
    const std::string type = err ? detail::str_of(*err, "type") : std::string();
    if (type == "invalid_request_error") return 400;
    if (type == "authentication_error") return 401;
    if (type == "permission_error") return 403;
    if (type == "not_found_error") return 404;
    if (type == "request_too_large") return 413;
    if (type == "rate_limit_error") return 429;
    if (type == "timeout_error") return 504;
    if (type == "overloaded_error") return 529;
    return 500;  // api_error and anything new
}

// Anthropic's stop_reason in the OpenAI vocabulary l04 answers with.
std::string finish_reason_of(const std::string& stop_reason) {
    if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
    if (stop_reason == "max_tokens") return "length";
    if (stop_reason == "tool_use") return "tool_calls";
    if (stop_reason == "refusal") return "content_filter";
    return stop_reason.empty() ? "stop" : stop_reason;
}

struct Usage {
    std::optional<std::int64_t> input, output;
    std::int64_t cache_creation = 0, cache_read = 0;

    void take(const json& u) {
        if (auto v = detail::int_of(u, "input_tokens")) input = *v;
        if (auto v = detail::int_of(u, "output_tokens")) output = *v;
        if (auto v = detail::int_of(u, "cache_creation_input_tokens")) cache_creation = *v;
        if (auto v = detail::int_of(u, "cache_read_input_tokens")) cache_read = *v;
    }
    // Prompt tokens include the cached ones: all of them were read.
    std::optional<std::int64_t> prompt() const {
        if (!input) return std::nullopt;
        return *input + cache_creation + cache_read;
    }
    void annotate(InferenceResponse& r) const {
        if (cache_creation) r.metadata["cache_creation_input_tokens"] = std::to_string(cache_creation);
        if (cache_read) r.metadata["cache_read_input_tokens"] = std::to_string(cache_read);
    }
};

class AnthropicProvider final : public detail::HttpProviderBase {
public:
    using HttpProviderBase::HttpProviderBase;

    Result<InferenceResponse> complete(const ProviderRequest& req) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> {
            L04_TRY_ASSIGN(auto body, build_body(req, false));
            auto http = detail::make_http_request("POST", detail::join_url(m_base, "/v1/messages"), headers(),
                                                  std::move(body), req.timeout, m_timeout_ms, req.cancel);
            L04_TRY_ASSIGN(auto text, detail::exchange_buffered(ctx(), http));
            return parse_message(text, req);
        });
    }

    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return detail::guard_json(m_id, [&]() -> Result<InferenceResponse> { return run_stream(req, sink); });
    }

    ProviderHealth health_check(std::chrono::milliseconds timeout) override {
        auto http = detail::make_http_request("GET", detail::join_url(m_base, "/v1/models"), headers(false), "",
                                              timeout, 0, nullptr);
        return detail::probe_model_list(ctx(), http, "data", "models listed");
    }

private:
    std::vector<std::pair<std::string, std::string>> headers(bool json_body = true) const {
        std::vector<std::pair<std::string, std::string>> h;
        if (json_body) h.emplace_back("Content-Type", "application/json");
        if (!m_key.empty()) h.emplace_back("x-api-key", m_key);
        h.emplace_back("anthropic-version", k_api_version);
        return h;
    }

    static json tool_choice_of(const std::string& text) {
        json c = detail::json_or_string(text);
        if (c.is_string()) {
            const std::string s = c.get<std::string>();
            if (s == "required" || s == "any") return {{"type", "any"}};
            if (s == "none") return {{"type", "none"}};
            return {{"type", "auto"}};
        }
        if (c.is_object() && detail::str_of(c, "type") == "function") {
            const json* fn = detail::obj_of(c, "function");
            return {{"type", "tool"}, {"name", fn ? detail::str_of(*fn, "name") : std::string()}};
        }
        return c;  // already in Anthropic's shape
    }

    Result<std::string> build_body(const ProviderRequest& pr, bool stream) const {
        const InferenceRequest& r = pr.request;
        std::string system = r.system_prompt;
        json msgs = json::array();
        for (const auto& m : r.messages) {
            switch (m.role) {
                case Role::system:
                    if (!system.empty()) system += "\n\n";
                    system += m.content;
                    break;
                case Role::user: {
                    if (m.parts.empty()) {
                        msgs.push_back({{"role", "user"}, {"content", m.content}});
                        break;
                    }
                    // Content parts in order: text blocks and image blocks.
                    json blocks = json::array();
                    for (const auto& p : m.parts) {
                        if (p.kind == ContentPart::Kind::text) {
                            if (!p.text.empty()) blocks.push_back({{"type", "text"}, {"text", p.text}});
                        } else if (p.is_image() && !p.data.empty()) {
                            static const char* const k_types[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
                            if (std::find(std::begin(k_types), std::end(k_types), p.media_type) == std::end(k_types))
                                return fail(ErrorCode::invalid_parameter,
                                            m_id + " reads JPEG, PNG, GIF and WebP images, not " + p.media_type);
                            blocks.push_back({{"type", "image"},
                                              {"source", {{"type", "base64"}, {"media_type", p.media_type}, {"data", p.data}}}});
                        } else if (p.is_image()) {
                            blocks.push_back({{"type", "image"}, {"source", {{"type", "url"}, {"url", p.url}}}});
                        } else {
                            return fail(ErrorCode::invalid_parameter, m_id + " cannot take a content part of this type");
                        }
                    }
                    msgs.push_back({{"role", "user"}, {"content", std::move(blocks)}});
                    break;
                }
                case Role::assistant: {
                    if (m.tool_calls.empty()) {
                        // Anthropic rejects empty text blocks; an empty turn says nothing.
                        if (!m.content.empty()) msgs.push_back({{"role", "assistant"}, {"content", m.content}});
                        break;
                    }
                    json blocks = json::array();
                    if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
                    for (const auto& tc : m.tool_calls) {
                        auto input = detail::parse_json(tc.arguments.empty() ? "{}" : tc.arguments);
                        if (!input || !input->is_object())
                            return fail(ErrorCode::invalid_messages,
                                        "tool call '" + tc.name + "' has arguments that are not a JSON object");
                        blocks.push_back({{"type", "tool_use"}, {"id", tc.id}, {"name", tc.name}, {"input", *input}});
                    }
                    msgs.push_back({{"role", "assistant"}, {"content", std::move(blocks)}});
                    break;
                }
                case Role::tool: {
                    json block = {{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}};
                    // Results of parallel calls go in one user turn.
                    if (!msgs.empty() && msgs.back()["role"] == "user" && msgs.back()["content"].is_array())
                        msgs.back()["content"].push_back(std::move(block));
                    else
                        msgs.push_back({{"role", "user"}, {"content", json::array({std::move(block)})}});
                    break;
                }
            }
        }
        std::int64_t max_tokens = r.max_tokens.value_or(pr.model.max_output_tokens > 0
                                                            ? std::min(pr.model.max_output_tokens, k_default_max_tokens)
                                                            : k_default_max_tokens);
        json body = {{"model", pr.model.name}, {"max_tokens", max_tokens}, {"messages", std::move(msgs)}};
        if (!system.empty()) body["system"] = system;
        if (r.temperature) body["temperature"] = *r.temperature;  // above 1 is refused (request_fields)
        if (r.top_p) body["top_p"] = *r.top_p;
        if (!r.stop.empty()) body["stop_sequences"] = r.stop;
        if (!r.tools.empty()) {
            json tools = json::array();
            for (const auto& t : r.tools) {
                json schema = json{{"type", "object"}, {"properties", json::object()}};
                if (!t.parameters.empty()) {
                    auto p = detail::parse_json(t.parameters);
                    if (!p || !p->is_object())
                        return fail(ErrorCode::invalid_parameter,
                                    "tool '" + t.name + "': parameters is not a JSON Schema object");
                    schema = std::move(*p);
                }
                json tool = {{"name", t.name}, {"input_schema", std::move(schema)}};
                if (!t.description.empty()) tool["description"] = t.description;
                tools.push_back(std::move(tool));
            }
            body["tools"] = std::move(tools);
        }
        if (!r.tool_choice.empty()) body["tool_choice"] = tool_choice_of(r.tool_choice);
        if (r.parallel_tool_calls == false && !r.tools.empty()) {
            if (!body.contains("tool_choice")) body["tool_choice"] = {{"type", "auto"}};
            body["tool_choice"]["disable_parallel_tool_use"] = true;
        }
        if (!r.user.empty()) body["metadata"] = {{"user_id", r.user}};
        if (!r.response_format.empty()) {
            // json_schema → output_config.format (structured outputs); "text"
            // needs nothing; json_object was refused by the router.
            json rf = detail::json_or_string(r.response_format);
            if (detail::str_of(rf, "type") == "json_schema") {
                const json* js = detail::obj_of(rf, "json_schema");
                const json* schema = js ? detail::obj_of(*js, "schema") : nullptr;
                if (!schema)
                    return fail(ErrorCode::invalid_parameter, "response_format json_schema needs json_schema.schema");
                body["output_config"] = {{"format", {{"type", "json_schema"}, {"schema", *schema}}}};
            }
        }
        for (const auto& [k, v] : r.options) body[k] = detail::option_json(v);  // top_k
        if (stream) body["stream"] = true;
        return detail::dump(body);
    }

    Result<InferenceResponse> parse_message(std::string_view text, const ProviderRequest& req) {
        auto j = detail::parse_json(text);
        if (!j || !j->is_object()) return fail(detail::parse_error(m_id, "message is not a JSON object", text));
        if (detail::str_of(*j, "type") == "error")
            return fail(detail::payload_error(status_for_anthropic_error(*j), *j, ctx()));
        const json* content = detail::arr_of(*j, "content");
        if (!content) return fail(detail::parse_error(m_id, "message has no content[]", text));
        InferenceResponse resp = detail::new_response(req, m_id);
        for (const auto& block : *content) {
            const std::string type = detail::str_of(block, "type");
            if (type == "text") {
                resp.content += detail::str_of(block, "text");
            } else if (type == "tool_use") {
                ToolCall t;
                t.id = detail::str_of(block, "id");
                t.name = detail::str_of(block, "name");
                auto it = block.find("input");
                t.arguments = it != block.end() ? detail::dump(*it) : "{}";
                resp.tool_calls.push_back(std::move(t));
            }
            // thinking / redacted_thinking blocks are not part of the answer.
        }
        const std::string stop = detail::str_of(*j, "stop_reason");
        resp.finish_reason = finish_reason_of(stop);
        if (!stop.empty()) resp.metadata["provider_finish_reason"] = stop;
        resp.metadata["provider_model"] = detail::str_of(*j, "model");
        if (std::string id = detail::str_of(*j, "id"); !id.empty()) resp.metadata["provider_response_id"] = id;
        Usage u;
        if (const json* uj = detail::obj_of(*j, "usage")) u.take(*uj);
        u.annotate(resp);
        detail::set_usage(resp, req.request, u.prompt(), u.output);
        return resp;
    }

    Result<InferenceResponse> run_stream(const ProviderRequest& req, const ChunkSink& sink) {
        L04_TRY_ASSIGN(auto body, build_body(req, true));
        auto http = detail::make_http_request("POST", detail::join_url(m_base, "/v1/messages"), headers(),
                                              std::move(body), req.timeout, m_timeout_ms, req.cancel);
        http.headers.emplace_back("Accept", "text/event-stream");
        InferenceResponse resp = detail::new_response(req, m_id);
        detail::Accumulator acc(&sink);
        SseParser parser;
        std::vector<SseEvent> events;
        std::optional<Error> stream_error;
        bool started = false, done = false;
        std::string stop_reason, provider_model, response_id;
        Usage usage;
        struct Block {
            bool tool = false;
            std::size_t slot = 0;
            bool has_args = false;
            std::string initial_input;  // content_block_start's input, if not {}
        };
        std::map<std::int64_t, Block> blocks;
        std::size_t tools = 0;

        auto handle = [&](const SseEvent& ev) -> bool {
            if (done) return true;
            auto j = detail::parse_json(ev.data);
            if (!j || !j->is_object()) {
                stream_error =
                    detail::parse_error(m_id, "stream event '" + ev.event + "' is not a JSON object", ev.data);
                return false;
            }
            std::string type = detail::str_of(*j, "type");
            if (type.empty()) type = ev.event;
            if (type == "error") {
                stream_error = detail::payload_error(status_for_anthropic_error(*j), *j, ctx());
                stream_error->message = m_id + " sent an error event mid-stream: " + stream_error->details;
                return false;
            }
            if (type == "message_start") {
                started = true;
                if (const json* msg = detail::obj_of(*j, "message")) {
                    provider_model = detail::str_of(*msg, "model");
                    response_id = detail::str_of(*msg, "id");
                    if (const json* u = detail::obj_of(*msg, "usage")) usage.take(*u);
                }
                if (!acc.open()) return false;  // headers and role event go out now
            } else if (type == "content_block_start") {
                const auto index = detail::int_of(*j, "index").value_or(0);
                const json* cb = detail::obj_of(*j, "content_block");
                const std::string bt = cb ? detail::str_of(*cb, "type") : std::string();
                Block b;
                if (bt == "tool_use") {
                    b.tool = true;
                    b.slot = tools++;
                    if (auto it = cb->find("input"); it != cb->end() && it->is_object() && !it->empty())
                        b.initial_input = detail::dump(*it);
                    blocks[index] = b;
                    if (!acc.tool_begin(b.slot, detail::str_of(*cb, "id"), detail::str_of(*cb, "name"))) return false;
                } else {
                    blocks[index] = b;
                    if (bt == "text" && !acc.text(detail::str_of(*cb, "text"))) return false;
                }
            } else if (type == "content_block_delta") {
                const auto index = detail::int_of(*j, "index").value_or(0);
                const json* d = detail::obj_of(*j, "delta");
                const std::string dt = d ? detail::str_of(*d, "type") : std::string();
                if (dt == "text_delta") {
                    if (!acc.text(detail::str_of(*d, "text"))) return false;
                } else if (dt == "input_json_delta") {
                    auto it = blocks.find(index);
                    if (it == blocks.end() || !it->second.tool) {
                        stream_error =
                            detail::parse_error(m_id, "input_json_delta for a block that is not tool_use", ev.data);
                        return false;
                    }
                    std::string frag = detail::str_of(*d, "partial_json");
                    if (!frag.empty()) it->second.has_args = true;
                    if (!acc.tool_args(it->second.slot, frag)) return false;
                }
                // thinking_delta, signature_delta, citations_delta: not part of the answer.
            } else if (type == "content_block_stop") {
                const auto index = detail::int_of(*j, "index").value_or(0);
                if (auto it = blocks.find(index); it != blocks.end() && it->second.tool && !it->second.has_args) {
                    // A tool called without arguments still gets a JSON object.
                    const std::string args = it->second.initial_input.empty() ? "{}" : it->second.initial_input;
                    if (!acc.tool_args(it->second.slot, args)) return false;
                }
            } else if (type == "message_delta") {
                if (const json* d = detail::obj_of(*j, "delta")) {
                    if (std::string s = detail::str_of(*d, "stop_reason"); !s.empty()) stop_reason = s;
                }
                if (const json* u = detail::obj_of(*j, "usage")) usage.take(*u);
            } else if (type == "message_stop") {
                done = true;
            }
            // ping and event types added later are ignored, as Anthropic asks.
            return true;
        };

        auto on_body = detail::feed_parser(parser, events, handle, stream_error);
        auto head = detail::exchange(ctx(), http, on_body);
        if (stream_error) return fail(*stream_error);
        if (acc.caller_gone()) return fail(detail::caller_gone_error(m_id));
        if (!head && !done) return fail(head.error());
        L04_TRY(detail::finish_parser(parser, events, handle));
        if (stream_error) return fail(*stream_error);
        if (!done) return fail(detail::truncated_stream_error(m_id, started ? "message_stop" : "message_start"));

        resp.content = std::move(acc.content);
        resp.tool_calls = std::move(acc.tool_calls);
        resp.finish_reason = finish_reason_of(stop_reason);
        if (!stop_reason.empty()) resp.metadata["provider_finish_reason"] = stop_reason;
        resp.metadata["provider_model"] = provider_model;
        if (!response_id.empty()) resp.metadata["provider_response_id"] = response_id;
        usage.annotate(resp);
        detail::set_usage(resp, req.request, usage.prompt(), usage.output);
        acc.finish(resp);
        return resp;
    }

};

}  // namespace

std::unique_ptr<Provider> make_anthropic_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    return std::make_unique<AnthropicProvider>(cfg, transport, clock);
}

}  // namespace l04
