#include <l04/core/strings.hpp>
#include <l04/provider/http_common.hpp>

#include <algorithm>

namespace l04::detail {

std::optional<json> parse_json(std::string_view text) {
    json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    return j;
}

std::string str_of(const json& j, std::string_view key) {
    if (!j.is_object()) return {};
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

std::optional<std::int64_t> int_of(const json& j, std::string_view key) {
    if (!j.is_object()) return std::nullopt;
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return std::nullopt;
    if (it->is_number_float()) return static_cast<std::int64_t>(it->get<double>());
    return it->get<std::int64_t>();
}

const json* obj_of(const json& j, std::string_view key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it != j.end() && it->is_object() ? &*it : nullptr;
}

const json* arr_of(const json& j, std::string_view key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it != j.end() && it->is_array() ? &*it : nullptr;
}

json json_or_string(const std::string& text) {
    if (auto j = parse_json(text)) return *j;
    return json(text);
}

json parsed_or_string(const std::string& text) {
    json p = json::parse(text, nullptr, false);
    return p.is_discarded() ? json(text) : p;
}

json option_json(const OptionValue& v) {
    switch (v.kind) {
        case OptionValue::Kind::string: return v.text;
        case OptionValue::Kind::boolean: return v.text == "true";
        case OptionValue::Kind::number:
        case OptionValue::Kind::json: return parsed_or_string(v.text);
    }
    return v.text;
}

json options_to_json(const std::map<std::string, OptionValue>& options) {
    json o = json::object();
    for (const auto& [k, v] : options) o[k] = option_json(v);
    return o;
}

json message_content_json(const Message& m) {
    if (m.parts.empty()) return m.content;
    json arr = json::array();
    for (const auto& p : m.parts) {
        if (!p.raw.empty()) {  // a part as the caller sent it (other types, extra keys)
            arr.push_back(parsed_or_string(p.raw));
            continue;
        }
        switch (p.kind) {
            case ContentPart::Kind::text: arr.push_back({{"type", "text"}, {"text", p.text}}); break;
            case ContentPart::Kind::image: {
                json iu = {{"url", p.data.empty() ? p.url : "data:" + p.media_type + ";base64," + p.data}};
                if (!p.detail.empty()) iu["detail"] = p.detail;
                arr.push_back({{"type", "image_url"}, {"image_url", std::move(iu)}});
                break;
            }
            case ContentPart::Kind::other: arr.push_back(parsed_or_string(p.raw)); break;
        }
    }
    return arr;
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string redact(std::string s, std::string_view secret) {
    if (secret.size() < 8) return s;  // a short key ("x") would mangle ordinary words
    for (auto pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos))
        s.replace(pos, secret.size(), "[redacted]");
    return s;
}

std::string provider_message(std::string_view body) {
    if (auto j = parse_json(body); j && j->is_object()) {
        if (const json* err = obj_of(*j, "error")) {
            std::string msg = str_of(*err, "message");
            if (!msg.empty()) return msg;
        }
        if (std::string s = str_of(*j, "error"); !s.empty()) return s;
        if (std::string s = str_of(*j, "message"); !s.empty()) return s;
        if (std::string s = str_of(*j, "detail"); !s.empty()) return s;
    }
    std::string s(trim(body));
    if (s.size() > 500) s = s.substr(0, 500) + "...";
    return s;
}

Error http_error(int status, std::string_view body, const HttpResponseHead& head, const std::string& provider,
                 std::int64_t now_wall_ms, const std::string& secret) {
    Error e = error_from_http(status, body, head.headers, provider, now_wall_ms);
    e.details = redact(provider_message(body), secret);
    e.message = redact(std::move(e.message), secret);
    if (!e.details.empty()) e.message += ": " + e.details;
    // Anthropic (and OpenAI) say explicitly whether a retry can succeed.
    if (auto it = head.headers.find("x-should-retry"); it != head.headers.end()) {
        if (iequals(trim(it->second), "true"))
            e.retryable = true;
        else if (iequals(trim(it->second), "false"))
            e.retryable = false;
    }
    return e;
}

Error parse_error(const std::string& provider, std::string_view what, std::string_view body) {
    std::string msg = provider + " sent a body that is not the JSON expected (" + std::string(what) + ")";
    Error e(ErrorCode::parse_error, msg);
    e.retryable = false;
    std::string b(trim(body));
    if (b.size() > 300) b = b.substr(0, 300) + "...";
    e.details = b;
    return e;
}

Error truncated_stream_error(const std::string& provider, std::string_view missing) {
    Error e(ErrorCode::streaming_error,
            provider + " stream ended without its terminating event (" + std::string(missing) + ")");
    e.retryable = true;
    return e;
}

Error caller_gone_error(const std::string& provider) {
    Error e(ErrorCode::streaming_error, "request to " + provider + " cancelled: the caller went away");
    e.retryable = false;
    return e;
}

HttpRequest make_http_request(std::string method, std::string url,
                              std::vector<std::pair<std::string, std::string>> headers, std::string body,
                              std::chrono::milliseconds timeout, std::int64_t provider_timeout_ms,
                              const CancelToken* cancel) {
    HttpRequest r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.headers = std::move(headers);
    r.body = std::move(body);
    auto total = timeout;
    if (provider_timeout_ms > 0) total = std::min(total, std::chrono::milliseconds(provider_timeout_ms));
    if (total.count() <= 0) total = std::chrono::milliseconds(1);
    r.total_timeout = total;
    r.connect_timeout = std::min(total, std::chrono::milliseconds(10000));
    r.cancel = cancel ? &cancel->cancelled : nullptr;
    return r;
}

Result<HttpResponseHead> exchange(const CallContext& ctx, const HttpRequest& req,
                                  const std::function<bool(std::string_view)>& on_body) {
    int status = 0;
    HttpResponseHead seen;
    std::string error_body;
    constexpr std::size_t k_max_error_body = 64 * 1024;
    auto r = ctx.transport.perform(
        req,
        [&](const HttpResponseHead& h) {
            status = h.status;
            seen = h;
        },
        [&](std::string_view piece) {
            if (status >= 200 && status < 300) return on_body(piece);
            if (error_body.size() < k_max_error_body)
                error_body.append(piece.substr(0, k_max_error_body - error_body.size()));
            return true;
        });
    if (!r) {
        Error e = r.error();
        e.message = redact(std::move(e.message), ctx.secret);
        // The upstream answered an error status and then broke: the status
        // says more than the broken connection.
        if (status >= 300) {
            Error he = http_error(status, error_body, seen, ctx.provider, ctx.clock.wall_ms(), ctx.secret);
            if (ctx.refine) ctx.refine(he, error_body);
            return fail(std::move(he));
        }
        return fail(std::move(e));
    }
    if (r->status < 200 || r->status >= 300) {
        Error he = http_error(r->status, error_body, *r, ctx.provider, ctx.clock.wall_ms(), ctx.secret);
        if (ctx.refine) ctx.refine(he, error_body);
        return fail(std::move(he));
    }
    return r;
}

Result<std::string> exchange_buffered(const CallContext& ctx, const HttpRequest& req) {
    std::string body;
    auto r = exchange(ctx, req, [&](std::string_view piece) {
        body.append(piece);
        return true;
    });
    if (!r) return fail(r.error());
    return body;
}

ProviderHealth probe_health(const CallContext& ctx, const HttpRequest& req,
                            const std::function<std::string(std::string_view)>& describe) {
    const auto t0 = ctx.clock.now();
    auto r = exchange_buffered(ctx, req);
    ProviderHealth h;
    h.latency_ms = std::chrono::duration<double, std::milli>(ctx.clock.now() - t0).count();
    if (r) {
        h.state = HealthState::healthy;
        h.message = describe ? describe(*r) : std::string();
        return h;
    }
    const Error& e = r.error();
    h.state = e.code == ErrorCode::rate_limit_exceeded ? HealthState::degraded : HealthState::unhealthy;
    h.message = e.to_string();
    return h;
}

Error payload_error(int status_equivalent, const json& payload, const CallContext& ctx) {
    HttpResponseHead head;
    head.status = status_equivalent;
    const std::string body = dump(payload);
    Error e = http_error(status_equivalent, body, head, ctx.provider, ctx.clock.wall_ms(), ctx.secret);
    if (ctx.refine) ctx.refine(e, body);
    e.message += " (reported in the response body)";
    return e;
}

bool Accumulator::open() {
    if (m_opened) return !m_gone;
    return forward(StreamChunk{});
}

bool Accumulator::forward(StreamChunk c) {
    m_opened = true;
    if (!m_sink || m_gone) return !m_gone;
    if (!(*m_sink)(c)) m_gone = true;
    return !m_gone;
}

ToolCall& Accumulator::slot(std::size_t index) {
    if (tool_calls.size() <= index) tool_calls.resize(index + 1);
    return tool_calls[index];
}

bool Accumulator::text(std::string_view delta) {
    if (delta.empty()) return !m_gone;
    content.append(delta);
    StreamChunk c;
    c.delta.assign(delta);
    return forward(std::move(c));
}

bool Accumulator::tool_begin(std::size_t index, std::string_view id, std::string_view name) {
    ToolCall& t = slot(index);
    if (!id.empty()) t.id.assign(id);
    if (!name.empty()) t.name.append(name);
    StreamChunk c;
    c.tool_call_deltas.resize(index + 1);
    c.tool_call_deltas[index].id.assign(id);
    c.tool_call_deltas[index].name.assign(name);
    return forward(std::move(c));
}

bool Accumulator::tool_args(std::size_t index, std::string_view fragment) {
    if (fragment.empty()) return !m_gone;
    slot(index).arguments.append(fragment);
    StreamChunk c;
    c.tool_call_deltas.resize(index + 1);
    c.tool_call_deltas[index].arguments.assign(fragment);
    return forward(std::move(c));
}

void Accumulator::finish(const InferenceResponse& resp) {
    StreamChunk fin;
    fin.is_final = true;
    fin.usage = resp.token_usage;
    fin.finish_reason = resp.finish_reason;
    forward(std::move(fin));
}

void set_usage(InferenceResponse& resp, const InferenceRequest& req, std::optional<std::int64_t> prompt,
               std::optional<std::int64_t> completion, std::optional<std::int64_t> total) {
    TokenUsage u;
    u.estimated = !prompt || !completion;
    std::string answer = resp.content;
    for (const auto& t : resp.tool_calls) answer += t.name + t.arguments;
    u.prompt_tokens = prompt ? *prompt : estimate_prompt_tokens(req);
    u.completion_tokens = completion ? *completion : estimate_tokens(answer);
    u.total_tokens = (total && !u.estimated) ? *total : u.prompt_tokens + u.completion_tokens;
    resp.token_usage = u;
    if (u.estimated) resp.metadata["usage_estimated"] = "true";
}

InferenceResponse new_response(const ProviderRequest& req, const std::string& provider) {
    InferenceResponse r;
    r.request_id = req.request.request_id;
    r.model_id = req.model.id;
    r.provider = provider;
    r.finish_reason = "stop";
    return r;
}

std::string join_url(const std::string& base, std::string_view path) {
    std::string b = base;
    while (!b.empty() && b.back() == '/') b.pop_back();
    if (path.empty()) return b;
    std::string p = path.front() == '/' ? std::string(path) : "/" + std::string(path);
    // Drop the path's first segment when the base already ends with it.
    auto seg_end = p.find_first_of("/?:", 1);
    std::string first = p.substr(0, seg_end == std::string::npos ? p.size() : seg_end);  // "/v1"
    if (first.size() > 1 && b.size() >= first.size() && b.compare(b.size() - first.size(), first.size(), first) == 0)
        p.erase(0, first.size());
    return b + p;
}

ProviderHealth probe_model_list(const CallContext& ctx, const HttpRequest& req, const char* list_key, const char* noun) {
    return probe_health(ctx, req, [list_key, noun](std::string_view body) -> std::string {
        auto j = parse_json(body);
        const nlohmann::json* list = j ? arr_of(*j, list_key) : nullptr;
        if (!list) return "answered, but not with a model list";
        return std::to_string(list->size()) + " " + noun;
    });
}

Result<std::vector<std::vector<float>>> embedding_vectors(const json& arr, const char* key, std::size_t count,
                                                         std::optional<std::int64_t> dimensions,
                                                         const std::string& provider) {
    if (!arr.is_array() || arr.size() != count)
        return fail(parse_error(provider, "expected " + std::to_string(count) + " embeddings", ""));
    std::vector<std::vector<float>> out;
    out.reserve(count);
    for (const auto& e : arr) {
        const json* v = &e;
        if (*key) {
            if (!e.is_object() || !e.contains(key)) return fail(parse_error(provider, std::string("an embedding without '") + key + "'", ""));
            v = &e.at(key);
        }
        if (!v->is_array() || v->empty()) return fail(parse_error(provider, "an embedding is not an array of numbers", ""));
        std::vector<float> f;
        f.reserve(v->size());
        for (const auto& x : *v) {
            if (!x.is_number()) return fail(parse_error(provider, "an embedding holds a non-number", ""));
            f.push_back(x.get<float>());
        }
        if (!out.empty() && f.size() != out.front().size())
            return fail(parse_error(provider, "embeddings of different lengths in one answer", ""));
        out.push_back(std::move(f));
    }
    if (dimensions && !out.empty() && static_cast<std::int64_t>(out.front().size()) != *dimensions)
        return fail(Error(ErrorCode::invalid_parameter,
                          provider + " answered " + std::to_string(out.front().size()) + " dimensions, not the " +
                              std::to_string(*dimensions) + " asked for: this model cannot shorten its embeddings"));
    return out;
}

}  // namespace l04::detail
