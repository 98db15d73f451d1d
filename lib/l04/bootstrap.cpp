#include <l04/bootstrap.hpp>

#include <sys/resource.h>

#include <filesystem>
#include <fstream>

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

Result<std::unique_ptr<Gateway>> open_gateway(const Settings& settings, bool daemon) {
    L04_TRY_ASSIGN(auto reg, load_registry(settings));
    GatewayOptions opts;
    opts.daemon = daemon;
    opts.settings = settings;
    opts.registry = std::move(reg);
    return Gateway::create(std::move(opts));
}

std::uint64_t raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    rlim_t target = lim.rlim_max;
    if (target == RLIM_INFINITY) {
        // The kernel refuses an unlimited soft limit for files: use its ceiling.
        std::uint64_t nr_open = 0;
        std::ifstream("/proc/sys/fs/nr_open") >> nr_open;
        target = nr_open > 0 ? static_cast<rlim_t>(nr_open) : lim.rlim_cur;
    }
    if (target > lim.rlim_cur) {
        rlimit raised{target, lim.rlim_max};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim.rlim_cur = target;
    }
    return static_cast<std::uint64_t>(lim.rlim_cur);
}

}  // namespace l04
