#include <l04/provider/factory.hpp>

namespace l04 {

// The HTTP adapters (openai, anthropic, ollama, gemini) and the command
// adapter are not wired in yet: make_provider reports E4002 for them.
std::unique_ptr<Provider> make_http_provider(const ProviderConfig&, Transport&, Clock&) { return nullptr; }

}  // namespace l04
