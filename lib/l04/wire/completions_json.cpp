#include <l04/wire/completions_json.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <cstring>

namespace l04 {

using nlohmann::json;

namespace {

Error refused(const std::string& field, const std::string& why) {
    return Error(ErrorCode::invalid_parameter, "'" + field + "' is not supported on /v1/completions: " + why);
}

}  // namespace

namespace {
Result<CompletionsRequest> parse_completions_request_impl(std::string_view body) {
    CompletionsRequest out;
    // Depth and syntax are checked by parse_chat_request; a body that is not
    // a JSON object is handed to it unchanged for the same error.
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("prompt")) {
        L04_TRY_ASSIGN(auto r, parse_chat_request(body));
        // The specification's answer has one content and no logprobs: what it
        // cannot carry is refused rather than computed and dropped.
        if (r.n.value_or(1) > 1)
            return fail(refused("n", "the specification's answer holds one completion (use /v1/chat/completions)"));
        if (r.logprobs.value_or(false) || r.top_logprobs)
            return fail(refused("logprobs", "the specification's answer has no logprobs (use /v1/chat/completions)"));
        out.req = std::move(r);
        return out;
    }
    out.shape = CompletionShape::legacy;
    for (const char* k : {"tools", "tool_choice", "functions", "function_call", "response_format", "top_logprobs",
                          "parallel_tool_calls"})
        if (auto f = j.find(k); f != j.end() && !f->is_null())
            return fail(refused(k, "a text completion has no place for it (use /v1/chat/completions)"));
    if (auto n = j.find("n"); n != j.end() && n->is_number_integer() && n->get<std::int64_t>() > 1 &&
                              j.value("stream", false) == true)
        return fail(refused("n", "a streamed text completion carries one choice; drop stream or n"));
    if (j.contains("messages")) return fail(refused("prompt", "send either 'prompt' or 'messages', not both"));
    std::string prompt;
    const json& p = j["prompt"];
    if (p.is_string()) {
        prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
        prompt = p[0].get<std::string>();
    } else if (p.is_array() && !p.empty() && p[0].is_string()) {
        return fail(refused("prompt", "one prompt per request (send each prompt as its own request, or use /v1/batch)"));
    } else {
        return fail(refused("prompt", "the prompt must be a string (token arrays are not accepted)"));
    }
    if (auto s = j.find("suffix"); s != j.end() && !s->is_null() && !(s->is_string() && s->get<std::string>().empty()))
        return fail(refused("suffix", "insertion (text after the completion) is not offered by chat models"));
    if (auto e = j.find("echo"); e != j.end() && !e->is_null() && !(e->is_boolean() && !e->get<bool>()))
        return fail(refused("echo", "the prompt is not echoed back"));
    if (auto b = j.find("best_of"); b != j.end() && !b->is_null() && !(b->is_number_integer() && b->get<std::int64_t>() == 1))
        return fail(refused("best_of", "only best_of = 1"));
    if (auto l = j.find("logprobs"); l != j.end() && !l->is_null())
        return fail(refused("logprobs", "use /v1/chat/completions with logprobs: true and top_logprobs"));
    json chat = j;
    for (const char* k : {"prompt", "suffix", "echo", "best_of", "logprobs"}) chat.erase(k);
    chat["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
    L04_TRY_ASSIGN(auto r, parse_chat_request(to_wire(chat)));
    out.req = std::move(r);
    return out;
}
}  // namespace

Result<CompletionsRequest> parse_completions_request(std::string_view body) {
    // A field of the wrong type that a check missed is the caller's error
    // (E4502), never an internal one.
    try {
        return parse_completions_request_impl(body);
    } catch (const nlohmann::json::exception& e) {
        return fail(Error(ErrorCode::invalid_parameter, std::string("a request field has the wrong type: ") + e.what()));
    }
}

json spec_completion_json(const InferenceResponse& r) {
    json u = usage_json(r.token_usage);
    u["estimated"] = r.token_usage.estimated;
    json j{{"request_id", r.request_id},
           {"content", r.content},
           {"model_id", r.model_id},
           {"provider", r.provider},
           {"token_usage", std::move(u)},
           {"latency_ms", r.latency_ms},
           {"cached", r.from_cache()},
           {"cache_hit", cache_hit_name(r.cache_hit)},
           {"cost_usd", r.cost_usd},
           {"finish_reason", r.finish_reason},
           {"created", r.created_ms / 1000},
           {"metadata", response_metadata(r)}};
    if (!r.tool_calls.empty()) j["tool_calls"] = tool_calls_json(r.tool_calls);
    if (r.cache_hit == CacheHit::semantic) j["similarity"] = r.similarity;
    return j;
}

json spec_chunk_json(const StreamChunk& c, const std::string& request_id) {
    json j{{"request_id", request_id},
           {"content", c.delta},
           {"is_final", false},
           {"model_id", c.model_id},
           {"provider", c.provider}};
    if (!c.tool_call_deltas.empty()) j["tool_calls"] = tool_call_deltas_json(c.tool_call_deltas);
    return j;
}

json spec_final_chunk_json(const InferenceResponse& r) {
    json j = spec_completion_json(r);
    j["content"] = "";  // the text came in the chunks before
    j["is_final"] = true;
    j.erase("tool_calls");
    return j;
}

json spec_error_chunk_json(const Error& e, const std::string& request_id) {
    // Not final: the answer is cut short, and a client that reads until
    // is_final must see that the clean ending never came.
    json j = error_to_json(e);
    j["request_id"] = request_id;
    j["is_final"] = false;
    j["finish_reason"] = "error";
    return j;
}

json legacy_completion_json(const InferenceResponse& r) {
    json choices = json::array();
    choices.push_back({{"text", r.content}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", r.finish_reason}});
    for (std::size_t i = 0; i < r.more_choices.size(); ++i)
        choices.push_back({{"text", r.more_choices[i].content},
                           {"index", i + 1},
                           {"logprobs", nullptr},
                           {"finish_reason", r.more_choices[i].finish_reason}});
    return completion_envelope(r, "text_completion", std::move(choices));
}

json legacy_chunk_json(const std::string& text, const std::string& id, std::int64_t created_s, const std::string& model,
                       const char* finish_reason) {
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created_s},
            {"model", model},
            {"choices", json::array({{{"text", text},
                                      {"index", 0},
                                      {"logprobs", nullptr},
                                      {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}}})}};
}

std::string floats_base64(const std::vector<float>& v) {
    std::string bytes(v.size() * 4, '\0');
    for (std::size_t i = 0; i < v.size(); ++i) {
        std::uint32_t u;
        std::memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; ++b) bytes[i * 4 + static_cast<std::size_t>(b)] = static_cast<char>((u >> (8 * b)) & 0xff);
    }
    return base64_encode(bytes);
}

namespace {
Result<EmbeddingsRequest> parse_embeddings_request_impl(std::string_view body) {
    bool too_deep = false;
    json::parser_callback_t depth_check = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > 64) too_deep = true;
        return !too_deep;
    };
    json j = json::parse(body, depth_check, false);
    if (too_deep) return fail(ErrorCode::invalid_request, "the request body nests too deep");
    if (j.is_discarded()) return fail(ErrorCode::invalid_request, "the request body is not valid JSON");
    if (!j.is_object()) return fail(ErrorCode::invalid_request, "the request body must be a JSON object");
    EmbeddingsRequest out;
    EmbedRequest& r = out.req;
    std::string user, agent;
    // (`details` is what a provider said; a field name goes in the message.)
    auto bad = [](const std::string&, const std::string& msg) { return Error(ErrorCode::invalid_parameter, msg); };
    for (const auto& [k, v] : j.items()) {
        if (k == "input") {
            if (v.is_string()) r.inputs.push_back(v.get<std::string>());
            else if (v.is_array()) {
                for (const auto& x : v) {
                    if (!x.is_string())
                        return fail(bad("input", "'input' must be a string or an array of strings (token arrays are "
                                                 "not accepted: send the text)"));
                    r.inputs.push_back(x.get<std::string>());
                }
            } else {
                return fail(bad("input", "'input' must be a string or an array of strings"));
            }
        } else if (k == "model") {
            if (v.is_null()) continue;
            if (!v.is_string()) return fail(bad("model", "'model' must be a string"));
            r.model = v.get<std::string>();
            if (r.model == "auto" || r.model == "default") r.model.clear();
        } else if (k == "dimensions") {
            if (v.is_null()) continue;
            if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 65536)
                return fail(bad("dimensions", "'dimensions' must be an integer from 1 to 65536"));
            r.dimensions = v.get<std::int64_t>();
        } else if (k == "encoding_format") {
            if (v.is_null()) continue;
            const std::string f = v.is_string() ? v.get<std::string>() : "";
            if (f != "float" && f != "base64")
                return fail(bad("encoding_format", "'encoding_format' must be float or base64"));
            out.base64 = f == "base64";
        } else if (k == "user") {
            if (v.is_null()) continue;
            if (!v.is_string()) return fail(bad("user", "'user' must be a string"));
            user = v.get<std::string>();
        } else if (k == "l04") {
            if (!v.is_object()) return fail(bad("l04", "'l04' must be an object"));
            for (const auto& [gk, gv] : v.items()) {
                if (gk == "agent" && gv.is_string()) agent = gv.get<std::string>();
                else if (gk == "request_id" && gv.is_string()) r.request_id = gv.get<std::string>();
                else if (gk == "cache" && (gv.is_string() || gv.is_boolean())) {
                    const std::string c = gv.is_boolean() ? (gv.get<bool>() ? "use" : "bypass") : gv.get<std::string>();
                    if (c == "use") r.cache_mode = CacheMode::use;
                    else if (c == "bypass" || c == "off") r.cache_mode = CacheMode::bypass;
                    else if (c == "refresh") r.cache_mode = CacheMode::refresh;
                    else return fail(bad("l04.cache", "l04.cache must be use, bypass or refresh"));
                } else if (gk == "timeout" && gv.is_number() && gv.get<double>() > 0 && gv.get<double>() < 1e9) {
                    r.timeout_ms = static_cast<std::int64_t>(gv.get<double>() * 1000);
                } else if (gk == "metadata" && gv.is_object()) {
                    for (const auto& [mk, mv] : gv.items()) r.metadata[mk] = mv.is_string() ? mv.get<std::string>() : to_wire(mv);
                } else {
                    return fail(bad("l04." + gk.substr(0, 64),
                                    "unknown or mistyped field '" + gk.substr(0, 64) +
                                        "' in l04 for embeddings (known: agent, request_id, cache, timeout seconds, metadata)"));
                }
            }
        } else {
            return fail(bad(k.substr(0, 64), "unknown field '" + k.substr(0, 64) +
                                                  "' for /v1/embeddings (known: input, model, dimensions, "
                                                  "encoding_format, user, l04)"));
        }
    }
    if (!j.contains("input")) return fail(bad("input", "'input' is required"));
    // As for chat: l04.agent, else the OpenAI `user`.
    r.agent_did = !agent.empty() ? agent : user;
    return out;
}
}  // namespace

Result<EmbeddingsRequest> parse_embeddings_request(std::string_view body) {
    // A field of the wrong type that a check missed is the caller's error
    // (E4502), never an internal one.
    try {
        return parse_embeddings_request_impl(body);
    } catch (const nlohmann::json::exception& e) {
        return fail(Error(ErrorCode::invalid_parameter, std::string("a request field has the wrong type: ") + e.what()));
    }
}

json embeddings_response_json(const EmbedResponse& r, bool base64) {
    json data = json::array();
    for (std::size_t i = 0; i < r.vectors.size(); ++i) {
        json e{{"object", "embedding"}, {"index", i}};
        if (base64) e["embedding"] = floats_base64(r.vectors[i]);
        else e["embedding"] = r.vectors[i];
        data.push_back(std::move(e));
    }
    return {{"object", "list"},
            {"data", std::move(data)},
            {"model", r.model_id},
            {"usage", {{"prompt_tokens", r.prompt_tokens}, {"total_tokens", r.prompt_tokens}}},
            {"l04",
             {{"request_id", r.request_id},
              {"model_id", r.model_id},
              {"provider", r.provider},
              {"cached_inputs", r.cached_inputs},
              {"cached", !r.vectors.empty() && r.cached_inputs == r.vectors.size()},
              {"cost_usd", r.cost_usd},
              {"latency_ms", r.latency_ms},
              {"usage_estimated", r.usage_estimated}}}};
}

}  // namespace l04
