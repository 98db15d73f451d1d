#include <l04/core/json_schema.hpp>
#include <l04/core/strings.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace l04 {

using nlohmann::json;

namespace {

std::string type_of(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "integer";
        case json::value_t::number_float: return "number";
        case json::value_t::string: return "string";
        case json::value_t::array: return "array";
        case json::value_t::object: return "object";
        default: return "unknown";
    }
}

bool is_type(const json& v, const std::string& t) {
    if (t == "number") return v.is_number();
    if (t == "integer") {
        if (v.is_number_integer()) return true;
        // 3.0 is an integer in JSON Schema.
        return v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>();
    }
    return type_of(v) == t;
}

std::size_t utf8_length(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

struct Validator {
    const json& root;
    int depth = 0;

    const json* resolve(const std::string& ref) const {
        for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
            const std::string p(prefix);
            if (ref.rfind(p, 0) == 0) {
                const std::string key = p.substr(2, p.size() - 3);
                auto defs = root.find(key);
                if (defs == root.end() || !defs->is_object()) return nullptr;
                auto it = defs->find(ref.substr(p.size()));
                return it == defs->end() ? nullptr : &*it;
            }
        }
        if (ref == "#") return &root;
        return nullptr;
    }

    std::string check(const json& s, const json& v, const std::string& at) {
        if (++depth > 64) return at + ": the schema nests too deep (or refers to itself without end)";
        struct Leave {
            int& d;
            ~Leave() { --d; }
        } leave{depth};
        if (s.is_boolean()) return s.get<bool>() ? "" : at + ": no value is allowed here";
        if (!s.is_object()) return {};
        if (auto r = s.find("$ref"); r != s.end() && r->is_string()) {
            const json* target = resolve(r->get<std::string>());
            if (!target) return at + ": the schema's $ref " + r->get<std::string>() + " cannot be resolved";
            if (auto e = check(*target, v, at); !e.empty()) return e;
        }
        if (auto t = s.find("type"); t != s.end()) {
            bool ok = false;
            std::string want;
            if (t->is_string()) {
                ok = is_type(v, *t);
                want = *t;
            } else if (t->is_array()) {
                for (const auto& x : *t)
                    if (x.is_string()) {
                        ok = ok || is_type(v, x);
                        want += (want.empty() ? "" : " or ") + x.get<std::string>();
                    }
            } else {
                ok = true;
            }
            if (!ok) return at + ": expected " + want + ", got " + type_of(v);
        }
        if (auto e = s.find("enum"); e != s.end() && e->is_array()) {
            bool found = false;
            for (const auto& x : *e) found = found || x == v;
            if (!found) return at + ": " + v.dump() + " is not one of " + e->dump();
        }
        if (auto c = s.find("const"); c != s.end() && *c != v) return at + ": expected " + c->dump();
        if (v.is_number()) {
            const double d = v.get<double>();
            if (auto m = s.find("minimum"); m != s.end() && m->is_number() && d < m->get<double>())
                return at + ": " + v.dump() + " is less than the minimum " + m->dump();
            if (auto m = s.find("maximum"); m != s.end() && m->is_number() && d > m->get<double>())
                return at + ": " + v.dump() + " is more than the maximum " + m->dump();
        }
        if (v.is_string()) {
            const std::size_t n = utf8_length(v.get_ref<const std::string&>());
            if (auto m = s.find("minLength"); m != s.end() && m->is_number_unsigned() && n < m->get<std::size_t>())
                return at + ": shorter than " + m->dump() + " characters";
            if (auto m = s.find("maxLength"); m != s.end() && m->is_number_unsigned() && n > m->get<std::size_t>())
                return at + ": longer than " + m->dump() + " characters";
        }
        if (v.is_array()) {
            if (auto m = s.find("minItems"); m != s.end() && m->is_number_unsigned() && v.size() < m->get<std::size_t>())
                return at + ": fewer than " + m->dump() + " items";
            if (auto m = s.find("maxItems"); m != s.end() && m->is_number_unsigned() && v.size() > m->get<std::size_t>())
                return at + ": more than " + m->dump() + " items";
            if (auto items = s.find("items"); items != s.end() && (items->is_object() || items->is_boolean()))
                for (std::size_t i = 0; i < v.size(); ++i)
                    if (auto e = check(*items, v[i], at + "[" + std::to_string(i) + "]"); !e.empty()) return e;
        }
        if (v.is_object()) {
            const json* props = nullptr;
            if (auto p = s.find("properties"); p != s.end() && p->is_object()) props = &*p;
            if (auto r = s.find("required"); r != s.end() && r->is_array())
                for (const auto& k : *r)
                    if (k.is_string() && !v.contains(k.get<std::string>()))
                        return at + ": the required field '" + k.get<std::string>() + "' is missing";
            auto extra = s.find("additionalProperties");
            for (const auto& [k, x] : v.items()) {
                const std::string where = at + "." + k;
                if (props && props->contains(k)) {
                    if (auto e = check((*props)[k], x, where); !e.empty()) return e;
                } else if (extra != s.end()) {
                    if (extra->is_boolean() && !extra->get<bool>()) return at + ": the field '" + k + "' is not allowed";
                    if (extra->is_object())
                        if (auto e = check(*extra, x, where); !e.empty()) return e;
                }
            }
        }
        if (auto any = s.find("anyOf"); any != s.end() && any->is_array() && !any->empty()) {
            std::string first;
            for (const auto& alt : *any) {
                auto e = check(alt, v, at);
                if (e.empty()) return {};
                if (first.empty()) first = e;
            }
            return at + ": matches none of anyOf (" + first + ")";
        }
        return {};
    }
};

}  // namespace

Result<json> compact_schema(std::string_view spec) {
    json props = json::object();
    json required = json::array();
    // Fields are separated by commas, or by newlines.
    std::string normalized(spec);
    for (char& c : normalized)
        if (c == '\n') c = ',';
    for (const auto& raw : split(normalized, ',')) {
        std::string field(trim(raw));
        if (field.empty()) continue;
        std::string description;
        if (auto colon = field.find(':'); colon != std::string::npos) {
            description = std::string(trim(std::string_view(field).substr(colon + 1)));
            field = std::string(trim(std::string_view(field).substr(0, colon)));
        }
        const auto space = field.find_first_of(" \t");
        const std::string name = field.substr(0, space);
        std::string type = space == std::string::npos ? "str" : std::string(trim(std::string_view(field).substr(space)));
        if (name.empty() || name.find_first_of("\"\\{}[]") != std::string::npos)
            return fail(ErrorCode::invalid_parameter, "--schema: a field needs a plain name, got '" + field + "'");
        bool array = false;
        if (type.size() >= 2 && type.front() == '[' && type.back() == ']') {
            array = true;
            type = std::string(trim(std::string_view(type).substr(1, type.size() - 2)));
        }
        std::string t;
        if (type == "str" || type == "string") t = "string";
        else if (type == "int" || type == "integer") t = "integer";
        else if (type == "float" || type == "number" || type == "num") t = "number";
        else if (type == "bool" || type == "boolean") t = "boolean";
        else
            return fail(ErrorCode::invalid_parameter,
                        "--schema: unknown type '" + type + "' for '" + name + "' (str, int, float, bool, or [T] for a list)");
        json f = array ? json{{"type", "array"}, {"items", {{"type", t}}}} : json{{"type", t}};
        if (!description.empty()) f["description"] = description;
        if (props.contains(name)) return fail(ErrorCode::invalid_parameter, "--schema: the field '" + name + "' is given twice");
        props[name] = std::move(f);
        required.push_back(name);
    }
    if (props.empty()) return fail(ErrorCode::invalid_parameter, "--schema: no fields (e.g. --schema 'name str, age int')");
    return json{{"type", "object"}, {"properties", std::move(props)}, {"required", std::move(required)},
                {"additionalProperties", false}};
}

Result<json> load_schema_arg(const std::string& arg) {
    const std::string_view t = trim(arg);
    json schema;
    if (!t.empty() && t.front() == '{') {
        schema = json::parse(t, nullptr, false);
        if (schema.is_discarded()) return fail(ErrorCode::invalid_parameter, "--schema: not valid JSON");
    } else if (std::ifstream f(arg); f && arg.find(',') == std::string::npos && arg.find(' ') == std::string::npos) {
        std::stringstream ss;
        ss << f.rdbuf();
        schema = json::parse(ss.str(), nullptr, false);
        if (schema.is_discarded()) return fail(ErrorCode::invalid_parameter, "--schema: " + arg + " is not valid JSON");
    } else {
        return compact_schema(t);
    }
    if (!schema.is_object()) return fail(ErrorCode::invalid_parameter, "--schema: a schema is a JSON object");
    // A structured answer is an object at the top: providers require it.
    if (schema.value("type", json()) != "object")
        return fail(ErrorCode::invalid_parameter, "--schema: the schema's top level must be \"type\": \"object\"");
    return schema;
}

std::string schema_violation(const json& schema, const json& value) {
    Validator v{schema};
    return v.check(schema, value, "$");
}

}  // namespace l04
