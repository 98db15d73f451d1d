#include <l04/config/environment.hpp>

#include <unistd.h>

#include <cstdlib>

namespace l04 {

std::optional<std::string> env_var(const char* name) {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
}

bool http_proxy_in_environment() {
    for (const char* name : {"http_proxy", "all_proxy", "ALL_PROXY"})
        if (auto v = env_var(name); v && !v->empty()) return true;
    return false;
}

extern "C" char** environ;

char* const* environment_block() { return environ; }

std::optional<std::string> find_executable(const std::string& name) {
    if (name.empty()) return std::nullopt;
    if (name.find('/') != std::string::npos)
        return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
    const std::string path = env_var("PATH").value_or("/usr/local/bin:/usr/bin:/bin");
    std::size_t start = 0;
    while (start <= path.size()) {
        const auto end = path.find(':', start);
        const std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!dir.empty()) {
            std::string full = dir + "/" + name;
            if (::access(full.c_str(), X_OK) == 0) return full;
        }
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return std::nullopt;
}

}  // namespace l04
