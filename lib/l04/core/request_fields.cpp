#include <l04/core/request_fields.hpp>
#include <l04/core/hash.hpp>

#include <algorithm>
#include <cstdio>

namespace l04 {

std::string_view provider_kind_name(ProviderKind k) {
    switch (k) {
        case ProviderKind::openai: return "openai";
        case ProviderKind::anthropic: return "anthropic";
        case ProviderKind::ollama: return "ollama";
        case ProviderKind::gemini: return "gemini";
        case ProviderKind::command: return "command";
        case ProviderKind::mock: return "mock";
    }
    return "openai";
}

std::optional<ProviderKind> parse_provider_kind(std::string_view s) {
    for (int i = 0; i < k_provider_kind_count; ++i)
        if (provider_kind_name(static_cast<ProviderKind>(i)) == s) return static_cast<ProviderKind>(i);
    return std::nullopt;
}

std::string_view field_use_name(FieldUse u) {
    switch (u) {
        case FieldUse::forward: return "forward";
        case FieldUse::map: return "map";
        case FieldUse::gateway: return "gateway";
        case FieldUse::refuse: return "refuse";
        case FieldUse::partly: return "partly";
    }
    return "refuse";
}

namespace {

// Length-prefixed, so that no two different field lists share a text.
std::string lp(std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s); }
std::string num(const std::optional<double>& v) {
    if (!v) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *v);
    return buf;
}
std::string inum(const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : "-"; }
std::string flag(const std::optional<bool>& v) { return v ? (*v ? "1" : "0") : "-"; }

constexpr FieldSupport F(FieldUse u, const char* doc = "") { return {u, doc}; }
constexpr FieldUse fwd = FieldUse::forward, mapd = FieldUse::map, gw = FieldUse::gateway, no = FieldUse::refuse,
                   part = FieldUse::partly;

bool any_part(const InferenceRequest& r, ContentPart::Kind k) {
    for (const auto& m : r.messages)
        for (const auto& p : m.parts)
            if (p.kind == k) return true;
    return false;
}
bool any_remote_image(const InferenceRequest& r) {
    for (const auto& m : r.messages)
        for (const auto& p : m.parts)
            if (p.is_image() && p.data.empty()) return true;
    return false;
}
bool any_message_name(const InferenceRequest& r) {
    for (const auto& m : r.messages)
        if (!m.name.empty() && m.role != Role::tool) return true;
    return false;
}
bool any_raw_tool(const InferenceRequest& r) {
    return std::any_of(r.tools.begin(), r.tools.end(), [](const ToolSpec& t) { return !t.raw.empty(); });
}
bool any_strict_tool(const InferenceRequest& r) {
    return std::any_of(r.tools.begin(), r.tools.end(), [](const ToolSpec& t) { return t.strict.value_or(false); });
}

// The top-level "type" of a JSON object's text (response_format,
// tool_choice), read without a JSON library (core stays free of one): the
// text is compact JSON as the edge wrote it. Nested "type" keys (inside a
// schema) are skipped by depth.
std::string top_level_type(const std::string& rf) {
    int depth = 0;
    std::string last_string;
    bool want_value = false;
    for (std::size_t i = 0; i < rf.size(); ++i) {
        const char c = rf[i];
        if (c == '"') {
            std::string str;
            for (++i; i < rf.size() && rf[i] != '"'; ++i) {
                if (rf[i] == '\\' && i + 1 < rf.size()) ++i;
                str += rf[i];
            }
            if (want_value) return str;
            last_string = std::move(str);
            continue;
        }
        if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']') --depth;
        else if (c == ':' && depth == 1 && last_string == "type") want_value = true;
        else if (c == ':' || c == ',') want_value = false;
    }
    return rf.empty() || rf.front() == '{' ? std::string() : rf;
}

bool is_json_text_string(const std::string& s, std::string_view word) {
    return s == word || s == "\"" + std::string(word) + "\"";
}

// A tool_choice the mapping adapters understand: "none", "auto",
// "required" or {"type": "function", "function": {"name": ...}}.
std::optional<std::string> unmappable_tool_choice(const InferenceRequest& r) {
    const std::string& tc = r.tool_choice;
    if (is_json_text_string(tc, "none") || is_json_text_string(tc, "auto") || is_json_text_string(tc, "required"))
        return std::nullopt;
    if (!tc.empty() && tc.front() == '{' && top_level_type(tc) == "function") return std::nullopt;
    return std::string("it knows tool_choice none, auto, required and a named function, not ") + tc.substr(0, 60);
}

std::optional<std::string> unknown_response_format(const InferenceRequest& r) {
    const std::string type = top_level_type(r.response_format);
    if (type == "text" || type == "json_object" || type == "json_schema") return std::nullopt;
    return "unknown response_format type '" + type.substr(0, 40) + "'";
}

std::vector<FieldRow> make_table() {
    std::vector<FieldRow> t;
    // Columns: openai, anthropic, ollama, gemini, command, mock.
    t.push_back({"messages[].content[image_url]",
                 [](const InferenceRequest& r) { return any_part(r, ContentPart::Kind::image); },
                 [](InferenceRequest& r) {
                     Message m;
                     m.content = "what is this?";
                     m.parts = {{ContentPart::Kind::text, "what is this?", "", "", "", "", ""},
                                {ContentPart::Kind::image, "", "image/png", "iVBORw0KGgo=", "", "", ""}};
                     r.messages.push_back(m);
                 },
                 nullptr, "messages are keyed whole (message_key_text), images by the SHA-256 of their bytes",
                 {F(fwd, "image_url as sent (data: or http(s) URL, detail)"),
                  F(mapd, "image block, base64 or url source"),
                  F(part, "images[] (base64); an http(s) URL is refused"),
                  F(part, "inline_data (base64); an http(s) URL is refused"), F(no), F(fwd, "in the reply's digest")},
                 [](const InferenceRequest& r, ProviderKind k) -> std::optional<std::string> {
                     if (any_remote_image(r))
                         return std::string(provider_kind_name(k)) +
                                " takes images only inline: attach the file (data: URL) instead of an http(s) URL";
                     return std::nullopt;
                 }});
    t.push_back({"messages[].content[other parts]",
                 [](const InferenceRequest& r) { return any_part(r, ContentPart::Kind::other); },
                 [](InferenceRequest& r) {
                     Message m;
                     m.parts = {{ContentPart::Kind::other, "", "", "", "", "",
                                 R"({"input_audio":{"data":"AAAA","format":"wav"},"type":"input_audio"})"}};
                     r.messages.push_back(m);
                 },
                 nullptr, "messages are keyed whole (message_key_text)",
                 {F(fwd, "as sent (input_audio, file, ...)"), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"messages[].name",
                 any_message_name,
                 [](InferenceRequest& r) {
                     Message m;
                     m.content = "hi";
                     m.name = "alice";
                     r.messages.push_back(m);
                 },
                 nullptr, "messages are keyed whole (message_key_text)",
                 {F(fwd), F(no), F(no), F(no), F(no), F(fwd, "in the reply's digest")}});
    t.push_back({"messages[] other keys (prefix, cache_control, ...)",
                 [](const InferenceRequest& r) {
                     for (const auto& m : r.messages) {
                         if (!m.extra.empty()) return true;
                         for (const auto& p : m.parts)
                             if (!p.raw.empty() && p.kind != ContentPart::Kind::other) return true;
                     }
                     return false;
                 },
                 [](InferenceRequest& r) {
                     Message m;
                     m.role = Role::assistant;
                     m.content = "The answer is";
                     m.extra = {{"prefix", "true"}};
                     r.messages.push_back(m);
                 },
                 nullptr, "messages are keyed whole (message_key_text)",
                 {F(fwd, "as sent"), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"temperature", [](const InferenceRequest& r) { return r.temperature.has_value(); },
                 [](InferenceRequest& r) { r.temperature = 0.7; },
                 [](const InferenceRequest& r) { return num(r.temperature); }, nullptr,
                 {F(fwd), F(part, "0 to 1; above 1 is refused"), F(mapd, "options.temperature"),
                  F(mapd, "generationConfig.temperature"), F(no), F(fwd, "in the reply's digest")},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     if (r.temperature && (*r.temperature < 0 || *r.temperature > 1))
                         return std::string("its temperature range is 0 to 1");
                     return std::nullopt;
                 }});
    t.push_back({"top_p", [](const InferenceRequest& r) { return r.top_p.has_value(); },
                 [](InferenceRequest& r) { r.top_p = 0.9; }, [](const InferenceRequest& r) { return num(r.top_p); },
                 nullptr,
                 {F(fwd), F(fwd), F(mapd, "options.top_p"), F(mapd, "generationConfig.topP"), F(no),
                  F(fwd, "in the reply's digest")}});
    t.push_back({"max_tokens, max_completion_tokens", [](const InferenceRequest& r) { return r.max_tokens.has_value(); },
                 [](InferenceRequest& r) { r.max_tokens = 64; },
                 [](const InferenceRequest& r) { return inum(r.max_tokens); }, nullptr,
                 {F(mapd, "max_completion_tokens at api.openai.com, max_tokens elsewhere"), F(fwd),
                  F(mapd, "options.num_predict"), F(mapd, "generationConfig.maxOutputTokens"), F(no),
                  F(fwd, "cuts the reply")}});
    t.push_back({"stop", [](const InferenceRequest& r) { return !r.stop.empty(); },
                 [](InferenceRequest& r) { r.stop = {"END"}; },
                 [](const InferenceRequest& r) {
                     std::string s = std::to_string(r.stop.size());
                     for (const auto& x : r.stop) s += lp(x);
                     return s;
                 },
                 nullptr,
                 {F(fwd), F(mapd, "stop_sequences"), F(mapd, "options.stop"), F(mapd, "generationConfig.stopSequences"),
                  F(no), F(fwd, "cuts the reply")}});
    t.push_back({"tools", [](const InferenceRequest& r) { return !r.tools.empty(); },
                 [](InferenceRequest& r) { r.tools.push_back({"get_weather", "Weather", R"({"type":"object"})", {}, ""}); },
                 [](const InferenceRequest& r) {
                     std::string s = std::to_string(r.tools.size());
                     for (const auto& x : r.tools)
                         s += lp(x.name) + lp(x.description) + lp(x.parameters) + flag(x.strict) + lp(x.raw);
                     return s;
                 },
                 nullptr,
                 {F(fwd), F(part, "input_schema; strict and non-function tools are refused"),
                  F(part, "as sent; strict and non-function tools are refused"),
                  F(part, "functionDeclarations; strict and non-function tools are refused"), F(no),
                  F(fwd, "in the reply's digest (the mock never calls tools)")},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     if (any_raw_tool(r)) return std::string("it takes only tools of type function");
                     if (any_strict_tool(r)) return std::string("it has no strict tool schemas");
                     return std::nullopt;
                 }});
    t.push_back({"tool_choice", [](const InferenceRequest& r) { return !r.tool_choice.empty(); },
                 [](InferenceRequest& r) { r.tool_choice = "\"required\""; },
                 [](const InferenceRequest& r) { return lp(r.tool_choice); }, nullptr,
                 {F(fwd), F(part, "tool_choice (auto, any, tool, none); other values are refused"),
                  F(part, "only \"auto\""),
                  F(part, "toolConfig.functionCallingConfig; other values are refused"), F(no),
                  F(fwd, "in the reply's digest")},
                 [](const InferenceRequest& r, ProviderKind k) -> std::optional<std::string> {
                     if (k == ProviderKind::ollama) {
                         if (!is_json_text_string(r.tool_choice, "auto"))
                             return std::string("it only chooses tools itself (\"auto\")");
                         return std::nullopt;
                     }
                     return unmappable_tool_choice(r);
                 }});
    t.push_back({"parallel_tool_calls",
                 [](const InferenceRequest& r) { return r.parallel_tool_calls.has_value(); },
                 [](InferenceRequest& r) { r.parallel_tool_calls = false; },
                 [](const InferenceRequest& r) { return flag(r.parallel_tool_calls); }, nullptr,
                 {F(fwd), F(mapd, "false: tool_choice.disable_parallel_tool_use"), F(part, "only true"),
                  F(part, "only true"), F(no), F(part, "only true")},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     if (r.parallel_tool_calls == false) return std::string("it cannot be kept to one tool call");
                     return std::nullopt;
                 }});
    t.push_back({"response_format", [](const InferenceRequest& r) { return !r.response_format.empty(); },
                 [](InferenceRequest& r) { r.response_format = R"({"type":"json_object"})"; },
                 [](const InferenceRequest& r) { return lp(r.response_format); }, nullptr,
                 {F(fwd), F(part, "json_schema: output_config.format (structured outputs); json_object is refused"),
                  F(part, "format (\"json\" or the schema); other types are refused"),
                  F(part, "generationConfig.responseMimeType and responseJsonSchema; other types are refused"),
                  F(part, "only text"), F(fwd, "in the reply's digest")},
                 [](const InferenceRequest& r, ProviderKind k) -> std::optional<std::string> {
                     if (auto bad = unknown_response_format(r)) return bad;
                     const std::string type = top_level_type(r.response_format);
                     if (type == "text") return std::nullopt;
                     if (k == ProviderKind::ollama || k == ProviderKind::gemini) return std::nullopt;
                     if (k == ProviderKind::anthropic && type == "json_schema") return std::nullopt;
                     if (k == ProviderKind::anthropic)
                         return std::string("it has no JSON mode; use a json_schema response_format");
                     return std::string("it cannot be told the answer's format");
                 }});
    t.push_back({"n", [](const InferenceRequest& r) { return r.n.has_value() && *r.n != 1; },
                 [](InferenceRequest& r) { r.n = 2; }, [](const InferenceRequest& r) { return inum(r.n); }, nullptr,
                 {F(part, "without stream"), F(no), F(no), F(no), F(no), F(part, "without stream")},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     if (r.stream) return std::string("l04 streams one choice; ask without stream for n > 1");
                     return std::nullopt;
                 }});
    t.push_back({"seed", [](const InferenceRequest& r) { return r.seed.has_value(); },
                 [](InferenceRequest& r) { r.seed = 42; }, [](const InferenceRequest& r) { return inum(r.seed); },
                 nullptr,
                 {F(fwd), F(no), F(mapd, "options.seed"), F(mapd, "generationConfig.seed"), F(no),
                  F(fwd, "in the reply's digest")}});
    t.push_back({"presence_penalty", [](const InferenceRequest& r) { return r.presence_penalty.has_value(); },
                 [](InferenceRequest& r) { r.presence_penalty = 0.5; },
                 [](const InferenceRequest& r) { return num(r.presence_penalty); }, nullptr,
                 {F(fwd), F(no), F(mapd, "options.presence_penalty"), F(mapd, "generationConfig.presencePenalty"),
                  F(no), F(fwd, "in the reply's digest")}});
    t.push_back({"frequency_penalty", [](const InferenceRequest& r) { return r.frequency_penalty.has_value(); },
                 [](InferenceRequest& r) { r.frequency_penalty = 0.5; },
                 [](const InferenceRequest& r) { return num(r.frequency_penalty); }, nullptr,
                 {F(fwd), F(no), F(mapd, "options.frequency_penalty"), F(mapd, "generationConfig.frequencyPenalty"),
                  F(no), F(fwd, "in the reply's digest")}});
    t.push_back({"logprobs, top_logprobs",
                 [](const InferenceRequest& r) { return r.logprobs.value_or(false) || r.top_logprobs.has_value(); },
                 [](InferenceRequest& r) {
                     r.logprobs = true;
                     r.top_logprobs = 2;
                 },
                 [](const InferenceRequest& r) { return flag(r.logprobs) + inum(r.top_logprobs); }, nullptr,
                 {F(part, "without stream; returned per choice"), F(no), F(no), F(no), F(no), F(no)},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     if (r.stream) return std::string("l04 returns logprobs only without stream");
                     return std::nullopt;
                 }});
    t.push_back({"logit_bias", [](const InferenceRequest& r) { return !r.logit_bias.empty(); },
                 [](InferenceRequest& r) { r.logit_bias = R"({"50256":-100})"; },
                 [](const InferenceRequest& r) { return lp(r.logit_bias); }, nullptr,
                 {F(fwd), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"reasoning_effort", [](const InferenceRequest& r) { return !r.reasoning_effort.empty(); },
                 [](InferenceRequest& r) { r.reasoning_effort = "low"; },
                 [](const InferenceRequest& r) { return lp(r.reasoning_effort); }, nullptr,
                 {F(fwd), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"other top-level fields",
                 [](const InferenceRequest& r) { return !r.extra.empty(); },
                 [](InferenceRequest& r) { r.extra.emplace_back("top_k", "40"); },
                 [](const InferenceRequest& r) {
                     std::string s = std::to_string(r.extra.size());
                     for (const auto& [k, v] : r.extra) s += lp(k) + lp(v);
                     return s;
                 },
                 nullptr,
                 {F(part, "verbatim (top_k, min_p, repetition_penalty, ...); with stream, audio and web search are "
                          "refused"),
                  F(no), F(no), F(no), F(no), F(no)},
                 [](const InferenceRequest& r, ProviderKind) -> std::optional<std::string> {
                     // A stream carries text and tool calls only: what these
                     // add to a streamed reply would not reach the caller.
                     if (!r.stream) return std::nullopt;
                     for (const auto& [k, v] : r.extra)
                         if (k == "audio" || k == "web_search_options" ||
                             (k == "modalities" && v.find("audio") != std::string::npos))
                             return "l04 streams text and tool calls only; ask for " + k + " without stream";
                     return std::nullopt;
                 }});
    t.push_back({"l04.options (-o key=value)", [](const InferenceRequest& r) { return !r.options.empty(); },
                 [](InferenceRequest& r) { r.options["top_k"] = option_from_text("40"); },
                 [](const InferenceRequest& r) {
                     std::string s = std::to_string(r.options.size());
                     for (const auto& [k, v] : r.options)
                         s += lp(k) + std::to_string(static_cast<int>(v.kind)) + lp(v.text);
                     return s;
                 },
                 nullptr,
                 {F(part, "top-level fields, except the names of fields l04 reads (use the field)"),
                  F(part, "top-level: top_k"), F(part, "options.* and keep_alive, think"),
                  F(part, "generationConfig: top_k, thinking_budget"), F(no),
                  F(part, "the mock's knobs")},
                 [](const InferenceRequest& r, ProviderKind k) -> std::optional<std::string> {
                     if (k == ProviderKind::openai) {
                         for (const auto& [name, v] : r.options)
                             if (is_request_field_name(name))
                                 return "'" + name + "' is a request field l04 reads: set the field, not an option";
                         return std::nullopt;
                     }
                     const auto known = known_options(k);
                     for (const auto& [name, v] : r.options)
                         if (std::find(known.begin(), known.end(), name) == known.end()) {
                             std::string list;
                             for (const auto& o : known) list += (list.empty() ? "" : ", ") + o;
                             return "unknown option '" + name + "' (" + std::string(provider_kind_name(k)) +
                                    " knows: " + list + ")";
                         }
                     return std::nullopt;
                 }});
    t.push_back({"user", [](const InferenceRequest& r) { return !r.user.empty(); },
                 [](InferenceRequest& r) { r.user = "u-1"; }, nullptr,
                 "an end-user id for abuse monitoring and l04's agent; it does not change the answer",
                 {F(fwd, "and the agent for limits"), F(mapd, "metadata.user_id"), F(gw, "the agent for limits"),
                  F(gw, "the agent for limits"), F(gw, "the agent for limits"), F(gw, "the agent for limits")}});
    t.push_back({"metadata", [](const InferenceRequest& r) { return !r.metadata.empty(); },
                 [](InferenceRequest& r) { r.metadata["job"] = "nightly"; }, nullptr,
                 "labels for the ledger; they do not change the answer",
                 {F(gw, "kept in the ledger; also sent with store: true"), F(gw, "kept in the ledger"),
                  F(gw, "kept in the ledger"), F(gw, "kept in the ledger"), F(gw, "kept in the ledger"),
                  F(gw, "kept in the ledger")}});
    t.push_back({"store", [](const InferenceRequest& r) { return r.store.value_or(false); },
                 [](InferenceRequest& r) { r.store = true; }, nullptr,
                 "asks the provider to keep the completion; it does not change the answer",
                 {F(fwd), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"service_tier", [](const InferenceRequest& r) { return !r.service_tier.empty(); },
                 [](InferenceRequest& r) { r.service_tier = "flex"; }, nullptr,
                 "picks the provider's capacity pool; the answer is the same model's",
                 {F(fwd), F(no), F(no), F(no), F(no), F(no)}});
    t.push_back({"stream, stream_options", [](const InferenceRequest& r) { return r.stream; },
                 [](InferenceRequest& r) { r.stream = true; }, nullptr,
                 "a cached answer is replayed as a stream or whole",
                 {F(gw, "usage is always requested and sent last"), F(gw), F(gw), F(gw), F(gw), F(gw)}});
    return t;
}

}  // namespace

const std::vector<FieldRow>& field_table() {
    static const std::vector<FieldRow> t = make_table();
    return t;
}

bool is_request_field_name(std::string_view name) {
    static const char* const k[] = {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools",
        "tool_choice", "response_format", "stream", "stream_options", "n", "seed", "presence_penalty",
        "frequency_penalty", "logprobs", "top_logprobs", "logit_bias", "parallel_tool_calls", "user", "store",
        "service_tier", "reasoning_effort", "metadata", "l04", "routing"};
    return std::find(std::begin(k), std::end(k), name) != std::end(k);
}

std::vector<std::string> known_options(ProviderKind kind) {
    switch (kind) {
        case ProviderKind::openai: return {};
        case ProviderKind::anthropic: return {"top_k"};
        case ProviderKind::ollama:
            return {"num_ctx",        "num_predict",    "num_keep",     "top_k",         "top_p",
                    "min_p",          "typical_p",      "tfs_z",        "repeat_last_n", "repeat_penalty",
                    "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta",
                    "penalize_newline", "seed",         "temperature",  "stop",          "num_batch",
                    "num_gpu",        "main_gpu",       "num_thread",   "use_mmap",      "keep_alive",
                    "think"};
        case ProviderKind::gemini: return {"top_k", "thinking_budget"};
        case ProviderKind::command: return {};
        case ProviderKind::mock:
            return {"reply",      "latency_ms",         "chunk_delay_ms",          "fail_status",
                    "retry_after", "fail_after_chunks", "usage_prompt_tokens", "usage_completion_tokens"};
    }
    return {};
}

std::optional<FieldRefusal> refused_field(const InferenceRequest& req, ProviderKind kind) {
    const auto k = static_cast<std::size_t>(kind);
    for (const auto& row : field_table()) {
        if (!row.is_set(req)) continue;
        const FieldSupport& s = row.support[k];
        if (s.use == FieldUse::refuse)
            return FieldRefusal{row.name, std::string(provider_kind_name(kind)) + " providers cannot honour it"};
        if (s.use == FieldUse::partly && row.partly)
            if (auto why = row.partly(req, kind)) return FieldRefusal{row.name, *why};
    }
    return std::nullopt;
}

Error refusal_error(const FieldRefusal& r, std::string_view provider, std::string_view model) {
    Error e(ErrorCode::invalid_parameter, "'" + r.field + "' cannot be sent to " + std::string(model) + " (provider " +
                                              std::string(provider) + "): " + r.reason +
                                              ". Remove it, or name a model that supports it");
    e.details = r.field;
    return e;
}

std::string render_field_table() {
    std::string out = "| field | cache key | openai | anthropic | ollama | gemini | command | mock |\n";
    out += "|---|---|---|---|---|---|---|---|\n";
    for (const auto& row : field_table()) {
        const bool message_row = std::string_view(row.name).rfind("messages", 0) == 0;
        out += "| `" + std::string(row.name) + "` | ";
        out += row.key_text ? std::string("yes") : std::string(message_row ? "yes: " : "no: ") + row.not_keyed_because;
        for (const auto& s : row.support) {
            out += " | " + std::string(field_use_name(s.use));
            if (*s.doc) out += ": " + std::string(s.doc);
        }
        out += " |\n";
    }
    return out;
}

std::string keyed_fields_text(const InferenceRequest& req) {
    std::string s;
    for (const auto& row : field_table())
        if (row.key_text) s += lp(row.name) + lp(row.key_text(req));
    return s;
}

std::string non_text_parts_key_text(const Message& m) {
    std::string s;
    bool any = false;
    for (const auto& p : m.parts) {
        if (p.kind == ContentPart::Kind::text) {
            s += "t";  // position of text parts, so order is part of the key
            if (!p.raw.empty()) {
                any = true;
                s += lp(p.raw);  // its other keys (cache_control, ...)
            }
            continue;
        }
        any = true;
        if (p.is_image()) {
            s += "i" + lp(p.media_type) + lp(p.data.empty() ? std::string() : sha256_hex(p.data)) + lp(p.url) +
                 lp(p.detail) + lp(p.raw.empty() ? std::string() : sha256_hex(p.raw));
        } else {
            s += "o" + lp(p.raw);
        }
    }
    return any ? s : std::string();
}

std::string message_key_text(const Message& m) {
    std::string s = lp(role_name(m.role)) + lp(m.content) + lp(m.name) + lp(m.tool_call_id);
    s += std::to_string(m.tool_calls.size());
    for (const auto& tc : m.tool_calls) s += lp(tc.id) + lp(tc.name) + lp(tc.arguments);
    // Text split into parts is the same question as the joined text, but an
    // adapter sends it differently: part of the key all the same.
    s += std::to_string(m.parts.size());
    for (const auto& p : m.parts) {
        if (p.kind == ContentPart::Kind::text) s += "t" + lp(p.text);
    }
    s += lp(non_text_parts_key_text(m));
    s += std::to_string(m.extra.size());
    for (const auto& [k, v] : m.extra) s += lp(k) + lp(v);
    return s;
}

}  // namespace l04
