// l04ctl config show|path: every setting, its value and where it came from.
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <l04/store/db.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <unistd.h>

namespace l04ctl {

namespace {

// A starter config: every key, commented out, at its default, with its help
// and environment variable; generated from the settings table.
std::string starter_config() {
    std::string out =
        "# l04 configuration (written by `l04ctl config init`). Every key is commented out at its default;\n"
        "# uncomment to change one. Environment variables override this file; `l04ctl config show` prints the\n"
        "# value in effect and where it came from. API keys are better kept in the environment.\n";
    std::map<std::string, std::vector<const l04::SettingInfo*>> sections;
    for (const auto& info : l04::settings_table()) {
        const std::string key(info.key);
        const auto dot = key.rfind('.');
        sections[dot == std::string::npos ? std::string() : key.substr(0, dot)].push_back(&info);
    }
    for (const auto& [section, keys] : sections) {
        out += "\n";
        if (!section.empty()) out += "[" + section + "]\n";
        for (const auto* info : keys) {
            const std::string key(info->key);
            const std::string name = key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
            std::string help(info->help);
            for (std::size_t p = 0; (p = help.find('\n', p)) != std::string::npos;) help.replace(p, 1, "\n# ");
            out += "# " + help;
            if (!info->env.empty()) out += " (env " + std::string(info->env.front()) + ")";
            out += "\n";
            const std::string d(info->default_value);
            const bool bare = info->type == l04::SettingType::boolean || info->type == l04::SettingType::integer ||
                              info->type == l04::SettingType::number ||
                              (info->type == l04::SettingType::duration && !d.empty() &&
                               d.find_first_not_of("0123456789.") == std::string::npos);
            std::string quoted = "\"";
            for (char c : d) quoted += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
            quoted += "\"";
            out += "# " + name + " = " + (bare ? d : quoted) + "\n";
        }
    }
    return out;
}

}  // namespace

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
    auto force = std::make_shared<bool>(false);
    auto* init = c->add_subcommand("init", "Write a commented starter config (every key at its default) to the user config path");
    init->add_flag("--force", *force, "Replace an existing file");
    init->callback([&ctx, force] {
        if ((g_exit = ctx.load_for_daemon_control())) return;
        const std::string path = ctx.settings.user_config_path();
        const std::string dir = path.substr(0, path.rfind('/'));
        if (auto st = l04::ensure_dir(dir, 0700); !st) {
            g_exit = report(st.error());
            return;
        }
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (*force ? O_TRUNC : O_EXCL), 0600);
        if (fd < 0) {
            g_exit = report(l04::Error(l04::ErrorCode::config_error,
                                       errno == EEXIST ? path + " exists; `l04ctl config init --force` replaces it"
                                                       : "cannot write " + path + ": " + std::strerror(errno)));
            return;
        }
        const std::string text = starter_config();
        const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        ::close(fd);
        if (!ok) {
            g_exit = report(l04::Error(l04::ErrorCode::config_error, "cannot write " + path));
            return;
        }
        std::printf("wrote %s\n", path.c_str());
        g_exit = k_ok;
    });
    c->add_subcommand("path", "Print the user config file path")->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        std::printf("%s\n", ctx.settings.user_config_path().c_str());
    });
}

}  // namespace l04ctl
