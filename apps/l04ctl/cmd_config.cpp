// l04ctl config show|path: every setting, its value and where it came from.
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace l04ctl {

void add_config(CLI::App& app, Context& ctx) {
    auto* c = app.add_subcommand("config", "Settings and where each value came from");
    c->require_subcommand(1);
    auto json = std::make_shared<bool>(false);
    auto* show = c->add_subcommand("show", "Print every setting (secrets are never printed)");
    show->add_flag("--json", *json, "JSON output");
    show->callback([&ctx, json] {
        if ((g_exit = ctx.load())) return;
        nlohmann::json arr = nlohmann::json::array();
        std::vector<std::vector<std::string>> rows;
        for (const auto& info : l04::settings_table()) {
            const std::string key(info.key);
            std::string value = ctx.settings.display_value(key);
            std::string env;
            for (const auto& e : info.env) env += (env.empty() ? "" : ",") + std::string(e);
            arr.push_back({{"key", key}, {"value", value}, {"source", ctx.settings.source(key)}, {"env", env},
                           {"secret", info.secret}, {"help", info.help}});
            rows.push_back({key, value.empty() ? "\"\"" : value, ctx.settings.source(key), env});
        }
        if (*json) {
            std::printf("%s\n", arr.dump(2).c_str());
            return;
        }
        print_table({"KEY", "VALUE", "SOURCE", "ENV"}, rows);
        std::printf("\nuser config: %s\nstate dir:   %s\nsocket:      %s\n", ctx.settings.user_config_path().c_str(),
                    ctx.settings.state_dir().c_str(), ctx.settings.socket_path().c_str());
    });
    c->add_subcommand("path", "Print the user config file path")->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        std::printf("%s\n", ctx.settings.user_config_path().c_str());
    });
}

}  // namespace l04ctl
