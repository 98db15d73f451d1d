#include <l04/bootstrap.hpp>

#include <filesystem>

namespace l04 {

Result<Registry> load_registry(const Settings& settings) {
    std::vector<std::string> files{find_builtin_models_file()};
    const auto& extra = settings.get("models_file");
    if (!extra.empty()) {
        std::error_code ec;
        if (!std::filesystem::exists(extra, ec))
            return fail(ErrorCode::config_file_unreadable,
                        "models file " + extra + " (from " + settings.source("models_file") + ") does not exist");
        files.push_back(extra);
    } else {
        files.push_back(settings.config_dir() + "/models.toml");
    }
    return Registry::load(files);
}

Result<std::unique_ptr<Gateway>> open_gateway(const Settings& settings) {
    auto reg = load_registry(settings);
    if (!reg) return fail(reg.error());
    GatewayOptions opts;
    opts.settings = settings;
    opts.registry = std::move(*reg);
    return Gateway::create(std::move(opts));
}

}  // namespace l04
