#include <l04/provider/factory.hpp>
#include <l04/config/environment.hpp>
#include <l04/provider/mock.hpp>

#include <cstdlib>
#include <unistd.h>

namespace l04 {


ProviderConfig resolve_provider_config(const ProviderInfo& info, const Settings& s) {
    ProviderConfig c;
    c.info = &info;
    const std::string key_setting = "providers." + info.id + ".api_key";
    const std::string url_setting = info.id == "ollama" ? "providers.ollama.url" : "providers." + info.id + ".base_url";
    if (find_setting(key_setting) && !s.get(key_setting).empty()) c.api_key = s.get(key_setting);
    else if (!info.api_key_env.empty()) c.api_key = s.env()(info.api_key_env).value_or("");
    if (find_setting(url_setting) && !s.get(url_setting).empty()) c.base_url = s.get(url_setting);
    else if (auto v = info.base_url_env.empty() ? std::nullopt : s.env()(info.base_url_env); v && !v->empty())
        c.base_url = *v;
    else c.base_url = info.base_url;
    while (!c.base_url.empty() && c.base_url.back() == '/') c.base_url.pop_back();

    c.configured = true;
    if (info.kind == "command") {
        if (info.command.empty() || !find_executable(info.command[0])) {
            c.configured = false;
            c.why_not = "command '" + (info.command.empty() ? std::string() : info.command[0]) +
                        "' not found on PATH; install it or edit [providers." + info.id + "] in models.toml";
        }
    } else if (!info.api_key_env.empty() && c.api_key.empty()) {
        c.configured = false;
        c.why_not = "provider '" + info.id + "' has no API key: set " + info.api_key_env;
    } else if (info.kind != "mock" && c.base_url.empty()) {
        c.configured = false;
        c.why_not = "provider '" + info.id + "' has no base_url";
    }
    return c;
}

// Defined by the adapters (lib/l04/provider/*.cpp).
std::unique_ptr<Provider> make_http_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);

Result<std::unique_ptr<Provider>> make_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    if (!cfg.configured) {
        Error e(ErrorCode::provider_not_configured, cfg.why_not);
        e.retryable = false;
        return fail(std::move(e));
    }
    if (cfg.info->kind == "mock") return std::unique_ptr<Provider>(new MockProvider(cfg.info->id, clock));
    auto p = make_http_provider(cfg, transport, clock);
    if (!p) return fail(ErrorCode::provider_not_configured, "no adapter for provider kind '" + cfg.info->kind + "'");
    return p;
}

}  // namespace l04
