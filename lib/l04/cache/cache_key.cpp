#include <l04/cache/cache_key.hpp>
#include <l04/core/hash.hpp>
#include <l04/core/request_fields.hpp>


namespace l04 {

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

    // Every field of the request that can change the answer is in the scope
    // (core/request_fields.hpp is the one list); the last user message's
    // text is the prompt, but its images and other parts are scope too, so
    // a semantic hit never crosses to another image.
    Sha256 s;
    s.update_field("l04-scope-v2");
    s.update_field(target);
    s.update_field(tenant);
    s.update_field(req.system_prompt);
    s.update_field(keyed_fields_text(req));
    s.update_field(std::to_string(req.messages.size()));
    for (std::size_t i = 0; i < req.messages.size(); ++i) {
        if (i == last_user) {
            s.update_field("<prompt>");
            s.update_field(req.messages[i].name);  // who asks can change the answer
            s.update_field(std::to_string(req.messages[i].parts.size()));
            s.update_field(non_text_parts_key_text(req.messages[i]));
            continue;
        }
        s.update_field(message_key_text(req.messages[i]));
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
