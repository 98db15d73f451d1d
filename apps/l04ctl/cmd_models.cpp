// l04ctl models list|show: the model registry.
#include "common.hpp"

#include <l04/bootstrap.hpp>
#include <l04/core/clock.hpp>
#include <l04/config/environment.hpp>
#include <l04/http/http1_transport.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

namespace l04ctl {

namespace {

// The registry is static data: read it here, no daemon needed.
l04::Result<l04::Registry> registry(Context& ctx) { return l04::load_registry(ctx.settings); }

std::string price(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", v);
    return b;
}

// `models list --installed`: what an Ollama server has, and how each is
// named for -m (its catalogue id, or provider/name).
int list_installed(Context& ctx, const l04::Registry& reg, const std::string& provider, bool json) {
    const l04::ProviderInfo* p = reg.provider(provider);
    if (!p || p->kind != "ollama")
        return report(l04::Error(l04::ErrorCode::invalid_parameter,
                                 "--installed needs --provider naming a provider of kind ollama ('" + provider + "' is " +
                                     (p ? "of kind " + p->kind : std::string("not defined")) + ")"));
    const l04::ProviderConfig cfg = l04::resolve_provider_config(*p, ctx.settings);
    auto names = l04::ollama_installed_models(*l04::make_transport(l04::http_proxy_in_environment()), l04::SystemClock::instance(), cfg.base_url,
                                              std::chrono::milliseconds(5000));
    if (!names) return report(names.error());
    std::sort(names->begin(), names->end());
    std::vector<std::vector<std::string>> rows;
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& n : *names) {
        const l04::ModelInfo* m = reg.find(provider + "/" + n);
        if (!m) m = reg.find(n);
        if (m && m->provider != provider) m = nullptr;
        const std::string use = m ? m->id : provider + "/" + n;
        rows.push_back({n, use, m ? "catalogue" : "from Ollama"});
        arr.push_back({{"name", n}, {"model", use}, {"in_catalogue", m != nullptr}});
    }
    if (json) {
        std::printf("%s\n", arr.dump(2).c_str());
        return k_ok;
    }
    if (rows.empty()) {
        std::printf("%s has no models installed (`ollama pull NAME` fetches one)\n", cfg.base_url.c_str());
        return k_ok;
    }
    print_table({"INSTALLED", "USE AS -m", "DESCRIBED BY"}, rows);
    return k_ok;
}

}  // namespace

void add_models(CLI::App& app, Context& ctx) {
    auto* models = app.add_subcommand("models", "The model registry (share/models.toml + your models.toml)");
    models->require_subcommand(1);

    struct ListArgs {
        std::vector<std::string> caps;
        std::string provider;
        bool json = false, installed = false;
    };
    auto la = std::make_shared<ListArgs>();
    auto* list = models->add_subcommand("list", "List models");
    list->add_option("--capability", la->caps, "Only models with this capability (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    list->add_option("--provider", la->provider, "Only models of this provider");
    list->add_flag("--json", la->json, "JSON output");
    list->add_flag("--installed", la->installed,
                   "With --provider of kind ollama: the models that Ollama server has (GET /api/tags); any of them "
                   "works as -m PROVIDER/NAME without a models.toml entry");
    list->callback([&ctx, la] {
        if ((g_exit = ctx.load())) return;
        auto reg = registry(ctx);
        if (!reg) {
            g_exit = report(reg.error());
            return;
        }
        if (la->installed && !la->caps.empty()) {
            g_exit = report(l04::Error(l04::ErrorCode::invalid_parameter,
                                       "--installed lists what the Ollama server has; it cannot filter by --capability"));
            return;
        }
        if (la->installed) {
            g_exit = list_installed(ctx, *reg, la->provider.empty() ? "ollama" : la->provider, la->json);
            return;
        }
        l04::CapabilitySet need;
        for (const auto& c : la->caps) {
            auto cap = l04::parse_capability(c);
            if (!cap) {
                g_exit = report(l04::Error(l04::ErrorCode::invalid_parameter,
                                           "unknown capability '" + c +
                                               "' (text, code, vision, tool_use, streaming, long_context, embedding)"));
                return;
            }
            need.add(*cap);
        }
        std::vector<const l04::ModelInfo*> ms;
        for (const auto* m : reg->with_capabilities(need))
            if (la->provider.empty() || m->provider == la->provider) ms.push_back(m);
        if (la->json) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto* m : ms) arr.push_back(l04::model_to_json(*m));
            std::printf("%s\n", arr.dump(2).c_str());
            return;
        }
        std::vector<std::vector<std::string>> rows;
        for (const auto* m : ms) {
            std::string caps;
            for (const auto& c : m->capabilities.names()) caps += (caps.empty() ? "" : ",") + c;
            rows.push_back({m->id, m->provider, std::to_string(m->context_window), price(m->input_price),
                            price(m->output_price), caps});
        }
        print_table({"ID", "PROVIDER", "CONTEXT", "IN$/M", "OUT$/M", "CAPABILITIES"}, rows);
    });

    struct ShowArgs {
        std::string id;
        bool json = false;
    };
    auto sa = std::make_shared<ShowArgs>();
    auto* show = models->add_subcommand("show", "Show one model");
    show->add_option("id", sa->id, "Model id or alias")->required();
    show->add_flag("--json", sa->json, "JSON output");
    show->callback([&ctx, sa] {
        if ((g_exit = ctx.load())) return;
        auto reg = registry(ctx);
        if (!reg) {
            g_exit = report(reg.error());
            return;
        }
        const auto* m = reg->find(sa->id);
        if (!m) {
            auto near = l04::closest_names(sa->id, reg->names());
            std::string msg = "unknown model '" + sa->id + "'";
            if (!near.empty()) msg += " (did you mean '" + near[0] + "'?)";
            g_exit = report(l04::Error(l04::ErrorCode::model_not_found, msg));
            return;
        }
        if (sa->json) {
            std::printf("%s\n", l04::model_to_json(*m).dump(2).c_str());
            return;
        }
        std::string caps, aliases;
        for (const auto& c : m->capabilities.names()) caps += (caps.empty() ? "" : ", ") + c;
        for (const auto& a : m->aliases) aliases += (aliases.empty() ? "" : ", ") + a;
        std::printf("id:                %s\nprovider:          %s\nprovider model:    %s\ncapabilities:      %s\n"
                    "context window:    %lld\nmax output tokens: %lld\ninput price:       $%.2f / M tokens\n"
                    "output price:      $%.2f / M tokens\ntypical latency:   %.0f ms\nquality:           %.2f\n"
                    "aliases:           %s\n",
                    m->id.c_str(), m->provider.c_str(), m->name.c_str(), caps.c_str(),
                    static_cast<long long>(m->context_window), static_cast<long long>(m->max_output_tokens),
                    m->input_price, m->output_price, m->latency_ms, m->quality, aliases.empty() ? "-" : aliases.c_str());
    });
}

}  // namespace l04ctl
