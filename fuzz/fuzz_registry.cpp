// The models.toml loader on arbitrary text: a registry or an E4005 naming a
// place, never a crash.
#include <l04/config/registry.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto r = l04::Registry::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    if (!r && r.error().code != l04::ErrorCode::registry_invalid) std::abort();
    if (r)
        for (const auto& m : r->models()) (void)r->find(m.id);
    return 0;
}
