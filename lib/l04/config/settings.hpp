#pragma once
// Layered settings. One table (settings_table()) declares every key with its
// environment names, default and meaning. Layers, lowest first: built-in
// defaults → /etc/l04/l04.toml → user config ($L04_CONFIG, else
// $XDG_CONFIG_HOME/l04/l04.toml) → environment (L04_* names and the seed's
// names such as CACHE_TTL, OPENAI_API_KEY) → command-line flags.
// Every value remembers where it came from; secrets are never printed.
#include <l04/core/error.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

enum class SettingType : std::uint8_t { string, integer, number, boolean, duration, path };

struct SettingInfo {
    std::string_view key;       // dotted TOML path, e.g. "cache.ttl"
    SettingType type;
    std::string_view default_value;
    std::vector<std::string_view> env;  // first is the canonical name
    bool secret;
    std::string_view help;
};

// Every key l04 understands.
const std::vector<SettingInfo>& settings_table();
const SettingInfo* find_setting(std::string_view key);

// Environment lookup, injectable for tests.
using EnvFn = std::function<std::optional<std::string>(std::string_view)>;
EnvFn process_env();

struct SettingsSources {
    EnvFn env = process_env();
    std::string system_config = "/etc/l04/l04.toml";
    std::string user_config;  // empty = $L04_CONFIG or XDG default
    bool read_files = true;   // false: defaults, environment and flags only
    std::map<std::string, std::string> flags;  // key → value, highest layer
};

class Settings {
public:
    // Loads every layer. Fails with E4003 (file unreadable) or E4004
    // (invalid value, unknown key) naming the file, line and key.
    static Result<Settings> load(const SettingsSources& sources);
    // Defaults only (for tests and tools).
    static Settings defaults();

    const std::string& get(std::string_view key) const;
    std::int64_t get_int(std::string_view key) const;
    double get_double(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    std::int64_t get_duration_ms(std::string_view key) const;
    // "default", "/etc/l04/l04.toml", "env CACHE_TTL", "flag".
    const std::string& source(std::string_view key) const;
    // Sets a value (validated against its type). Fails with E4004.
    Status set(std::string_view key, std::string value, std::string source);

    // Resolved directories (created by the store/daemon on use).
    std::string state_dir() const;
    std::string runtime_dir() const;
    std::string config_dir() const;
    std::string socket_path() const;
    // The user config file that was (or would be) read.
    const std::string& user_config_path() const { return m_user_config; }

    // Value for display: secrets masked ("set (OPENAI_API_KEY)") or "(unset)".
    std::string display_value(std::string_view key) const;
    // Every secret value (API keys, tokens) of at least 8 characters: what
    // redact_secrets() removes from anything that leaves l04.
    std::vector<std::string> secret_values() const;
    // For every providers.* key (API keys, base URLs): its canonical
    // environment name → the first 12 hex digits of the SHA-256 of its value
    // ("" when unset). l04d reports the one it started with; l04ctl compares
    // it with its own to tell a user that the running daemon has another key
    // than the shell (never the values themselves).
    std::map<std::string, std::string> provider_fingerprint() const;

    const EnvFn& env() const { return m_env; }

private:
    struct Entry {
        std::string value;
        std::string source;
    };
    std::map<std::string, Entry, std::less<>> m_values;
    std::string m_user_config;
    EnvFn m_env;
};

}  // namespace l04
