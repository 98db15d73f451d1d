#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>

namespace l04 {

std::unique_ptr<Provider> make_http_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock) {
    if (!cfg.info) return nullptr;
    const std::string& kind = cfg.info->kind;
    if (kind == "openai") return make_openai_provider(cfg, transport, clock);
    if (kind == "anthropic") return make_anthropic_provider(cfg, transport, clock);
    if (kind == "ollama") return make_ollama_provider(cfg, transport, clock);
    if (kind == "gemini") return make_gemini_provider(cfg, transport, clock);
    if (kind == "command") return make_command_provider(cfg, clock);
    return nullptr;
}

}  // namespace l04
