#include <l04/cache/cache_key.hpp>
#include <l04/core/hash.hpp>

#include <cstdio>

namespace l04 {

namespace {

std::string num(const std::optional<double>& v) {
    if (!v) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", *v);
    return buf;
}

void hash_message(Sha256& h, const Message& m) {
    h.update_field(role_name(m.role));
    h.update_field(m.content);
    h.update_field(m.name);
    h.update_field(m.tool_call_id);
    h.update_field(std::to_string(m.tool_calls.size()));
    for (const auto& tc : m.tool_calls) {
        h.update_field(tc.id);
        h.update_field(tc.name);
        h.update_field(tc.arguments);
    }
}

}  // namespace

CacheKey make_cache_key(const InferenceRequest& req, std::string_view target, std::string_view tenant) {
    CacheKey k;
    k.target = std::string(target);
    // Index of the last user message: everything before it is scope.
    std::size_t last_user = req.messages.size();
    for (std::size_t i = req.messages.size(); i-- > 0;)
        if (req.messages[i].role == Role::user) {
            last_user = i;
            break;
        }
    k.prompt = last_user < req.messages.size() ? req.messages[last_user].content : std::string();

    Sha256 s;
    s.update_field("l04-scope-v1");
    s.update_field(target);
    s.update_field(tenant);
    s.update_field(req.system_prompt);
    s.update_field(num(req.temperature));
    s.update_field(num(req.top_p));
    s.update_field(req.max_tokens ? std::to_string(*req.max_tokens) : "-");
    s.update_field(std::to_string(req.stop.size()));
    for (const auto& st : req.stop) s.update_field(st);
    s.update_field(std::to_string(req.tools.size()));
    for (const auto& t : req.tools) {
        s.update_field(t.name);
        s.update_field(t.description);
        s.update_field(t.parameters);
    }
    s.update_field(req.tool_choice);
    s.update_field(req.response_format);
    // Provider options can change the answer (e.g. the mock's reply=).
    s.update_field(std::to_string(req.options.size()));
    for (const auto& [ok, ov] : req.options) {
        s.update_field(ok);
        s.update_field(ov);
    }
    // Earlier turns (and anything after the last user message) are scope.
    s.update_field(std::to_string(req.messages.size()));
    for (std::size_t i = 0; i < req.messages.size(); ++i) {
        if (i == last_user) {
            s.update_field("<prompt>");
            s.update_field(req.messages[i].name);  // who asks can change the answer
            continue;
        }
        hash_message(s, req.messages[i]);
    }
    k.scope = s.hex_digest();

    Sha256 e;
    e.update_field("l04-exact-v1");
    e.update_field(k.scope);
    e.update_field(k.prompt);
    k.exact = e.hex_digest();
    return k;
}

}  // namespace l04
