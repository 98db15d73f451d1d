#include <l04/server/openai_json.hpp>
#include <l04/core/strings.hpp>

#include <cstdio>

namespace l04 {

using nlohmann::json;

namespace {

std::string content_text(const json& c) {
    if (c.is_string()) return c.get<std::string>();
    if (c.is_array()) {
        std::string out;
        for (const auto& part : c) {
            if (part.is_object() && part.value("type", "") == "text") {
                if (!out.empty()) out += "\n";
                out += part.value("text", "");
            }
        }
        return out;
    }
    return {};
}

std::string fmt(double v, const char* f = "%.6f") {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

template <class T>
Result<T> get_num(const json& j, const char* name) {
    if (!j.is_number()) return fail(ErrorCode::invalid_parameter, std::string("'") + name + "' must be a number");
    return j.get<T>();
}

}  // namespace

std::string to_wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Result<InferenceRequest> parse_chat_request(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return fail(ErrorCode::invalid_request, "the request body is not valid JSON");
    if (!j.is_object()) return fail(ErrorCode::invalid_request, "the request body must be a JSON object");
    InferenceRequest r;
    try {
        if (j.contains("model") && j["model"].is_string()) {
            r.model = j["model"].get<std::string>();
            if (r.model == "auto" || r.model == "l04" || r.model == "default") r.model.clear();
        }
        if (!j.contains("messages") || !j["messages"].is_array())
            return fail(ErrorCode::invalid_messages, "'messages' must be an array");
        std::string system;
        for (const auto& m : j["messages"]) {
            if (!m.is_object()) return fail(ErrorCode::invalid_messages, "each message must be an object");
            auto role = parse_role(m.value("role", ""));
            if (!role) return fail(ErrorCode::invalid_messages, "unknown message role '" + m.value("role", "") + "'");
            Message msg;
            msg.role = *role;
            if (m.contains("content") && !m["content"].is_null()) msg.content = content_text(m["content"]);
            msg.name = m.value("name", "");
            if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) msg.tool_call_id = m["tool_call_id"];
            if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
                for (const auto& tc : m["tool_calls"]) {
                    ToolCall c;
                    c.id = tc.value("id", "");
                    if (tc.contains("function")) {
                        c.name = tc["function"].value("name", "");
                        const auto& a = tc["function"].value("arguments", json(""));
                        c.arguments = a.is_string() ? a.get<std::string>() : a.dump();
                    }
                    msg.tool_calls.push_back(std::move(c));
                }
            }
            // Leading system messages become the system prompt.
            if (msg.role == Role::system && r.messages.empty()) {
                if (!system.empty()) system += "\n\n";
                system += msg.content;
                continue;
            }
            r.messages.push_back(std::move(msg));
        }
        r.system_prompt = system;
        if (j.contains("temperature") && !j["temperature"].is_null()) {
            auto v = get_num<double>(j["temperature"], "temperature");
            if (!v) return fail(v.error());
            r.temperature = *v;
        }
        if (j.contains("top_p") && !j["top_p"].is_null()) {
            auto v = get_num<double>(j["top_p"], "top_p");
            if (!v) return fail(v.error());
            r.top_p = *v;
        }
        for (const char* k : {"max_tokens", "max_completion_tokens"})
            if (j.contains(k) && !j[k].is_null()) {
                auto v = get_num<std::int64_t>(j[k], k);
                if (!v) return fail(v.error());
                r.max_tokens = *v;
            }
        if (j.contains("stop")) {
            if (j["stop"].is_string()) r.stop.push_back(j["stop"]);
            else if (j["stop"].is_array())
                for (const auto& s : j["stop"])
                    if (s.is_string()) r.stop.push_back(s);
        }
        if (j.contains("tools") && j["tools"].is_array())
            for (const auto& t : j["tools"]) {
                const json& f = t.contains("function") ? t["function"] : t;
                ToolSpec spec;
                spec.name = f.value("name", "");
                spec.description = f.value("description", "");
                spec.parameters = f.contains("parameters") ? f["parameters"].dump() : "{}";
                r.tools.push_back(std::move(spec));
            }
        if (j.contains("tool_choice") && !j["tool_choice"].is_null()) r.tool_choice = j["tool_choice"].dump();
        if (j.contains("response_format") && !j["response_format"].is_null())
            r.response_format = j["response_format"].dump();
        r.stream = j.value("stream", false);
        if (j.contains("user") && j["user"].is_string()) r.agent_did = j["user"];

        if (j.contains("l04") && j["l04"].is_object()) {
            const json& g = j["l04"];
            if (g.contains("agent")) r.agent_did = g["agent"].get<std::string>();
            if (g.contains("request_id")) r.request_id = g["request_id"].get<std::string>();
            if (g.contains("strategy")) r.strategy = g["strategy"].get<std::string>();
            if (g.contains("capabilities"))
                for (const auto& c : g["capabilities"]) r.capabilities.push_back(c.get<std::string>());
            if (g.contains("priority")) {
                auto p = parse_priority(g["priority"].get<std::string>());
                if (!p) return fail(ErrorCode::invalid_parameter, "l04.priority must be high, normal or low");
                r.priority = *p;
            }
            if (g.contains("deadline_ms")) r.deadline_ms = g["deadline_ms"].get<std::int64_t>();
            if (g.contains("timeout")) {
                const json& t = g["timeout"];
                auto ms = t.is_number() ? std::optional<std::int64_t>(static_cast<std::int64_t>(t.get<double>() * 1000))
                                        : parse_duration_ms(t.get<std::string>());
                if (!ms) return fail(ErrorCode::invalid_parameter, "l04.timeout must be seconds or a duration like 30s");
                r.timeout_ms = *ms;
            }
            if (g.contains("cache")) {
                const json& c = g["cache"];
                if (c.is_boolean()) {
                    r.enable_cache = c.get<bool>();
                    if (!r.enable_cache) r.cache_mode = CacheMode::bypass;
                } else if (c.is_string()) {
                    const auto s = c.get<std::string>();
                    if (s == "use") r.cache_mode = CacheMode::use;
                    else if (s == "bypass" || s == "off") {
                        r.cache_mode = CacheMode::bypass;
                        r.enable_cache = false;
                    } else if (s == "refresh") r.cache_mode = CacheMode::refresh;
                    else return fail(ErrorCode::invalid_parameter, "l04.cache must be use, bypass or refresh");
                }
            }
            if (g.contains("wait")) r.wait_for_limits = g["wait"].get<bool>();
            if (g.contains("cache_threshold")) r.cache_similarity_threshold = g["cache_threshold"].get<double>();
            if (g.contains("options") && g["options"].is_object())
                for (const auto& [k, v] : g["options"].items())
                    r.options[k] = v.is_string() ? v.get<std::string>() : v.dump();
            if (g.contains("metadata") && g["metadata"].is_object())
                for (const auto& [k, v] : g["metadata"].items())
                    r.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
            if (g.contains("requirements")) {
                const json& q = g["requirements"];
                if (q.contains("capabilities"))
                    for (const auto& c : q["capabilities"]) r.requirements.capabilities.push_back(c.get<std::string>());
                r.requirements.min_context_length = q.value("min_context_length", std::int64_t{0});
                r.requirements.max_output_tokens = q.value("max_output_tokens", std::int64_t{0});
            }
            if (g.contains("constraints")) {
                const json& c = g["constraints"];
                if (c.contains("max_latency_ms")) r.constraints.max_latency_ms = c["max_latency_ms"].get<double>();
                if (c.contains("max_cost_cents")) r.constraints.max_cost_cents = c["max_cost_cents"].get<double>();
                if (c.contains("preferred_providers"))
                    for (const auto& p : c["preferred_providers"]) r.constraints.preferred_providers.push_back(p);
                if (c.contains("excluded_providers"))
                    for (const auto& p : c["excluded_providers"]) r.constraints.excluded_providers.push_back(p);
            }
        }
    } catch (const json::exception& e) {
        return fail(ErrorCode::invalid_request, std::string("malformed request field: ") + e.what());
    }
    return r;
}

json chat_request_to_json(const InferenceRequest& r) {
    json j;
    if (!r.model.empty()) j["model"] = r.model;
    json msgs = json::array();
    if (!r.system_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", r.system_prompt}});
    for (const auto& m : r.messages) {
        json jm{{"role", role_name(m.role)}, {"content", m.content}};
        if (!m.name.empty()) jm["name"] = m.name;
        if (!m.tool_call_id.empty()) jm["tool_call_id"] = m.tool_call_id;
        msgs.push_back(std::move(jm));
    }
    j["messages"] = std::move(msgs);
    if (r.temperature) j["temperature"] = *r.temperature;
    if (r.top_p) j["top_p"] = *r.top_p;
    if (r.max_tokens) j["max_tokens"] = *r.max_tokens;
    if (!r.stop.empty()) j["stop"] = r.stop;
    j["stream"] = r.stream;
    json g = json::object();
    if (!r.agent_did.empty()) g["agent"] = r.agent_did;
    if (!r.request_id.empty()) g["request_id"] = r.request_id;
    if (!r.strategy.empty()) g["strategy"] = r.strategy;
    if (!r.capabilities.empty()) g["capabilities"] = r.capabilities;
    if (r.priority != Priority::normal) g["priority"] = priority_name(r.priority);
    if (r.deadline_ms) g["deadline_ms"] = *r.deadline_ms;
    if (r.timeout_ms) g["timeout"] = static_cast<double>(*r.timeout_ms) / 1000.0;
    if (r.cache_mode == CacheMode::bypass || !r.enable_cache) g["cache"] = "bypass";
    else if (r.cache_mode == CacheMode::refresh) g["cache"] = "refresh";
    if (r.cache_similarity_threshold) g["cache_threshold"] = *r.cache_similarity_threshold;
    if (r.wait_for_limits) g["wait"] = true;
    if (!r.options.empty()) g["options"] = r.options;
    if (!r.metadata.empty()) g["metadata"] = r.metadata;
    if (!g.empty()) j["l04"] = std::move(g);
    return j;
}

json response_facts(const InferenceResponse& r) {
    json f{{"request_id", r.request_id},
           {"model_id", r.model_id},
           {"provider", r.provider},
           {"cached", r.cached},
           {"cache_hit", cache_hit_name(r.cache_hit)},
           {"latency_ms", r.latency_ms},
           {"cost_usd", r.cost_usd},
           {"usage_estimated", r.token_usage.estimated}};
    if (r.cache_hit == CacheHit::semantic) f["similarity"] = r.similarity;
    if (!r.metadata.empty()) f["metadata"] = r.metadata;
    return f;
}

namespace {
json tool_calls_json(const std::vector<ToolCall>& calls) {
    json arr = json::array();
    for (const auto& c : calls)
        arr.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    return arr;
}
json usage_json(const TokenUsage& u) {
    return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens}, {"total_tokens", u.total_tokens}};
}
}  // namespace

json chat_response_to_json(const InferenceResponse& r) {
    json msg{{"role", "assistant"}, {"content", r.content}};
    if (!r.tool_calls.empty()) msg["tool_calls"] = tool_calls_json(r.tool_calls);
    return {{"id", r.request_id},
            {"object", "chat.completion"},
            {"created", r.created_ms / 1000},
            {"model", r.model_id},
            {"choices", json::array({{{"index", 0}, {"message", msg}, {"finish_reason", r.finish_reason}}})},
            {"usage", usage_json(r.token_usage)},
            {"l04", response_facts(r)}};
}

json chunk_to_json(const StreamChunk& c, const std::string& id, std::int64_t created_s, bool first) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!c.delta.empty() || c.tool_call_deltas.empty()) delta["content"] = c.delta;
    if (!c.tool_call_deltas.empty()) {
        json arr = json::array();
        for (std::size_t i = 0; i < c.tool_call_deltas.size(); ++i) {
            const auto& t = c.tool_call_deltas[i];
            json jt{{"index", i}, {"function", {{"arguments", t.arguments}}}};
            if (!t.id.empty()) jt["id"] = t.id;
            if (!t.id.empty()) jt["type"] = "function";
            if (!t.name.empty()) jt["function"]["name"] = t.name;
            arr.push_back(std::move(jt));
        }
        delta["tool_calls"] = std::move(arr);
    }
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created_s},
            {"model", c.model_id},
            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}})}};
}

json finish_chunk_json(const InferenceResponse& r, std::int64_t created_s) {
    return {{"id", r.request_id},
            {"object", "chat.completion.chunk"},
            {"created", created_s},
            {"model", r.model_id},
            {"choices", json::array({{{"index", 0}, {"delta", json::object()}, {"finish_reason", r.finish_reason}}})}};
}

json usage_chunk_json(const InferenceResponse& r, std::int64_t created_s) {
    return {{"id", r.request_id},
            {"object", "chat.completion.chunk"},
            {"created", created_s},
            {"model", r.model_id},
            {"choices", json::array()},
            {"usage", usage_json(r.token_usage)},
            {"l04", response_facts(r)}};
}

json error_to_json(const Error& e) {
    json err{{"message", e.message},
             {"type", code_name(e.code)},
             {"code", code_string(e.code)},
             {"retryable", e.retryable}};
    if (e.retry_after) err["retry_after"] = static_cast<double>(e.retry_after->count()) / 1000.0;
    if (!e.details.empty()) err["details"] = e.details;
    return {{"error", err}};
}

Error error_from_json(const json& j, int http_status) {
    Error e(ErrorCode::internal_error, "HTTP " + std::to_string(http_status));
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return e;
    const json& err = j["error"];
    std::string code = err.value("code", "");
    if (code.size() == 5 && code[0] == 'E') e.code = static_cast<ErrorCode>(std::stoi(code.substr(1)));
    e.message = err.value("message", e.message);
    e.retryable = err.value("retryable", false);
    if (err.contains("retry_after") && err["retry_after"].is_number())
        e.retry_after = std::chrono::milliseconds(static_cast<std::int64_t>(err["retry_after"].get<double>() * 1000));
    e.details = err.value("details", "");
    e.http_status = http_status;
    return e;
}

InferenceResponse response_from_json(const json& j) {
    InferenceResponse r;
    r.request_id = j.value("id", "");
    r.model_id = j.value("model", "");
    r.created_ms = j.value("created", std::int64_t{0}) * 1000;
    if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
        const json& c = j["choices"][0];
        if (c.contains("message")) {
            r.content = content_text(c["message"].value("content", json("")));
            if (c["message"].contains("tool_calls"))
                for (const auto& tc : c["message"]["tool_calls"])
                    r.tool_calls.push_back({tc.value("id", ""), tc["function"].value("name", ""),
                                            tc["function"].value("arguments", "")});
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) r.finish_reason = c["finish_reason"];
    }
    if (j.contains("usage") && j["usage"].is_object()) {
        r.token_usage.prompt_tokens = j["usage"].value("prompt_tokens", std::int64_t{0});
        r.token_usage.completion_tokens = j["usage"].value("completion_tokens", std::int64_t{0});
        r.token_usage.total_tokens = j["usage"].value("total_tokens", std::int64_t{0});
    }
    if (j.contains("l04") && j["l04"].is_object()) {
        const json& f = j["l04"];
        r.request_id = f.value("request_id", r.request_id);
        r.model_id = f.value("model_id", r.model_id);
        r.provider = f.value("provider", "");
        r.cached = f.value("cached", false);
        std::string hit = f.value("cache_hit", "none");
        r.cache_hit = hit == "exact" ? CacheHit::exact : hit == "semantic" ? CacheHit::semantic : CacheHit::none;
        r.similarity = f.value("similarity", r.cache_hit == CacheHit::exact ? 1.0 : 0.0);
        r.latency_ms = f.value("latency_ms", 0.0);
        r.cost_usd = f.value("cost_usd", 0.0);
        r.token_usage.estimated = f.value("usage_estimated", false);
        if (f.contains("metadata") && f["metadata"].is_object())
            for (const auto& [k, v] : f["metadata"].items()) r.metadata[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
    return r;
}

json model_to_json(const ModelInfo& m) {
    return {{"id", m.id},
            {"provider", m.provider},
            {"name", m.name},
            {"capabilities", m.capabilities.names()},
            {"context_window", m.context_window},
            {"max_output_tokens", m.max_output_tokens},
            {"input_price_per_mtok", m.input_price},
            {"output_price_per_mtok", m.output_price},
            {"latency_ms", m.latency_ms},
            {"quality", m.quality},
            {"embedding_dimensions", m.embedding_dimensions},
            {"aliases", m.aliases}};
}

std::vector<std::pair<std::string, std::string>> fact_headers(const InferenceResponse& r) {
    std::vector<std::pair<std::string, std::string>> h{
        {"x-request-id", r.request_id},
        {"x-l04-model", r.model_id},
        {"x-l04-provider", r.provider},
        {"x-l04-cached", r.cached ? "true" : "false"},
        {"x-l04-cache-hit", std::string(cache_hit_name(r.cache_hit))},
        {"x-l04-latency-ms", fmt(r.latency_ms, "%.3f")},
        {"x-l04-cost-usd", fmt(r.cost_usd, "%.8f")},
    };
    if (r.cache_hit == CacheHit::semantic) h.emplace_back("x-l04-similarity", fmt(r.similarity, "%.4f"));
    return h;
}

}  // namespace l04
