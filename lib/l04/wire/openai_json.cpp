#include <l04/wire/openai_json.hpp>
#include <l04/core/request_fields.hpp>
#include <l04/core/strings.hpp>
#include <l04/provider/http_common.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

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

// The tool calls of a chat.completion message; malformed entries are skipped.
std::vector<ToolCall> tool_calls_from(const json& msg) {
    std::vector<ToolCall> out;
    if (!msg.is_object() || !msg.contains("tool_calls") || !msg["tool_calls"].is_array()) return out;
    for (const auto& tc : msg["tool_calls"]) {
        if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object()) continue;
        const json& fn = tc["function"];
        ToolCall c;
        c.id = tc.value("id", "");
        c.name = fn.value("name", "");
        if (fn.contains("arguments")) c.arguments = fn["arguments"].is_string() ? fn["arguments"].get<std::string>() : fn["arguments"].dump();
        out.push_back(std::move(c));
    }
    return out;
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

namespace {

constexpr int k_max_json_depth = 64;

Error bad_param(const std::string& what) { return Error(ErrorCode::invalid_parameter, what); }
Error bad_message(const std::string& what) { return Error(ErrorCode::invalid_messages, what); }

// Typed readers: null counts as absent; any other wrong type is refused.
Status read_double(const json& j, const char* k, std::optional<double>& out) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_number()) return fail(bad_param(std::string("'") + k + "' must be a number"));
    const double v = it->get<double>();
    if (!std::isfinite(v)) return fail(bad_param(std::string("'") + k + "' must be a finite number"));
    out = v;
    return {};
}
Status read_int(const json& j, const char* k, std::optional<std::int64_t>& out, std::int64_t lo, std::int64_t hi) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_number_integer())
        return fail(bad_param(std::string("'") + k + "' must be an integer"));
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
        return fail(bad_param(std::string("'") + k + "' must be at most " + std::to_string(hi)));
    const std::int64_t v = it->get<std::int64_t>();
    if (v < lo || v > hi)
        return fail(bad_param(std::string("'") + k + "' must be between " + std::to_string(lo) + " and " +
                              std::to_string(hi)));
    out = v;
    return {};
}
Status read_bool(const json& j, const char* k, std::optional<bool>& out) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_boolean()) return fail(bad_param(std::string("'") + k + "' must be true or false"));
    out = it->get<bool>();
    return {};
}
Status read_string(const json& j, const char* k, std::string& out) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) return fail(bad_param(std::string("'") + k + "' must be a string"));
    out = it->get<std::string>();
    return {};
}

// "data:image/png;base64,AAAA" → media type and base64 text.
bool split_data_url(const std::string& url, std::string& media_type, std::string& data) {
    if (url.rfind("data:", 0) != 0) return false;
    auto comma = url.find(',');
    if (comma == std::string::npos) return false;
    std::string head = url.substr(5, comma - 5);
    const std::string suffix = ";base64";
    if (head.size() < suffix.size() || head.compare(head.size() - suffix.size(), suffix.size(), suffix) != 0)
        return false;
    media_type = head.substr(0, head.size() - suffix.size());
    data = url.substr(comma + 1);
    for (char c : data)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return false;
    return !media_type.empty() && !data.empty();
}

Result<ContentPart> parse_part(const json& part) {
    if (!part.is_object()) return fail(bad_message("each content part must be an object"));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return fail(bad_message("each content part needs a string 'type'"));
    ContentPart p;
    const std::string t = type->get<std::string>();
    auto only_keys = [&part](std::initializer_list<const char*> keys) {
        for (const auto& item : part.items()) {
            const std::string& k = item.key();
            if (std::none_of(keys.begin(), keys.end(), [&k](const char* x) { return k == x; })) return false;
        }
        return true;
    };
    if (t == "text") {
        auto text = part.find("text");
        if (text == part.end() || !text->is_string()) return fail(bad_message("a text part needs a string 'text'"));
        p.kind = ContentPart::Kind::text;
        p.text = text->get<std::string>();
        if (!only_keys({"type", "text"})) p.raw = to_wire(part);  // e.g. cache_control: kept, never dropped
        return p;
    }
    if (t == "image_url") {
        auto iu = part.find("image_url");
        std::string url;
        if (iu != part.end() && iu->is_string()) url = iu->get<std::string>();
        else if (iu != part.end() && iu->is_object()) {
            auto u = iu->find("url");
            if (u != iu->end() && u->is_string()) url = u->get<std::string>();
            auto d = iu->find("detail");
            if (d != iu->end() && !d->is_null()) {
                if (!d->is_string()) return fail(bad_message("image_url.detail must be a string"));
                p.detail = d->get<std::string>();
            }
        }
        if (url.empty()) return fail(bad_message("an image_url part needs image_url.url"));
        p.kind = ContentPart::Kind::image;
        if (!only_keys({"type", "image_url"}) ||
            (iu->is_object() && std::any_of(iu->items().begin(), iu->items().end(),
                                            [](const auto& kv) { return kv.key() != "url" && kv.key() != "detail"; })))
            p.raw = to_wire(part);
        if (url.rfind("data:", 0) == 0) {
            if (!split_data_url(url, p.media_type, p.data))
                return fail(bad_message("an image data: URL must be data:<type>;base64,<base64 text>"));
            if (p.media_type.rfind("image/", 0) != 0)
                return fail(bad_message("an image_url part holds '" + p.media_type + "', not an image"));
        } else if (url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0) {
            p.url = url;
        } else {
            return fail(bad_message("an image URL must be a data: URL or an http(s) URL"));
        }
        return p;
    }
    p.kind = ContentPart::Kind::other;
    p.raw = to_wire(part);
    return p;
}

Status parse_message(const json& m, Message& msg) {
    if (!m.is_object()) return fail(bad_message("each message must be an object"));
    auto role_it = m.find("role");
    if (role_it == m.end() || !role_it->is_string()) return fail(bad_message("each message needs a string 'role'"));
    auto role = parse_role(role_it->get<std::string>());
    if (!role && role_it->get<std::string>() == "developer") role = Role::system;
    if (!role) return fail(bad_message("unknown message role '" + role_it->get<std::string>() + "'"));
    msg.role = *role;
    if (auto c = m.find("content"); c != m.end() && !c->is_null()) {
        if (c->is_string()) {
            msg.content = c->get<std::string>();
        } else if (c->is_array()) {
            for (const auto& part : *c) {
                L04_TRY_ASSIGN(auto p, parse_part(part));
                if (p.kind == ContentPart::Kind::text) {
                    if (!msg.content.empty()) msg.content += "\n";
                    msg.content += p.text;
                }
                msg.parts.push_back(std::move(p));
            }
            if (msg.role != Role::user)
                for (const auto& p : msg.parts)
                    if (p.is_image())
                        return fail(bad_message(std::string(role_name(msg.role)) +
                                                " messages take no images; images go in user messages"));
        } else {
            return fail(bad_message("a message's content must be a string, an array of parts or null"));
        }
    }
    if (auto st = read_string(m, "name", msg.name); !st) return fail(bad_message("a message's name must be a string"));
    if (auto st = read_string(m, "tool_call_id", msg.tool_call_id); !st)
        return fail(bad_message("tool_call_id must be a string"));
    if (auto tcs = m.find("tool_calls"); tcs != m.end() && !tcs->is_null()) {
        if (!tcs->is_array()) return fail(bad_message("tool_calls must be an array"));
        for (const auto& tc : *tcs) {
            if (!tc.is_object()) return fail(bad_message("each tool call must be an object"));
            ToolCall c;
            if (auto id = tc.find("id"); id != tc.end() && id->is_string()) c.id = id->get<std::string>();
            auto fn = tc.find("function");
            if (fn == tc.end() || !fn->is_object()) return fail(bad_message("each tool call needs a 'function' object"));
            if (auto n = fn->find("name"); n != fn->end() && n->is_string()) c.name = n->get<std::string>();
            if (auto a = fn->find("arguments"); a != fn->end() && !a->is_null())
                c.arguments = a->is_string() ? a->get<std::string>() : to_wire(*a);
            msg.tool_calls.push_back(std::move(c));
        }
    }
    if (msg.role == Role::tool && msg.tool_call_id.empty())
        return fail(bad_message("a tool message needs the tool_call_id it answers"));
    for (const auto& [k, v] : m.items())
        if (k != "role" && k != "content" && k != "name" && k != "tool_call_id" && k != "tool_calls")
            msg.extra.emplace_back(k, to_wire(v));
    return {};
}

Status parse_tools(const json& j, InferenceRequest& r) {
    auto it = j.find("tools");
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_array()) return fail(bad_param("'tools' must be an array"));
    for (const auto& t : *it) {
        if (!t.is_object()) return fail(bad_param("each tool must be an object"));
        ToolSpec spec;
        const std::string type = t.value("type", std::string("function"));
        if (type != "function") {
            spec.name = type;
            spec.raw = to_wire(t);
            r.tools.push_back(std::move(spec));
            continue;
        }
        auto fn = t.find("function");
        if (fn == t.end() || !fn->is_object()) return fail(bad_param("a function tool needs a 'function' object"));
        auto name = fn->find("name");
        if (name == fn->end() || !name->is_string() || name->get<std::string>().empty())
            return fail(bad_param("each function tool needs a name"));
        spec.name = name->get<std::string>();
        L04_TRY(read_string(*fn, "description", spec.description));
        if (auto p = fn->find("parameters"); p != fn->end() && !p->is_null()) {
            if (!p->is_object()) return fail(bad_param("tool '" + spec.name + "': parameters must be a JSON Schema object"));
            spec.parameters = to_wire(*p);
        } else {
            spec.parameters = "{}";
        }
        L04_TRY(read_bool(*fn, "strict", spec.strict));
        r.tools.push_back(std::move(spec));
    }
    return {};
}

// Refuses a key `obj` does not know, naming the ones it does: a misspelt
// routing hint must not be dropped (a request that excludes a provider by a
// wrong name would still reach it).
Status known_keys_only(const json& obj, const char* where, std::initializer_list<const char*> known) {
    for (const auto& [k, v] : obj.items()) {
        bool ok = false;
        for (const char* n : known) ok = ok || k == n;
        if (ok) continue;
        std::string list;
        for (const char* n : known) list += (list.empty() ? "" : ", ") + std::string(n);
        return fail(bad_param(std::string("unknown field '") + (k.size() <= 64 ? k : k.substr(0, 64) + "...") + "' in " +
                              where + " (known: " + list + ")"));
    }
    return {};
}

Status str_list_into(const json& o, const char* where, const char* k, std::vector<std::string>& out) {
    auto it = o.find(k);
    if (it == o.end() || it->is_null()) return {};
    auto bad = [&] { return fail(bad_param(std::string(where) + "." + k + " must be an array of strings")); };
    if (it->is_string()) {  // one name alone is a list of one
        if (std::find(out.begin(), out.end(), it->get<std::string>()) == out.end()) out.push_back(it->get<std::string>());
        return {};
    }
    if (!it->is_array()) return bad();
    for (const auto& v : *it) {
        if (!v.is_string()) return bad();
        if (std::find(out.begin(), out.end(), v.get<std::string>()) == out.end()) out.push_back(v.get<std::string>());
    }
    return {};
}

Status number_into(const json& o, const char* where, const char* k, std::optional<double>& out) {
    auto it = o.find(k);
    if (it == o.end() || it->is_null()) return {};
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0)
        return fail(bad_param(std::string(where) + "." + k + " must be a non-negative number"));
    const double v = it->get<double>();
    if (out && *out != v)
        return fail(bad_param(std::string(where) + "." + k + " disagrees with the same limit given elsewhere in the request"));
    out = v;
    return {};
}

Status int_into(const json& o, const char* where, const char* k, std::int64_t& out) {
    auto it = o.find(k);
    if (it == o.end() || it->is_null()) return {};
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > (std::int64_t{1} << 40))
        return fail(bad_param(std::string(where) + "." + k + " must be a non-negative integer"));
    out = std::max(out, it->get<std::int64_t>());
    return {};
}

Status strategy_into(const json& o, const char* where, InferenceRequest& r) {
    auto it = o.find("strategy");
    if (it == o.end() || it->is_null()) return {};
    if (!it->is_string()) return fail(bad_param(std::string(where) + ".strategy must be a string"));
    const std::string v = it->get<std::string>();
    if (!r.strategy.empty() && r.strategy != v)
        return fail(bad_param(std::string(where) + ".strategy '" + v.substr(0, 64) + "' disagrees with strategy '" +
                              r.strategy.substr(0, 64) + "' given elsewhere in the request"));
    r.strategy = v;
    return {};
}

Status parse_requirements(const json& q, const char* where, InferenceRequest& r) {
    if (!q.is_object()) return fail(bad_param(std::string(where) + " must be an object"));
    if (auto st = known_keys_only(q, where, {"capabilities", "min_context_length", "max_output_tokens"}); !st) return st;
    if (auto st = str_list_into(q, where, "capabilities", r.requirements.capabilities); !st) return st;
    if (auto st = int_into(q, where, "min_context_length", r.requirements.min_context_length); !st) return st;
    return int_into(q, where, "max_output_tokens", r.requirements.max_output_tokens);
}

Status parse_constraints(const json& c, const char* where, InferenceRequest& r) {
    if (!c.is_object()) return fail(bad_param(std::string(where) + " must be an object"));
    if (auto st = known_keys_only(c, where,
                                  {"max_latency_ms", "max_cost_cents", "preferred_providers", "excluded_providers",
                                   "exclude_providers"});
        !st)
        return st;
    if (auto st = number_into(c, where, "max_latency_ms", r.constraints.max_latency_ms); !st) return st;
    if (auto st = number_into(c, where, "max_cost_cents", r.constraints.max_cost_cents); !st) return st;
    if (auto st = str_list_into(c, where, "preferred_providers", r.constraints.preferred_providers); !st) return st;
    if (auto st = str_list_into(c, where, "excluded_providers", r.constraints.excluded_providers); !st) return st;
    return str_list_into(c, where, "exclude_providers", r.constraints.excluded_providers);
}

}  // namespace

// The specification's top-level `routing` object: the same hints as the
// l04 object's strategy, requirements and constraints, flat or nested.
Status parse_routing_object(const nlohmann::json& g, InferenceRequest& r) {
    const char* where = "routing";
    if (!g.is_object()) return fail(bad_param("'routing' must be an object"));
    if (auto st = known_keys_only(g, where,
                                  {"strategy", "preferred_providers", "exclude_providers", "excluded_providers",
                                   "max_cost_cents", "max_latency_ms", "capabilities", "required_capabilities",
                                   "min_context_length", "max_output_tokens", "requirements", "constraints"});
        !st)
        return st;
    if (auto st = strategy_into(g, where, r); !st) return st;
    if (auto st = str_list_into(g, where, "preferred_providers", r.constraints.preferred_providers); !st) return st;
    if (auto st = str_list_into(g, where, "exclude_providers", r.constraints.excluded_providers); !st) return st;
    if (auto st = str_list_into(g, where, "excluded_providers", r.constraints.excluded_providers); !st) return st;
    if (auto st = number_into(g, where, "max_cost_cents", r.constraints.max_cost_cents); !st) return st;
    if (auto st = number_into(g, where, "max_latency_ms", r.constraints.max_latency_ms); !st) return st;
    if (auto st = str_list_into(g, where, "capabilities", r.requirements.capabilities); !st) return st;
    if (auto st = str_list_into(g, where, "required_capabilities", r.requirements.capabilities); !st) return st;
    if (auto st = int_into(g, where, "min_context_length", r.requirements.min_context_length); !st) return st;
    if (auto st = int_into(g, where, "max_output_tokens", r.requirements.max_output_tokens); !st) return st;
    if (auto q = g.find("requirements"); q != g.end() && !q->is_null())
        if (auto st = parse_requirements(*q, "routing.requirements", r); !st) return st;
    if (auto c = g.find("constraints"); c != g.end() && !c->is_null())
        if (auto st = parse_constraints(*c, "routing.constraints", r); !st) return st;
    return {};
}

namespace {

Status parse_l04(const json& g, InferenceRequest& r) {
    if (!g.is_object()) return fail(bad_param("'l04' must be an object"));
    if (auto st = known_keys_only(g, "l04",
                                  {"agent", "request_id", "strategy", "capabilities", "priority", "deadline_ms",
                                   "timeout", "cache", "wait", "cache_threshold", "options", "metadata",
                                   "requirements", "constraints"});
        !st)
        return st;
    auto str = [&](const char* k, std::string& out) -> Status {
        if (auto st = read_string(g, k, out); !st) return fail(bad_param(std::string("l04.") + k + " must be a string"));
        return {};
    };
    auto str_list = [&](const json& o, const char* k, std::vector<std::string>& out) -> Status {
        auto it = o.find(k);
        if (it == o.end() || it->is_null()) return {};
        if (!it->is_array()) return fail(bad_param(std::string("l04: ") + k + " must be an array of strings"));
        for (const auto& v : *it) {
            if (!v.is_string()) return fail(bad_param(std::string("l04: ") + k + " must be an array of strings"));
            out.push_back(v.get<std::string>());
        }
        return {};
    };
    std::string agent;
    if (auto st = str("agent", agent); !st) return st;
    if (!agent.empty()) r.agent_did = agent;
    if (auto st = str("request_id", r.request_id); !st) return st;
    if (auto st = strategy_into(g, "l04", r); !st) return st;
    if (auto st = str_list(g, "capabilities", r.capabilities); !st) return st;
    if (auto p = g.find("priority"); p != g.end() && !p->is_null()) {
        auto pr = p->is_string() ? parse_priority(p->get<std::string>()) : std::nullopt;
        if (!pr) return fail(bad_param("l04.priority must be high, normal or low"));
        r.priority = *pr;
    }
    if (auto st = read_int(g, "deadline_ms", r.deadline_ms, 0, std::int64_t{1} << 52); !st) return st;
    if (auto t = g.find("timeout"); t != g.end() && !t->is_null()) {
        std::optional<std::int64_t> ms;
        if (t->is_number() && std::isfinite(t->get<double>()) && t->get<double>() > 0 && t->get<double>() < 1e9)
            ms = static_cast<std::int64_t>(t->get<double>() * 1000);
        else if (t->is_string())
            ms = parse_duration_ms(t->get<std::string>());
        if (!ms || *ms <= 0) return fail(bad_param("l04.timeout must be positive seconds or a duration like 30s"));
        r.timeout_ms = *ms;
    }
    if (auto c = g.find("cache"); c != g.end() && !c->is_null()) {
        if (c->is_boolean()) {
            r.cache_mode = c->get<bool>() ? CacheMode::use : CacheMode::bypass;
            r.cache_explicit = c->get<bool>();
        } else if (c->is_string()) {
            const auto s = c->get<std::string>();
            if (s == "use") {
                r.cache_mode = CacheMode::use;
                r.cache_explicit = true;
            } else if (s == "bypass" || s == "off") {
                r.cache_mode = CacheMode::bypass;
            } else if (s == "refresh") {
                r.cache_mode = CacheMode::refresh;
                r.cache_explicit = true;
            } else {
                return fail(bad_param("l04.cache must be use, bypass or refresh"));
            }
        } else {
            return fail(bad_param("l04.cache must be use, bypass, refresh or a boolean"));
        }
    }
    std::optional<bool> wait;
    if (auto st = read_bool(g, "wait", wait); !st) return st;
    r.wait_for_limits = wait.value_or(false);
    std::optional<double> thr;
    if (auto st = read_double(g, "cache_threshold", thr); !st) return st;
    if (thr && (*thr < 0 || *thr > 1)) return fail(bad_param("l04.cache_threshold must be between 0 and 1"));
    r.cache_similarity_threshold = thr;
    if (auto o = g.find("options"); o != g.end() && !o->is_null()) {
        if (!o->is_object()) return fail(bad_param("l04.options must be an object"));
        for (const auto& [k, v] : o->items()) {
            OptionValue ov;
            if (v.is_string()) ov = {OptionValue::Kind::string, v.get<std::string>()};
            else if (v.is_boolean()) ov = {OptionValue::Kind::boolean, v.get<bool>() ? "true" : "false"};
            else if (v.is_number()) ov = {OptionValue::Kind::number, to_wire(v)};
            else ov = {OptionValue::Kind::json, to_wire(v)};
            r.options[k] = std::move(ov);
        }
    }
    if (auto md = g.find("metadata"); md != g.end() && !md->is_null()) {
        if (!md->is_object()) return fail(bad_param("l04.metadata must be an object"));
        for (const auto& [k, v] : md->items()) r.metadata[k] = v.is_string() ? v.get<std::string>() : to_wire(v);
    }
    if (auto q = g.find("requirements"); q != g.end() && !q->is_null())
        if (auto st = parse_requirements(*q, "l04.requirements", r); !st) return st;
    if (auto c = g.find("constraints"); c != g.end() && !c->is_null())
        if (auto st = parse_constraints(*c, "l04.constraints", r); !st) return st;
    return {};
}

}  // namespace

Result<InferenceRequest> parse_chat_request(std::string_view body) {
    bool too_deep = false;
    json::parser_callback_t depth_check = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > k_max_json_depth) too_deep = true;
        return !too_deep;
    };
    json j = json::parse(body, depth_check, false);
    if (too_deep)
        return fail(ErrorCode::invalid_request,
                    "the request body nests deeper than " + std::to_string(k_max_json_depth) + " levels");
    if (j.is_discarded()) return fail(ErrorCode::invalid_request, "the request body is not valid JSON");
    if (!j.is_object()) return fail(ErrorCode::invalid_request, "the request body must be a JSON object");
    InferenceRequest r;
    try {
        if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
            if (!m->is_string()) return fail(bad_param("'model' must be a string"));
            r.model = m->get<std::string>();
            if (r.model == "auto" || r.model == "l04" || r.model == "default") r.model.clear();
        }
        auto msgs = j.find("messages");
        if (msgs == j.end() || !msgs->is_array()) return fail(ErrorCode::invalid_messages, "'messages' must be an array");
        std::string system;
        for (const auto& m : *msgs) {
            Message msg;
            L04_TRY(parse_message(m, msg));
            // Leading system messages of plain text become the system prompt.
            if (msg.role == Role::system && r.messages.empty() && msg.parts.empty() && msg.name.empty()) {
                if (!system.empty()) system += "\n\n";
                system += msg.content;
                continue;
            }
            r.messages.push_back(std::move(msg));
        }
        r.system_prompt = system;
        Status st;
        if (!(st = read_double(j, "temperature", r.temperature))) return fail(st.error());
        if (!(st = read_double(j, "top_p", r.top_p))) return fail(st.error());
        for (const char* k : {"max_tokens", "max_completion_tokens"}) {
            std::optional<std::int64_t> v;
            if (!(st = read_int(j, k, v, 1, std::int64_t{1} << 31))) return fail(st.error());
            if (v) r.max_tokens = v;
        }
        if (auto s = j.find("stop"); s != j.end() && !s->is_null()) {
            if (s->is_string()) r.stop.push_back(s->get<std::string>());
            else if (s->is_array()) {
                for (const auto& x : *s) {
                    if (!x.is_string()) return fail(bad_param("'stop' must be a string or an array of strings"));
                    r.stop.push_back(x.get<std::string>());
                }
            } else return fail(bad_param("'stop' must be a string or an array of strings"));
        }
        if (!(st = parse_tools(j, r))) return fail(st.error());
        if (auto tc = j.find("tool_choice"); tc != j.end() && !tc->is_null()) {
            if (!tc->is_string() && !tc->is_object()) return fail(bad_param("'tool_choice' must be a string or an object"));
            r.tool_choice = to_wire(*tc);
        }
        if (auto rf = j.find("response_format"); rf != j.end() && !rf->is_null()) {
            if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
                return fail(bad_param("'response_format' must be an object with a string 'type'"));
            r.response_format = to_wire(*rf);
        }
        std::optional<bool> stream;
        if (!(st = read_bool(j, "stream", stream))) return fail(st.error());
        r.stream = stream.value_or(false);
        if (auto so = j.find("stream_options"); so != j.end() && !so->is_null() && !so->is_object())
            return fail(bad_param("'stream_options' must be an object"));
        if (!(st = read_int(j, "n", r.n, 1, 128))) return fail(st.error());
        if (!(st = read_int(j, "seed", r.seed, std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::int64_t>::max())))
            return fail(st.error());
        if (!(st = read_double(j, "presence_penalty", r.presence_penalty))) return fail(st.error());
        if (!(st = read_double(j, "frequency_penalty", r.frequency_penalty))) return fail(st.error());
        if (!(st = read_bool(j, "logprobs", r.logprobs))) return fail(st.error());
        if (!(st = read_int(j, "top_logprobs", r.top_logprobs, 0, 20))) return fail(st.error());
        if (auto lb = j.find("logit_bias"); lb != j.end() && !lb->is_null()) {
            if (!lb->is_object()) return fail(bad_param("'logit_bias' must be an object"));
            r.logit_bias = to_wire(*lb);
        }
        if (!(st = read_bool(j, "parallel_tool_calls", r.parallel_tool_calls))) return fail(st.error());
        if (!(st = read_string(j, "user", r.user))) return fail(st.error());
        if (!r.user.empty()) r.agent_did = r.user;
        if (!(st = read_bool(j, "store", r.store))) return fail(st.error());
        if (!(st = read_string(j, "service_tier", r.service_tier))) return fail(st.error());
        if (!(st = read_string(j, "reasoning_effort", r.reasoning_effort))) return fail(st.error());
        if (auto md = j.find("metadata"); md != j.end() && !md->is_null()) {
            if (!md->is_object()) return fail(bad_param("'metadata' must be an object"));
            for (const auto& [k, v] : md->items()) r.metadata[k] = v.is_string() ? v.get<std::string>() : to_wire(v);
        }
        if (auto g = j.find("l04"); g != j.end() && !g->is_null())
            if (!(st = parse_l04(*g, r))) return fail(st.error());
        if (auto g = j.find("routing"); g != j.end() && !g->is_null())
            if (!(st = parse_routing_object(*g, r))) return fail(st.error());
        for (const auto& [k, v] : j.items()) {
            if (is_request_field_name(k)) continue;
            r.extra.emplace_back(k, to_wire(v));
        }
    } catch (const json::exception& e) {
        return fail(ErrorCode::invalid_request, std::string("malformed request field: ") + e.what());
    }
    return r;
}

using detail::message_content_json;
using detail::options_to_json;
using detail::parsed_or_string;

json chat_request_to_json(const InferenceRequest& r) {
    json j;
    if (!r.model.empty()) j["model"] = r.model;
    json msgs = json::array();
    if (!r.system_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", r.system_prompt}});
    for (const auto& m : r.messages) {
        json jm{{"role", role_name(m.role)}, {"content", message_content_json(m)}};
        if (!m.name.empty()) jm["name"] = m.name;
        if (!m.tool_call_id.empty()) jm["tool_call_id"] = m.tool_call_id;
        if (!m.tool_calls.empty()) {
            json calls = json::array();
            for (const auto& tc : m.tool_calls)
                calls.push_back({{"id", tc.id}, {"type", "function"},
                                 {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
            jm["tool_calls"] = std::move(calls);
        }
        for (const auto& [k, v] : m.extra) jm[k] = parsed_or_string(v);
        msgs.push_back(std::move(jm));
    }
    j["messages"] = std::move(msgs);
    if (r.temperature) j["temperature"] = *r.temperature;
    if (r.top_p) j["top_p"] = *r.top_p;
    if (r.max_tokens) j["max_tokens"] = *r.max_tokens;
    if (!r.stop.empty()) j["stop"] = r.stop;
    if (!r.tools.empty()) {
        json tools = json::array();
        for (const auto& t : r.tools) {
            if (!t.raw.empty()) {
                tools.push_back(parsed_or_string(t.raw));
                continue;
            }
            json fn = {{"name", t.name}, {"parameters", parsed_or_string(t.parameters.empty() ? "{}" : t.parameters)}};
            if (!t.description.empty()) fn["description"] = t.description;
            if (t.strict) fn["strict"] = *t.strict;
            tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
        }
        j["tools"] = std::move(tools);
    }
    if (!r.tool_choice.empty()) j["tool_choice"] = parsed_or_string(r.tool_choice);
    if (!r.response_format.empty()) j["response_format"] = parsed_or_string(r.response_format);
    if (r.n) j["n"] = *r.n;
    if (r.seed) j["seed"] = *r.seed;
    if (r.presence_penalty) j["presence_penalty"] = *r.presence_penalty;
    if (r.frequency_penalty) j["frequency_penalty"] = *r.frequency_penalty;
    if (r.logprobs) j["logprobs"] = *r.logprobs;
    if (r.top_logprobs) j["top_logprobs"] = *r.top_logprobs;
    if (!r.logit_bias.empty()) j["logit_bias"] = parsed_or_string(r.logit_bias);
    if (r.parallel_tool_calls) j["parallel_tool_calls"] = *r.parallel_tool_calls;
    if (!r.user.empty()) j["user"] = r.user;
    if (r.store) j["store"] = *r.store;
    if (!r.service_tier.empty()) j["service_tier"] = r.service_tier;
    if (!r.reasoning_effort.empty()) j["reasoning_effort"] = r.reasoning_effort;
    for (const auto& [k, v] : r.extra) j[k] = parsed_or_string(v);
    j["stream"] = r.stream;
    json g = json::object();
    if (!r.agent_did.empty() && r.agent_did != r.user) g["agent"] = r.agent_did;
    if (!r.request_id.empty()) g["request_id"] = r.request_id;
    if (!r.strategy.empty()) g["strategy"] = r.strategy;
    if (!r.capabilities.empty()) g["capabilities"] = r.capabilities;
    if (r.priority != Priority::normal) g["priority"] = priority_name(r.priority);
    if (r.deadline_ms) g["deadline_ms"] = *r.deadline_ms;
    if (r.timeout_ms) g["timeout"] = static_cast<double>(*r.timeout_ms) / 1000.0;
    if (r.cache_mode == CacheMode::bypass) g["cache"] = "bypass";
    else if (r.cache_mode == CacheMode::refresh) g["cache"] = "refresh";
    else if (r.cache_explicit) g["cache"] = "use";
    if (r.cache_similarity_threshold) g["cache_threshold"] = *r.cache_similarity_threshold;
    if (r.wait_for_limits) g["wait"] = true;
    if (!r.options.empty()) g["options"] = options_to_json(r.options);
    if (!r.metadata.empty()) g["metadata"] = r.metadata;
    if (!r.requirements.capabilities.empty() || r.requirements.min_context_length || r.requirements.max_output_tokens) {
        json q = json::object();
        if (!r.requirements.capabilities.empty()) q["capabilities"] = r.requirements.capabilities;
        if (r.requirements.min_context_length) q["min_context_length"] = r.requirements.min_context_length;
        if (r.requirements.max_output_tokens) q["max_output_tokens"] = r.requirements.max_output_tokens;
        g["requirements"] = std::move(q);
    }
    const auto& c = r.constraints;
    if (c.max_latency_ms || c.max_cost_cents || !c.preferred_providers.empty() || !c.excluded_providers.empty()) {
        json q = json::object();
        if (c.max_latency_ms) q["max_latency_ms"] = *c.max_latency_ms;
        if (c.max_cost_cents) q["max_cost_cents"] = *c.max_cost_cents;
        if (!c.preferred_providers.empty()) q["preferred_providers"] = c.preferred_providers;
        if (!c.excluded_providers.empty()) q["excluded_providers"] = c.excluded_providers;
        g["constraints"] = std::move(q);
    }
    if (!g.empty()) j["l04"] = std::move(g);
    return j;
}

json response_metadata(const InferenceResponse& r) {
    json m = json::object();
    for (const auto& [k, v] : r.metadata) m[k] = v;
    if (r.attempts > 1) m["attempts"] = std::to_string(r.attempts);
    if (!r.fallback_from.empty()) m["fallback_from"] = r.fallback_from;
    if (r.cache_refusal) {
        m["cache_refused"] = r.cache_refusal->reason;
        m["cache_refused_similarity"] = fmt(r.cache_refusal->similarity, "%.3f");
    }
    return m;
}

void response_metadata_from(const json& metadata, InferenceResponse& r) {
    if (!metadata.is_object()) return;
    const auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
    std::optional<std::string> refused;
    double refused_similarity = 0;
    for (const auto& [k, v] : metadata.items()) {
        if (k == "attempts") {
            r.attempts = static_cast<int>(std::strtol(text(v).c_str(), nullptr, 10));
        } else if (k == "fallback_from") {
            r.fallback_from = text(v);
        } else if (k == "cache_refused") {
            refused = text(v);
        } else if (k == "cache_refused_similarity") {
            refused_similarity = std::strtod(text(v).c_str(), nullptr);
        } else {
            r.metadata[k] = text(v);
        }
    }
    if (refused) r.cache_refusal = CacheRefusalFact{*refused, refused_similarity};
}

json response_facts(const InferenceResponse& r) {
    json f{{"request_id", r.request_id},
           {"model_id", r.model_id},
           {"provider", r.provider},
           {"cached", r.from_cache()},
           {"cache_hit", cache_hit_name(r.cache_hit)},
           {"latency_ms", r.latency_ms},
           {"cost_usd", r.cost_usd},
           {"usage_estimated", r.token_usage.estimated}};
    if (r.cache_hit == CacheHit::semantic) f["similarity"] = r.similarity;
    if (json m = response_metadata(r); !m.empty()) f["metadata"] = std::move(m);
    return f;
}

json tool_calls_json(const std::vector<ToolCall>& calls) {
    json arr = json::array();
    for (const auto& c : calls)
        arr.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    return arr;
}

json usage_json(const TokenUsage& u) {
    return {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.total_tokens ? u.total_tokens : u.prompt_tokens + u.completion_tokens}};
}

json chat_response_to_json(const InferenceResponse& r) {
    json msg{{"role", "assistant"}, {"content", r.content}};
    if (!r.tool_calls.empty()) msg["tool_calls"] = tool_calls_json(r.tool_calls);
    if (auto it = r.metadata.find("refusal"); it != r.metadata.end()) msg["refusal"] = it->second;
    if (!r.message_extra.empty()) {
        json extra = parsed_or_string(r.message_extra);
        if (extra.is_object())
            for (const auto& [k, v] : extra.items()) msg[k] = v;  // audio, annotations, as the provider sent them
    }
    json choices = json::array();
    json c0 = {{"index", 0}, {"message", msg}, {"finish_reason", r.finish_reason}};
    if (!r.logprobs.empty()) c0["logprobs"] = parsed_or_string(r.logprobs);
    choices.push_back(std::move(c0));
    for (std::size_t i = 0; i < r.more_choices.size(); ++i) {
        const auto& c = r.more_choices[i];
        json m{{"role", "assistant"}, {"content", c.content}};
        if (!c.tool_calls.empty()) m["tool_calls"] = tool_calls_json(c.tool_calls);
        json jc = {{"index", i + 1}, {"message", std::move(m)}, {"finish_reason", c.finish_reason}};
        if (!c.logprobs.empty()) jc["logprobs"] = parsed_or_string(c.logprobs);
        choices.push_back(std::move(jc));
    }
    return completion_envelope(r, "chat.completion", std::move(choices));
}

json completion_envelope(const InferenceResponse& r, const char* object, json choices) {
    return {{"id", r.request_id},
            {"object", object},
            {"created", r.created_ms / 1000},
            {"model", r.model_id},
            {"choices", std::move(choices)},
            {"usage", usage_json(r.token_usage)},
            {"l04", response_facts(r)}};
}

json tool_call_deltas_json(const std::vector<ToolCall>& deltas) {
    json arr = json::array();
    for (std::size_t i = 0; i < deltas.size(); ++i) {
        const auto& t = deltas[i];
        json jt{{"index", i}, {"function", {{"arguments", t.arguments}}}};
        if (!t.id.empty()) {
            jt["id"] = t.id;
            jt["type"] = "function";
        }
        if (!t.name.empty()) jt["function"]["name"] = t.name;
        arr.push_back(std::move(jt));
    }
    return arr;
}

json chunk_to_json(const StreamChunk& c, const std::string& id, std::int64_t created_s, bool first) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!c.delta.empty() || c.tool_call_deltas.empty()) delta["content"] = c.delta;
    if (!c.tool_call_deltas.empty()) delta["tool_calls"] = tool_call_deltas_json(c.tool_call_deltas);
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
    // Any server (or an l04d of another version) may answer with any shape:
    // each field is taken only when it has the expected type, and nothing
    // here throws.
    Error e(ErrorCode::internal_error, "HTTP " + std::to_string(http_status));
    e.http_status = http_status;
    if (!j.is_object()) return e;
    auto it = j.find("error");
    if (it == j.end() || !it->is_object()) return e;
    const json& err = *it;
    auto str = [&err](const char* k) {
        auto f = err.find(k);
        return f != err.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    const std::string code = str("code");
    // Only a well-formed code of l04's range is taken: never std::stoi on it.
    if (code.size() == 5 && code[0] == 'E' && code.find_first_not_of("0123456789", 1) == std::string::npos) {
        const int n = (code[1] - '0') * 1000 + (code[2] - '0') * 100 + (code[3] - '0') * 10 + (code[4] - '0');
        if (n >= 4000 && n <= 4799) e.code = static_cast<ErrorCode>(n);
    }
    if (const std::string m = str("message"); !m.empty()) e.message = m;
    if (auto f = err.find("retryable"); f != err.end() && f->is_boolean()) e.retryable = f->get<bool>();
    if (auto f = err.find("retry_after"); f != err.end() && f->is_number()) {
        const double s = f->get<double>();
        if (std::isfinite(s) && s >= 0 && s <= 86400.0 * 365)
            e.retry_after = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    }
    e.details = str("details");
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
            r.tool_calls = tool_calls_from(c["message"]);
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) r.finish_reason = c["finish_reason"];
        if (c.contains("logprobs") && !c["logprobs"].is_null()) r.logprobs = to_wire(c["logprobs"]);
        for (std::size_t i = 1; i < j["choices"].size(); ++i) {
            const json& ci = j["choices"][i];
            InferenceResponse::Choice ch;
            if (ci.contains("message") && ci["message"].is_object()) {
                ch.content = content_text(ci["message"].value("content", json("")));
                ch.tool_calls = tool_calls_from(ci["message"]);
            }
            if (ci.contains("finish_reason") && ci["finish_reason"].is_string()) ch.finish_reason = ci["finish_reason"];
            if (ci.contains("logprobs") && !ci["logprobs"].is_null()) ch.logprobs = to_wire(ci["logprobs"]);
            r.more_choices.push_back(std::move(ch));
        }
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
        std::string hit = f.value("cache_hit", "none");
        r.cache_hit = hit == "exact" ? CacheHit::exact : hit == "semantic" ? CacheHit::semantic : CacheHit::none;
        r.similarity = f.value("similarity", r.cache_hit == CacheHit::exact ? 1.0 : 0.0);
        r.latency_ms = f.value("latency_ms", 0.0);
        r.cost_usd = f.value("cost_usd", 0.0);
        r.token_usage.estimated = f.value("usage_estimated", false);
        if (auto m = f.find("metadata"); m != f.end()) response_metadata_from(*m, r);
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
        {"x-l04-cached", r.from_cache() ? "true" : "false"},
        {"x-l04-cache-hit", std::string(cache_hit_name(r.cache_hit))},
        {"x-l04-latency-ms", fmt(r.latency_ms, "%.3f")},
        {"x-l04-cost-usd", fmt(r.cost_usd, "%.8f")},
    };
    if (r.cache_hit == CacheHit::semantic) h.emplace_back("x-l04-similarity", fmt(r.similarity, "%.4f"));
    return h;
}

}  // namespace l04
