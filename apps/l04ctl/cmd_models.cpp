// l04ctl models list|show: the model registry.
#include "common.hpp"

#include <l04/bootstrap.hpp>
#include <l04/core/strings.hpp>
#include <l04/server/openai_json.hpp>

#include <CLI/CLI.hpp>

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

}  // namespace

void add_models(CLI::App& app, Context& ctx) {
    auto* models = app.add_subcommand("models", "The model registry (share/models.toml + your models.toml)");
    models->require_subcommand(1);

    struct ListArgs {
        std::vector<std::string> caps;
        std::string provider;
        bool json = false;
    };
    auto la = std::make_shared<ListArgs>();
    auto* list = models->add_subcommand("list", "List models");
    list->add_option("--capability", la->caps, "Only models with this capability (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    list->add_option("--provider", la->provider, "Only models of this provider");
    list->add_flag("--json", la->json, "JSON output");
    list->callback([&ctx, la] {
        if ((g_exit = ctx.load())) return;
        auto reg = registry(ctx);
        if (!reg) {
            g_exit = report(reg.error());
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
