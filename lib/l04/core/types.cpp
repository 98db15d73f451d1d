#include <l04/core/types.hpp>

#include <array>

namespace l04 {

std::string_view role_name(Role r) {
    switch (r) {
        case Role::system: return "system";
        case Role::user: return "user";
        case Role::assistant: return "assistant";
        case Role::tool: return "tool";
    }
    return "user";
}

std::optional<Role> parse_role(std::string_view s) {
    if (s == "system" || s == "developer") return Role::system;
    if (s == "user") return Role::user;
    if (s == "assistant") return Role::assistant;
    if (s == "tool") return Role::tool;
    return std::nullopt;
}

namespace {
constexpr std::array<std::string_view, k_capability_count> k_cap_names = {
    "text", "code", "vision", "tool_use", "streaming", "long_context", "embedding"};
}

std::string_view capability_name(Capability c) { return k_cap_names[static_cast<unsigned>(c)]; }

std::optional<Capability> parse_capability(std::string_view s) {
    for (unsigned i = 0; i < k_cap_names.size(); ++i)
        if (k_cap_names[i] == s) return static_cast<Capability>(i);
    if (s == "tools" || s == "function_calling") return Capability::tool_use;
    return std::nullopt;
}

std::vector<std::string> CapabilitySet::names() const {
    std::vector<std::string> out;
    for (unsigned i = 0; i < k_cap_names.size(); ++i)
        if (has(static_cast<Capability>(i))) out.emplace_back(k_cap_names[i]);
    return out;
}

std::string_view priority_name(Priority p) {
    switch (p) {
        case Priority::high: return "high";
        case Priority::normal: return "normal";
        case Priority::low: return "low";
    }
    return "normal";
}

std::optional<Priority> parse_priority(std::string_view s) {
    if (s == "high") return Priority::high;
    if (s == "normal") return Priority::normal;
    if (s == "low") return Priority::low;
    return std::nullopt;
}

std::string_view cache_hit_name(CacheHit h) {
    switch (h) {
        case CacheHit::none: return "none";
        case CacheHit::exact: return "exact";
        case CacheHit::semantic: return "semantic";
    }
    return "none";
}

std::int64_t estimate_tokens(std::string_view text) {
    return static_cast<std::int64_t>((text.size() + 3) / 4);
}

std::int64_t estimate_prompt_tokens(const InferenceRequest& req) {
    // 4 tokens of framing per message, as OpenAI's chat format costs.
    std::int64_t n = estimate_tokens(req.system_prompt) + (req.system_prompt.empty() ? 0 : 4);
    for (const auto& m : req.messages) {
        n += 4 + estimate_tokens(m.content);
        // An image costs 85 (low detail) to about 1,100 tokens (a 1024 px
        // square at high detail) at OpenAI; 800 is a middle estimate.
        for (const auto& p : m.parts)
            if (p.is_image()) n += 800;
            else if (p.kind == ContentPart::Kind::other) n += estimate_tokens(p.raw);
        for (const auto& tc : m.tool_calls) n += estimate_tokens(tc.name) + estimate_tokens(tc.arguments);
    }
    for (const auto& t : req.tools)
        n += estimate_tokens(t.name) + estimate_tokens(t.description) + estimate_tokens(t.parameters);
    return n + 3;
}

bool has_images(const InferenceRequest& req) {
    for (const auto& m : req.messages)
        for (const auto& p : m.parts)
            if (p.is_image()) return true;
    return false;
}

OptionValue option_from_text(std::string_view text) {
    OptionValue v;
    v.text = std::string(text);
    if (text == "true" || text == "false") {
        v.kind = OptionValue::Kind::boolean;
        return v;
    }
    if (!text.empty() && (text.front() == '[' || text.front() == '{')) {
        v.kind = OptionValue::Kind::json;
        return v;
    }
    // A number only in the one spelling JSON writers give it back in
    // (-?(0|[1-9]d{0,14})(.d*[1-9])?), so that "1.50", "007" and "1e3" stay
    // the text they were and a value reads the same through l04d as in
    // process.
    std::size_t i = 0;
    if (i < text.size() && text[i] == '-') ++i;
    const std::size_t int_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    const std::size_t int_len = i - int_start;
    bool ok = int_len > 0 && int_len <= 15 && !(int_len > 1 && text[int_start] == '0');
    if (ok && i < text.size() && text[i] == '.') {
        ++i;
        const std::size_t frac_start = i;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        ok = i > frac_start && text[i - 1] != '0' && i - frac_start <= 15;
    }
    if (ok && i == text.size()) v.kind = OptionValue::Kind::number;
    return v;
}

std::string last_user_text(const InferenceRequest& req) {
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it)
        if (it->role == Role::user) return it->content;
    return {};
}

}  // namespace l04

namespace l04 {

void put_length_prefixed(std::string& out, std::string_view s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
}

bool get_length_prefixed(std::string_view& data, std::string& s) {
    auto colon = data.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 12) return false;
    std::size_t n = 0;
    for (char ch : data.substr(0, colon)) {
        if (ch < '0' || ch > '9') return false;
        n = n * 10 + static_cast<std::size_t>(ch - '0');
    }
    if (colon + 1 + n > data.size()) return false;
    s.assign(data.substr(colon + 1, n));
    data.remove_prefix(colon + 1 + n);
    return true;
}

std::string encode_tool_calls(const std::vector<ToolCall>& calls) {
    std::string out;
    for (const auto& c : calls) {
        put_length_prefixed(out, c.id);
        put_length_prefixed(out, c.name);
        put_length_prefixed(out, c.arguments);
    }
    return out;
}

std::vector<ToolCall> decode_tool_calls(std::string_view data) {
    std::vector<ToolCall> out;
    while (!data.empty()) {
        ToolCall c;
        if (!get_length_prefixed(data, c.id) || !get_length_prefixed(data, c.name) ||
            !get_length_prefixed(data, c.arguments))
            break;
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace l04
