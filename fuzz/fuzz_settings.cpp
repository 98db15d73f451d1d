// The l04.toml loader on arbitrary files: settings or a config error, never
// a crash.
#include <l04/config/settings.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path = "/tmp/l04-fuzz-settings-" + std::to_string(::getpid()) + ".toml";
    if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(data, 1, size, f);
        std::fclose(f);
    }
    l04::SettingsSources src;
    src.system_config = "/nonexistent";
    src.user_config = path;
    src.env = [](std::string_view) { return std::nullopt; };
    auto s = l04::Settings::load(src);
    if (s) (void)s->secret_values();
    return 0;
}
