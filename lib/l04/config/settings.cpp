#include <l04/config/settings.hpp>
#include <l04/core/hash.hpp>
#include <l04/core/strings.hpp>

#include <l04/config/toml_util.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace l04 {

namespace {
using T = SettingType;
}

const std::vector<SettingInfo>& settings_table() {
    static const std::vector<SettingInfo> table = {
        {"state_dir", T::path, "", {"L04_STATE_DIR"}, false,
         "State directory (SQLite, index). Default $XDG_STATE_HOME/l04."},
        {"runtime_dir", T::path, "", {"L04_RUNTIME_DIR"}, false,
         "Runtime directory (socket, lock, pid). Default $XDG_RUNTIME_DIR/l04-<digest of the state directory> (else "
         "/tmp/l04-<uid>-<digest>): one l04d per state directory."},
        {"models_file", T::path, "", {"L04_MODELS"}, false,
         "Extra models.toml merged over the installed catalogue. Default $XDG_CONFIG_HOME/l04/models.toml."},
        {"agent", T::string, "default", {"L04_AGENT"}, false, "Agent identity for limits, budgets and the ledger."},
        {"routing.default_model", T::string, "", {"L04_DEFAULT_MODEL", "L04_MODEL"}, false,
         "Model used when a request names none and no strategy applies. Empty = route by strategy."},
        {"routing.strategy", T::string, "balanced", {"L04_ROUTING_STRATEGY", "DEFAULT_ROUTING_STRATEGY"}, false,
         "capability_match, fastest, cheapest, best_quality, balanced, fallback, round_robin, weighted."},
        {"routing.fallback_chain", T::string, "", {"L04_ROUTING_FALLBACK_CHAIN"}, false,
         "Ordered model ids for the fallback strategy, comma-separated."},
        {"routing.fallbacks", T::string, "", {"L04_ROUTING_FALLBACKS"}, false,
         "Fallbacks for explicitly named models: \"model=fb1,fb2; other=fb3\"."},
        {"routing.weights", T::string, "", {"L04_ROUTING_WEIGHTS"}, false,
         "Weights for the weighted strategy: \"model=3, other=1\" (unlisted models: weight 0)."},
        {"routing.balanced_weights", T::string, "quality=0.5,cost=0.3,latency=0.2", {"L04_ROUTING_BALANCED_WEIGHTS"},
         false, "Weights of the balanced strategy's score."},
        {"routing.context_fallback", T::boolean, "true", {"L04_ROUTING_CONTEXT_FALLBACK"}, false,
         "On a context-length error, retry once on the cheapest configured model with a larger context window."},
        {"request.timeout", T::duration, "120s", {"L04_TIMEOUT"}, false, "Total time a request may take."},
        {"cache.enabled", T::boolean, "true", {"L04_CACHE_ENABLED", "CACHE_ENABLED"}, false,
         "Response cache on or off."},
        {"cache.ttl", T::duration, "3600", {"L04_CACHE_TTL", "CACHE_TTL"}, false,
         "How long a cached answer stays valid (seconds, or 90s/15m/24h)."},
        {"cache.similarity_threshold", T::number, "0.85",
         {"L04_CACHE_SIMILARITY_THRESHOLD", "CACHE_SIMILARITY_THRESHOLD"}, false,
         "Cosine similarity at or above which a semantic hit is served."},
        {"cache.max_entries", T::integer, "100000", {"L04_CACHE_MAX_ENTRIES"}, false,
         "Entries kept before least-recently-used eviction."},
        {"cache.max_bytes", T::integer, "268435456", {"L04_CACHE_MAX_BYTES"}, false,
         "Payload bytes kept before least-recently-used eviction."},
        {"cache.semantic", T::boolean, "true", {"L04_CACHE_SEMANTIC"}, false, "Semantic (embedding) lookups."},
        {"cache.semantic_guard", T::boolean, "true", {"L04_CACHE_SEMANTIC_GUARD"}, false,
         "Refuse a semantic hit whose prompt differs in numbers, negation, an antonym (on/off) or swapped "
         "entities (from A to B / from B to A), whatever its similarity."},
        {"cache.semantic_margin", T::number, "0.03", {"L04_CACHE_SEMANTIC_MARGIN"}, false,
         "Refuse a semantic hit as ambiguous when a cached entry with a different answer is within this much "
         "similarity of it (0 = off)."},
        {"cache.embedder", T::string, "builtin", {"L04_CACHE_EMBEDDER"}, false,
         "builtin (offline), ollama or openai."},
        {"embedding.ollama_model", T::string, "nomic-embed-text", {"L04_OLLAMA_EMBEDDING_MODEL", "OLLAMA_EMBEDDING_MODEL"},
         false, "Ollama embedding model."},
        {"embedding.ollama_dimensions", T::integer, "768",
         {"L04_OLLAMA_EMBEDDING_DIMENSIONS", "OLLAMA_EMBEDDING_DIMENSIONS"}, false, "Its vector size."},
        {"rate_limit.enabled", T::boolean, "true", {"L04_RATE_LIMIT_ENABLED", "RATE_LIMIT_ENABLED"}, false,
         "Count requests and tokens in token buckets."},
        {"rate_limit.enforced", T::boolean, "true", {"L04_RATE_LIMIT_ENFORCED"}, false,
         "Reject over-limit requests (false = shadow mode: count and report only)."},
        {"rate_limit.requests_per_minute", T::integer, "60",
         {"L04_RATE_LIMIT_REQUESTS_PER_MINUTE", "RATE_LIMIT_REQUESTS_PER_MINUTE"}, false,
         "Requests per minute per agent."},
        {"rate_limit.tokens_per_minute", T::integer, "100000",
         {"L04_RATE_LIMIT_TOKENS_PER_MINUTE", "RATE_LIMIT_TOKENS_PER_MINUTE"}, false, "Tokens per minute per agent."},
        {"rate_limit.allow_oversized", T::boolean, "false", {"L04_RATE_LIMIT_ALLOW_OVERSIZED"}, false,
         "Admit a request needing more tokens than a bucket's whole per-minute capacity (when the bucket is full, "
         "leaving it in debt) instead of refusing it with E4401."},
        {"rate_limit.lease", T::duration, "200ms", {"L04_RATE_LIMIT_LEASE"}, false,
         "How long a process may decide a busy bucket in memory from a lease of what the bucket refills in that "
         "time (taken only while the bucket is at least half full; a bucket refills only up to its capacity minus the "
         "leases out, so never more is admitted than without leases); "
         "0 = every decision in SQLite. l04d leases from its first decision, --no-daemon runs only a bucket they "
         "decided on less than this long before."},
        {"rate_limit.scopes", T::string, "", {"L04_RATE_LIMIT_SCOPES"}, false,
         "Per-scope limits \"scope=rpm[/tpm]\", comma-separated; scope is agent:<id>, provider:<id> or model:<id>; "
         "0 or - = unlimited. Providers and models not listed are not limited."},
        {"budget.daily_usd", T::number, "0", {"L04_BUDGET_DAILY_USD"}, false,
         "Spend limit per agent per UTC day in USD (0 = none)."},
        {"budget.monthly_usd", T::number, "0", {"L04_BUDGET_MONTHLY_USD"}, false,
         "Spend limit per agent per UTC calendar month in USD (0 = none)."},
        {"budget.agents", T::string, "", {"L04_BUDGET_AGENTS"}, false,
         "Per-agent budgets \"agent=daily[/monthly]\" in USD, comma-separated; 0 or - = none."},
        {"log.prompts", T::boolean, "true", {"L04_LOG_PROMPTS"}, false,
         "Record every `l04ctl prompt` (prompt, system, model, answer, usage, conversation) in logs.db in the state "
         "directory (mode 0600), for `l04ctl logs` and `-c`; false records nothing."},
        {"log.retention", T::duration, "0", {"L04_LOG_RETENTION"}, false,
         "Delete logged prompts older than this (e.g. 30d) whenever one is recorded; 0 keeps them."},
        {"circuit_breaker.failure_threshold", T::integer, "5",
         {"L04_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "CIRCUIT_BREAKER_FAILURE_THRESHOLD"}, false,
         "Consecutive failures that open a provider's circuit."},
        {"circuit_breaker.recovery_timeout", T::duration, "60",
         {"L04_CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "CIRCUIT_BREAKER_RECOVERY_TIMEOUT"}, false,
         "Time an open circuit waits before a probe."},
        {"retry.max_retries", T::integer, "2", {"L04_MAX_RETRIES"}, false, "Retries per model before failover."},
        {"retry.base_delay", T::duration, "500ms", {"L04_RETRY_BASE_DELAY"}, false, "First backoff step."},
        {"retry.max_delay", T::duration, "20s", {"L04_RETRY_MAX_DELAY"}, false, "Backoff cap."},
        {"providers.openai.api_key", T::string, "", {"OPENAI_API_KEY", "L04_OPENAI_API_KEY"}, true, "OpenAI API key."},
        {"providers.openai.base_url", T::string, "", {"OPENAI_BASE_URL", "L04_OPENAI_BASE_URL"}, false,
         "Override the OpenAI base URL (e.g. a local server)."},
        {"providers.anthropic.api_key", T::string, "", {"ANTHROPIC_API_KEY", "L04_ANTHROPIC_API_KEY"}, true,
         "Anthropic API key."},
        {"providers.anthropic.base_url", T::string, "", {"ANTHROPIC_BASE_URL", "L04_ANTHROPIC_BASE_URL"}, false,
         "Override the Anthropic base URL."},
        {"providers.ollama.url", T::string, "", {"OLLAMA_URL", "L04_OLLAMA_URL"}, false,
         "Ollama server URL (default from models.toml: http://127.0.0.1:11434)."},
        {"providers.gemini.api_key", T::string, "", {"GEMINI_API_KEY", "L04_GEMINI_API_KEY"}, true,
         "Gemini API key."},
        {"providers.gemini.base_url", T::string, "", {"GEMINI_BASE_URL", "L04_GEMINI_BASE_URL"}, false,
         "Override the Gemini base URL."},
        {"redis_url", T::string, "", {"L04_REDIS_URL", "REDIS_URL"}, false,
         "Accepted for compatibility with the seed; l04 keeps shared state in SQLite and does not use Redis."},
        {"daemon.listen", T::string, "", {"L04_LISTEN"}, false,
         "Also serve HTTP on this TCP address (e.g. 127.0.0.1:8404). Empty = Unix socket only."},
        {"daemon.auth_token", T::string, "", {"L04_AUTH_TOKEN"}, true,
         "Bearer token required on the TCP listener when set; required for a non-loopback listen address and "
         "for the admin endpoints over TCP."},
        {"daemon.allowed_hosts", T::string, "", {"L04_ALLOWED_HOSTS"}, false,
         "Host names the TCP listener answers besides localhost, 127.0.0.1, ::1 and its own address "
         "(comma-separated); other Host headers get 403 (DNS rebinding)."},
        {"daemon.allowed_origins", T::string, "", {"L04_ALLOWED_ORIGINS"}, false,
         "Browser origins allowed on the TCP listener (comma-separated, e.g. http://localhost:3000); a request "
         "with any other Origin header gets 403."},
        {"daemon.max_tcp_connections", T::integer, "256", {"L04_MAX_TCP_CONNECTIONS"}, false,
         "TCP connections l04d serves at once, apart from the Unix socket's."},
        {"daemon.io_threads", T::integer, "0", {"L04_IO_THREADS"}, false,
         "Event-loop threads serving l04d's connections, each connection on a fiber (0 = one per core)."},
        {"daemon.idle_timeout", T::duration, "600", {"L04_IDLE_TIMEOUT"}, false,
         "l04d exits after this long with no requests (0 = never)."},
        {"client.status_timeout", T::duration, "5s", {"L04_STATUS_TIMEOUT"}, false,
         "How long l04ctl's status-like commands (daemon status|stop, cache, usage, limits) wait for l04d's "
         "answer before exit 8 (\"not responding\")."},
        {"daemon.max_connections", T::integer, "2048", {"L04_MAX_CONNECTIONS"}, false,
         "Connections l04d serves at once."},
        {"queue.provider_concurrency", T::integer, "64", {"L04_QUEUE_PROVIDER_CONCURRENCY"}, false,
         "Requests one provider serves at once; more wait in the queue (at least 1)."},
        {"log.level", T::string, "info", {"L04_LOG_LEVEL"}, false, "trace, debug, info, warn, error, off."},
        {"log.format", T::string, "text", {"L04_LOG_FORMAT"}, false, "text or json."},
        {"usage.retention", T::duration, "90d", {"L04_USAGE_RETENTION"}, false, "Ledger rows older than this are pruned."},
        {"usage.export_url", T::string, "", {"L01_BASE_URL", "L04_USAGE_EXPORT_URL"}, false,
         "Post each ledger row as JSON to this URL."},
        {"usage.export_api_key", T::string, "", {"L01_API_KEY", "L04_USAGE_EXPORT_API_KEY"}, true,
         "Bearer token for the usage exporter."},
    };
    return table;
}

const SettingInfo* find_setting(std::string_view key) {
    for (const auto& s : settings_table())
        if (s.key == key) return &s;
    return nullptr;
}

EnvFn process_env() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

namespace {

Status validate(const SettingInfo& info, const std::string& value) {
    auto bad = [&](const char* what) {
        return fail(ErrorCode::config_invalid,
                    "'" + std::string(info.key) + "' = '" + value + "' is not " + what);
    };
    switch (info.type) {
        case T::integer: {
            if (value.empty()) return bad("an integer");
            char* end = nullptr;
            std::strtoll(value.c_str(), &end, 10);
            if (*end != '\0') return bad("an integer");
            break;
        }
        case T::number: {
            if (value.empty()) return bad("a number");
            char* end = nullptr;
            std::strtod(value.c_str(), &end);
            if (*end != '\0') return bad("a number");
            break;
        }
        case T::boolean:
            if (!parse_bool(value)) return bad("a boolean (true/false)");
            break;
        case T::duration:
            if (!parse_duration_ms(value)) return bad("a duration (e.g. 30, 90s, 15m, 24h)");
            break;
        default: break;
    }
    return {};
}


std::string where(const std::string& file, const toml::source_region& r) {
    return file + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

// Walks a parsed file, applying every leaf to settings; unknown keys fail.
Status apply_table(Settings& s, const toml::table& tbl, const std::string& prefix, const std::string& file) {
    for (const auto& [k, node] : tbl) {
        std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        if (const auto* sub = node.as_table()) {
            if (auto st = apply_table(s, *sub, key, file); !st) return st;
            continue;
        }
        const SettingInfo* info = find_setting(key);
        if (!info) {
            std::vector<std::string> names;
            for (const auto& e : settings_table()) names.emplace_back(e.key);
            auto near = closest_names(key, names, 1);
            return fail(ErrorCode::config_invalid,
                        where(file, node.source()) + ": unknown key '" + key + "'" +
                            (near.empty() ? "" : " (did you mean '" + near[0] + "'?)"));
        }
        if (node.is_array() || node.is_table()) {
            return fail(ErrorCode::config_invalid, where(file, node.source()) + ": '" + key + "' must be a single value");
        }
        auto st = s.set(key, detail::toml_value_text(node), file);
        if (!st) {
            Error e = st.error();
            e.message = where(file, node.source()) + ": " + e.message;
            return fail(std::move(e));
        }
    }
    return {};
}

Status apply_file(Settings& s, const std::string& path, bool must_exist) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (must_exist) return fail(ErrorCode::config_file_unreadable, "config file " + path + " does not exist");
        return {};
    }
    std::ifstream in(path);
    if (!in) return fail(ErrorCode::config_file_unreadable, "cannot read config file " + path);
    std::stringstream buf;
    buf << in.rdbuf();
    L04_TRY_ASSIGN(auto r, detail::parse_toml(buf.str(), path, ErrorCode::config_invalid));
    return apply_table(s, r, "", path);
}

std::string env_or(const EnvFn& env, std::string_view name, std::string fallback) {
    if (auto v = env(name); v && !v->empty()) return *v;
    return fallback;
}

std::string home(const EnvFn& env) {
    return env_or(env, "HOME", "/tmp");
}

}  // namespace

Settings Settings::defaults() {
    Settings s;
    s.m_env = process_env();
    for (const auto& info : settings_table())
        s.m_values[std::string(info.key)] = Entry{std::string(info.default_value), "default"};
    return s;
}

Result<Settings> Settings::load(const SettingsSources& src) {
    Settings s = defaults();
    s.m_env = src.env;
    if (src.read_files)
        L04_TRY(apply_file(s, src.system_config, false));

    bool user_explicit = false;
    std::string user = src.user_config;
    if (!user.empty()) user_explicit = true;
    else if (auto v = src.env("L04_CONFIG"); v && !v->empty()) {
        user = *v;
        user_explicit = true;
    } else {
        user = s.config_dir() + "/l04.toml";
    }
    s.m_user_config = user;
    if (src.read_files)
        L04_TRY(apply_file(s, user, user_explicit));

    for (const auto& info : settings_table()) {
        // Canonical name wins over aliases: scan in reverse so the first applies last.
        for (auto it = info.env.rbegin(); it != info.env.rend(); ++it) {
            auto v = src.env(*it);
            if (!v) continue;
            if (info.secret && v->empty()) continue;
            if (auto st = s.set(info.key, *v, "env " + std::string(*it)); !st) {
                Error e = st.error();
                e.message = "environment " + std::string(*it) + ": " + e.message;
                return fail(std::move(e));
            }
        }
    }
    for (const auto& [k, v] : src.flags) {
        L04_TRY(s.set(k, v, "flag"));
    }
    return s;
}

const std::string& Settings::get(std::string_view key) const {
    auto it = m_values.find(key);
    static const std::string empty;
    return it == m_values.end() ? empty : it->second.value;
}

std::int64_t Settings::get_int(std::string_view key) const { return std::strtoll(get(key).c_str(), nullptr, 10); }
double Settings::get_double(std::string_view key) const { return std::strtod(get(key).c_str(), nullptr); }
bool Settings::get_bool(std::string_view key) const { return parse_bool(get(key)).value_or(false); }
std::int64_t Settings::get_duration_ms(std::string_view key) const { return parse_duration_ms(get(key)).value_or(0); }

const std::string& Settings::source(std::string_view key) const {
    auto it = m_values.find(key);
    static const std::string unknown = "unknown";
    return it == m_values.end() ? unknown : it->second.source;
}

Status Settings::set(std::string_view key, std::string value, std::string source) {
    const SettingInfo* info = find_setting(key);
    if (!info) return fail(ErrorCode::config_invalid, "unknown setting '" + std::string(key) + "'");
    if (auto st = validate(*info, value); !st) return st;
    m_values[std::string(key)] = Entry{std::move(value), std::move(source)};
    return {};
}

std::string Settings::state_dir() const {
    if (const auto& v = get("state_dir"); !v.empty()) return v;
    if (auto x = m_env("XDG_STATE_HOME"); x && !x->empty()) return *x + "/l04";
    return home(m_env) + "/.local/state/l04";
}

std::vector<std::string> Settings::secret_values() const {
    std::vector<std::string> out;
    for (const auto& info : settings_table()) {
        if (!info.secret) continue;
        auto it = m_values.find(info.key);
        if (it != m_values.end() && it->second.value.size() >= 8) out.push_back(it->second.value);
    }
    return out;
}

std::map<std::string, std::string> Settings::provider_fingerprint() const {
    std::map<std::string, std::string> out;
    for (const auto& info : settings_table()) {
        if (info.key.rfind("providers.", 0) != 0 || info.env.empty()) continue;
        const std::string& v = get(info.key);
        out[std::string(info.env.front())] = v.empty() ? std::string() : sha256_hex(v).substr(0, 12);
    }
    return out;
}

std::string Settings::runtime_dir() const {
    if (const auto& v = get("runtime_dir"); !v.empty()) return v;
    // One daemon per state directory: the default runtime directory carries
    // a digest of the state directory, so a cron job with another HOME (or
    // L04_STATE_DIR) starts its own l04d instead of writing into another
    // job's state through a shared socket.
    const std::string state = std::filesystem::path(state_dir()).lexically_normal().string();
    const std::string tag = sha256_hex(state).substr(0, 12);
    if (auto x = m_env("XDG_RUNTIME_DIR"); x && !x->empty()) {
        // The systemd user units (l04d.socket) listen on $XDG_RUNTIME_DIR/l04/l04d.sock
        // and serve the state directory a user service has: ~/.local/state/l04
        // of the account's home (systemd sets HOME from the password
        // database). Used only when this process has that same state
        // directory and the socket is there, a socket of ours
        // ($XDG_RUNTIME_DIR is the user's own 0700 directory). A cron job
        // with another HOME keeps its own daemon.
        struct stat st{};
        const std::string unit_dir = *x + "/l04";
        // The cheap tests first: without the unit's socket (the usual case)
        // the password database is never read.
        const auto xdg_state = m_env("XDG_STATE_HOME");
        if (get("state_dir").empty() && (!xdg_state || xdg_state->empty()) &&
            ::lstat((unit_dir + "/l04d.sock").c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == ::getuid()) {
            const passwd* pw = ::getpwuid(::getuid());
            if (pw && pw->pw_dir && home(m_env) == pw->pw_dir) return unit_dir;
        }
        return *x + "/l04-" + tag;
    }
    return "/tmp/l04-" + std::to_string(::getuid()) + "-" + tag;
}

std::string Settings::config_dir() const {
    if (auto x = m_env("XDG_CONFIG_HOME"); x && !x->empty()) return *x + "/l04";
    return home(m_env) + "/.config/l04";
}

std::string Settings::socket_path() const { return runtime_dir() + "/l04d.sock"; }

std::string Settings::display_value(std::string_view key) const {
    const SettingInfo* info = find_setting(key);
    const auto& v = get(key);
    if (info && info->secret) return v.empty() ? "(unset)" : "(set, hidden)";
    return v;
}

}  // namespace l04
