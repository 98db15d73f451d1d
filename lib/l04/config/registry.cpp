#include <l04/config/registry.hpp>

#include <l04/config/toml_util.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace l04 {

namespace {

std::string where(const std::string& src, const toml::source_region& r) {
    return src + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

struct Reader {
    const std::string& src;
    const toml::table& tbl;
    std::string context;

    Error err(const toml::node& n, const std::string& what) const {
        return Error(ErrorCode::registry_invalid, where(src, n.source()) + ": " + context + ": " + what);
    }
    Error missing(const std::string& key) const {
        return Error(ErrorCode::registry_invalid,
                     where(src, tbl.source()) + ": " + context + ": missing required key '" + key + "'");
    }

    Result<std::string> str(const std::string& key, bool required, std::string def = {}) const {
        const toml::node* n = tbl.get(key);
        if (!n) {
            if (required) return fail(missing(key));
            return def;
        }
        if (auto s = n->as_string()) return s->get();
        return fail(err(*n, "'" + key + "' must be a string"));
    }
    Result<double> num(const std::string& key, double def) const {
        const toml::node* n = tbl.get(key);
        if (!n) return def;
        if (auto f = n->as_floating_point()) return f->get();
        if (auto i = n->as_integer()) return static_cast<double>(i->get());
        return fail(err(*n, "'" + key + "' must be a number"));
    }
    Result<std::int64_t> integer(const std::string& key, std::int64_t def) const {
        const toml::node* n = tbl.get(key);
        if (!n) return def;
        if (auto i = n->as_integer()) {
            if (i->get() < 0) return fail(err(*n, "'" + key + "' must not be negative"));
            return i->get();
        }
        return fail(err(*n, "'" + key + "' must be an integer"));
    }
    Result<std::vector<std::string>> strings(const std::string& key) const {
        std::vector<std::string> out;
        const toml::node* n = tbl.get(key);
        if (!n) return out;
        const auto* arr = n->as_array();
        if (!arr) return fail(err(*n, "'" + key + "' must be an array of strings"));
        for (const auto& e : *arr) {
            if (auto s = e.as_string()) out.push_back(s->get());
            else return fail(err(e, "'" + key + "' must contain only strings"));
        }
        return out;
    }
};

const char* k_known_kinds[] = {"openai", "anthropic", "ollama", "gemini", "command", "mock"};

}  // namespace

Result<Registry> Registry::parse(std::string_view text, const std::string& src) {
    L04_TRY_ASSIGN(auto parsed, detail::parse_toml(text, src, ErrorCode::registry_invalid));
    const toml::table& root = parsed;
    Registry reg;

    for (const auto& [k, node] : root) {
        if (k.str() != "providers" && k.str() != "models")
            return fail(ErrorCode::registry_invalid,
                        where(src, node.source()) + ": unknown top-level key '" + std::string(k.str()) +
                            "' (expected [providers.<id>] tables and [[models]] entries)");
    }

    if (const toml::node* pn = root.get("providers")) {
        const auto* pt = pn->as_table();
        if (!pt) return fail(ErrorCode::registry_invalid, where(src, pn->source()) + ": 'providers' must be a table");
        for (const auto& [pid, pnode] : *pt) {
            const auto* t = pnode.as_table();
            if (!t)
                return fail(ErrorCode::registry_invalid,
                            where(src, pnode.source()) + ": providers." + std::string(pid.str()) + " must be a table");
            Reader r{src, *t, "provider '" + std::string(pid.str()) + "'"};
            ProviderInfo p;
            p.id = std::string(pid.str());
            L04_TRY_ASSIGN(auto kind, r.str("kind", true));
            if (std::find(std::begin(k_known_kinds), std::end(k_known_kinds), kind) == std::end(k_known_kinds))
                return fail(r.err(*t->get("kind"), "unknown kind '" + kind +
                                                       "' (expected openai, anthropic, ollama, gemini, command or mock)"));
            p.kind = kind;
            auto base = r.str("base_url", false);
            auto key_env = r.str("api_key_env", false);
            auto base_env = r.str("base_url_env", false);
            auto cmd = r.strings("command");
            auto timeout = r.integer("timeout_ms", 0);
            for (const Error* e : {base ? nullptr : &base.error(), key_env ? nullptr : &key_env.error(),
                                   base_env ? nullptr : &base_env.error(), cmd ? nullptr : &cmd.error(),
                                   timeout ? nullptr : &timeout.error()})
                if (e) return fail(*e);
            p.base_url = *base;
            p.api_key_env = *key_env;
            p.base_url_env = *base_env;
            p.command = *cmd;
            p.timeout_ms = *timeout;
            if (p.kind == "command" && p.command.empty()) return fail(r.missing("command"));
            reg.m_providers[p.id] = std::move(p);
        }
    }

    if (const toml::node* mn = root.get("models")) {
        const auto* arr = mn->as_array();
        if (!arr || !arr->is_array_of_tables())
            return fail(ErrorCode::registry_invalid,
                        where(src, mn->source()) + ": 'models' must be an array of tables ([[models]])");
        for (const auto& mnode : *arr) {
            const auto& t = *mnode.as_table();
            Reader r{src, t, "model"};
            ModelInfo m;
            L04_TRY_ASSIGN(auto id, r.str("id", true));
            if (id.empty()) return fail(r.err(*t.get("id"), "'id' must not be empty"));
            m.id = id;
            r.context = "model '" + m.id + "'";
            L04_TRY_ASSIGN(auto prov, r.str("provider", true));
            m.provider = prov;
            L04_TRY_ASSIGN(auto name, r.str("name", false, m.id));
            m.name = name;
            L04_TRY_ASSIGN(auto caps, r.strings("capabilities"));
            for (const auto& c : caps) {
                auto cap = parse_capability(c);
                if (!cap)
                    return fail(r.err(*t.get("capabilities"),
                                      "unknown capability '" + c +
                                          "' (expected text, code, vision, tool_use, streaming, long_context, embedding)"));
                m.capabilities.add(*cap);
            }
            auto cw = r.integer("context_window", 0);
            auto mo = r.integer("max_output_tokens", 0);
            auto ip = r.num("input_price", 0);
            auto op = r.num("output_price", 0);
            auto lat = r.num("latency_ms", 1000);
            auto q = r.num("quality", 0.5);
            auto dims = r.integer("embedding_dimensions", 0);
            auto aliases = r.strings("aliases");
            L04_TRY_ASSIGN(auto created, r.integer("created", 0));
            m.created = created;
            for (const Error* e : {cw ? nullptr : &cw.error(), mo ? nullptr : &mo.error(), ip ? nullptr : &ip.error(),
                                   op ? nullptr : &op.error(), lat ? nullptr : &lat.error(), q ? nullptr : &q.error(),
                                   dims ? nullptr : &dims.error(), aliases ? nullptr : &aliases.error()})
                if (e) return fail(*e);
            m.context_window = *cw;
            m.max_output_tokens = *mo;
            m.input_price = *ip;
            m.output_price = *op;
            m.latency_ms = *lat;
            m.quality = *q;
            m.embedding_dimensions = *dims;
            m.aliases = *aliases;
            if (m.input_price < 0 || m.output_price < 0)
                return fail(r.err(mnode, "prices must not be negative"));
            if (m.quality < 0 || m.quality > 1) return fail(r.err(*t.get("quality"), "'quality' must be within 0..1"));
            reg.m_models.push_back(std::move(m));
        }
    }
    reg.reindex();
    return reg;
}

Result<Registry> Registry::load(const std::vector<std::string>& paths) {
    Registry reg;
    bool first = true;
    for (const auto& path : paths) {
        std::error_code ec;
        if (path.empty() || !std::filesystem::exists(path, ec)) {
            if (first)
                return fail(ErrorCode::config_file_unreadable,
                            "model catalogue " + (path.empty() ? std::string("models.toml") : path) +
                                " not found (set L04_SHARE_DIR to the folder holding models.toml)");
            first = false;
            continue;
        }
        std::ifstream in(path);
        if (!in) return fail(ErrorCode::config_file_unreadable, "cannot read model catalogue " + path);
        std::stringstream buf;
        buf << in.rdbuf();
        L04_TRY_ASSIGN(auto r, parse(buf.str(), path));
        const auto mtime = std::filesystem::last_write_time(path, ec);
        const std::int64_t mtime_s =
            ec ? 0
               : std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                     .count();
        for (auto& m : r.m_models)
            if (m.created == 0) m.created = mtime_s;
        reg.merge(r);
        first = false;
    }
    // Every model must name a known provider once all files are merged.
    for (const auto& m : reg.m_models)
        if (!reg.m_providers.count(m.provider))
            return fail(ErrorCode::registry_invalid,
                        "model '" + m.id + "' names provider '" + m.provider + "', which no [providers." +
                            m.provider + "] table defines");
    return reg;
}

void Registry::merge(const Registry& other) {
    for (const auto& [id, p] : other.m_providers) m_providers[id] = p;
    for (const auto& m : other.m_models) {
        auto it = std::find_if(m_models.begin(), m_models.end(), [&](const ModelInfo& x) { return x.id == m.id; });
        if (it != m_models.end()) *it = m;
        else m_models.push_back(m);
    }
    reindex();
}

void Registry::reindex() {
    m_by_name.clear();
    m_by_capability.assign(k_capability_count, {});
    for (std::size_t i = 0; i < m_models.size(); ++i) {
        const auto& m = m_models[i];
        for (const auto& a : m.aliases) m_by_name.emplace(a, i);
        for (int c = 0; c < k_capability_count; ++c)
            if (m.capabilities.has(static_cast<Capability>(c))) m_by_capability[c].push_back(i);
    }
    // Ids win over aliases of other models.
    for (std::size_t i = 0; i < m_models.size(); ++i) m_by_name[m_models[i].id] = i;
}

const ModelInfo* Registry::find(std::string_view name) const {
    auto it = m_by_name.find(name);
    if (it != m_by_name.end()) return &m_models[it->second];
    // "ollama/llama3.1:8b": a catalogue model named by its provider and its
    // id, provider string or alias.
    if (auto slash = name.find('/'); slash != std::string_view::npos && slash > 0) {
        const std::string_view prov = name.substr(0, slash), rest = name.substr(slash + 1);
        for (const auto& m : m_models)
            if (m.provider == prov && (m.id == rest || m.name == rest ||
                                       std::find(m.aliases.begin(), m.aliases.end(), rest) != m.aliases.end()))
                return &m;
    }
    std::lock_guard lk(m_dynamic->mu);
    for (const auto& m : m_dynamic->models)
        if (m.id == name) return &m;
    return nullptr;
}

std::optional<std::pair<std::string, std::string>> Registry::split_provider_model(std::string_view name) const {
    const auto slash = name.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= name.size() || name.size() > 200) return std::nullopt;
    const ProviderInfo* p = provider(name.substr(0, slash));
    if (!p || (p->kind != "ollama" && p->kind != "openai")) return std::nullopt;
    // A model name is printable and has no spaces (it goes into a JSON body
    // and into logs).
    for (char c : name)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return std::nullopt;
    return std::make_pair(p->id, std::string(name.substr(slash + 1)));
}

const ModelInfo* Registry::add_dynamic(ModelInfo m) const {
    std::lock_guard lk(m_dynamic->mu);
    for (const auto& x : m_dynamic->models)
        if (x.id == m.id) return &x;
    if (m_dynamic->models.size() >= k_max_dynamic_models) return nullptr;
    m_dynamic->models.push_back(std::move(m));
    return &m_dynamic->models.back();
}

const ProviderInfo* Registry::provider(std::string_view id) const {
    auto it = m_providers.find(id);
    return it == m_providers.end() ? nullptr : &it->second;
}

std::vector<const ModelInfo*> Registry::with_capabilities(CapabilitySet caps) const {
    std::vector<const ModelInfo*> out;
    if (caps.empty()) {
        for (const auto& m : m_models) out.push_back(&m);
        return out;
    }
    // Start from the smallest posting list, check the rest by bitmask.
    const std::vector<std::size_t>* smallest = nullptr;
    for (int c = 0; c < k_capability_count; ++c)
        if (caps.has(static_cast<Capability>(c)) && (!smallest || m_by_capability[c].size() < smallest->size()))
            smallest = &m_by_capability[c];
    for (std::size_t i : *smallest)
        if (m_models[i].capabilities.contains_all(caps)) out.push_back(&m_models[i]);
    return out;
}

std::vector<std::string> Registry::names() const {
    std::vector<std::string> out;
    for (const auto& [n, i] : m_by_name) out.push_back(n);
    return out;
}

double cost_usd(const ModelInfo& m, const TokenUsage& u) {
    return (static_cast<double>(u.prompt_tokens) * m.input_price +
            static_cast<double>(u.completion_tokens) * m.output_price) /
           1'000'000.0;
}

std::string find_builtin_models_file() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (const char* d = std::getenv("L04_SHARE_DIR"); d && *d) return std::string(d) + "/models.toml";
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        fs::path p = fs::path(exe).parent_path().parent_path() / "share" / "l04" / "models.toml";
        if (fs::exists(p, ec)) return p.string();
    }
    std::string installed = std::string(L04_SHARE_DIR_INSTALLED) + "/models.toml";
    if (fs::exists(installed, ec)) return installed;
    return std::string(L04_SHARE_DIR_SOURCE) + "/models.toml";
}

}  // namespace l04
