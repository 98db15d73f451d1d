#include <l04/config/prompt_template.hpp>
#include <l04/config/toml_util.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace l04 {

namespace {

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

// Calls on_text for literal runs and on_param for {name}.
template <class Text, class Param>
void scan(const std::string& s, Text on_text, Param on_param) {
    std::size_t i = 0;
    while (i < s.size()) {
        if (s.compare(i, 2, "{{") == 0) {
            on_text("{");
            i += 2;
            continue;
        }
        if (s.compare(i, 2, "}}") == 0) {
            on_text("}");
            i += 2;
            continue;
        }
        if (s[i] == '{' && i + 1 < s.size() && name_start(s[i + 1])) {
            std::size_t j = i + 1;
            while (j < s.size() && name_char(s[j])) ++j;
            if (j < s.size() && s[j] == '}') {
                on_param(s.substr(i + 1, j - i - 1));
                i = j + 1;
                continue;
            }
        }
        on_text(std::string_view(&s[i], 1));
        ++i;
    }
}


}  // namespace

bool valid_template_name(const std::string& name) {
    if (name.empty() || name.size() > 100 || name.front() == '.') return false;
    return std::all_of(name.begin(), name.end(), [](char c) { return name_char(c) || c == '-' || c == '.'; });
}

std::string templates_dir(const std::string& config_dir) { return config_dir + "/templates"; }

std::vector<std::string> template_names(const std::string& config_dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(templates_dir(config_dir), ec)) {
        if (e.path().extension() != ".toml") continue;
        const std::string n = e.path().stem().string();
        if (valid_template_name(n)) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<PromptTemplate> load_template(const std::string& config_dir, const std::string& name) {
    if (!valid_template_name(name))
        return fail(ErrorCode::invalid_parameter, "'" + name + "' is not a template name (letters, digits, - _ .)");
    PromptTemplate t;
    t.name = name;
    t.path = templates_dir(config_dir) + "/" + name + ".toml";
    std::ifstream f(t.path);
    if (!f) {
        auto names = template_names(config_dir);
        std::string known;
        for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
        return fail(ErrorCode::invalid_parameter, "no template '" + name + "' (" + t.path + ")" +
                                                      (known.empty() ? "" : "; there are: " + known));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    L04_TRY_ASSIGN(auto tbl, detail::parse_toml(ss.str(), t.path, ErrorCode::config_invalid));
    auto bad = [&](const std::string& what) { return fail(ErrorCode::config_invalid, t.path + ": " + what); };
    static const std::set<std::string> k_keys{"description", "system", "prompt", "model", "temperature",
                                              "max_tokens", "schema", "options", "defaults"};
    for (const auto& [k, v] : tbl) {
        const std::string key(k.str());
        if (!k_keys.count(key)) return bad("unknown key '" + key + "'");
        if (key == "options" || key == "defaults") {
            const toml::table* sub = v.as_table();
            if (!sub) return bad("'" + key + "' must be a table");
            for (const auto& [ok, ov] : *sub) {
                if (ov.is_table() || ov.is_array()) return bad(key + "." + std::string(ok.str()) + " must be a single value");
                const std::string text = detail::toml_value_text(ov);
                if (key == "options") {
                    t.options[std::string(ok.str())] =
                        ov.is_string() ? OptionValue{OptionValue::Kind::string, text} : option_from_text(text);
                } else {
                    t.defaults[std::string(ok.str())] = text;
                }
            }
        } else if (key == "temperature") {
            auto d = v.value<double>();
            if (!d) return bad("temperature must be a number");
            t.temperature = *d;
        } else if (key == "max_tokens") {
            auto i = v.value<std::int64_t>();
            if (!i || *i <= 0) return bad("max_tokens must be a positive integer");
            t.max_tokens = *i;
        } else if (key == "schema" && v.is_table()) {
            std::ostringstream o;
            o << toml::json_formatter{*v.as_table()};
            t.schema = o.str();
        } else {
            auto s = v.value<std::string>();
            if (!s) return bad("'" + key + "' must be a string");
            if (key == "description") t.description = *s;
            else if (key == "system") t.system = *s;
            else if (key == "prompt") t.prompt = *s;
            else if (key == "model") t.model = *s;
            else if (key == "schema") t.schema = *s;
        }
    }
    if (t.system.empty() && t.prompt.empty()) return bad("a template needs 'prompt' or 'system'");
    return t;
}

std::vector<std::string> template_params(const std::string& text) {
    std::vector<std::string> out;
    scan(text, [](std::string_view) {}, [&](const std::string& p) {
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    });
    return out;
}

Result<std::string> fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                                  bool& used_input) {
    std::string out;
    std::string missing;
    scan(text, [&](std::string_view s) { out.append(s); },
         [&](const std::string& p) {
             if (p == "input") used_input = true;
             auto it = values.find(p);
             if (it == values.end()) {
                 if (missing.find("'" + p + "'") == std::string::npos) missing += (missing.empty() ? "'" : ", '") + p + "'";
                 return;
             }
             out += it->second;
         });
    if (!missing.empty())
        return fail(ErrorCode::invalid_parameter, "the template needs a value for " + missing + " (-p NAME VALUE)");
    return out;
}

}  // namespace l04
