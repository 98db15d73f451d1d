#pragma once
// The real provider adapters. make_http_provider() picks one by
// ProviderConfig::info->kind; the others are exposed for tests and tools.
//
//   openai     POST {base}/chat/completions (SSE with stream_options.include_usage),
//              POST {base}/embeddings, GET {base}/models. Also any OpenAI-compatible
//              server (llama.cpp, vLLM, Groq, OpenRouter, Ollama's /v1).
//   anthropic  POST {base}/v1/messages (SSE event sequence), GET {base}/v1/models.
//   ollama     POST {base}/api/chat (NDJSON), POST {base}/api/embed, GET {base}/api/tags.
//   gemini     POST {base}/v1beta/models/{m}:generateContent | :streamGenerateContent?alt=sse,
//              POST .../{m}:batchEmbedContents, GET {base}/v1beta/models.
//   command    runs a local CLI (default `claude -p`), prompt on stdin, stdout streamed.
//
// Every adapter: the model's provider string (ModelInfo::name) goes in the
// request; metadata["provider_model"] is the model string the provider
// answered with; usage is the provider's, else estimated (usage.estimated,
// metadata["usage_estimated"]="true"); a stream that ends without its
// terminating event is E4604, never a clean finish; a body that is not the
// JSON promised is E4600; API keys never appear in errors.
#include <l04/http/transport.hpp>
#include <l04/provider/provider.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace l04 {

std::unique_ptr<Provider> make_openai_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);
std::unique_ptr<Provider> make_anthropic_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);
std::unique_ptr<Provider> make_ollama_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);
std::unique_ptr<Provider> make_gemini_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);
// The command adapter measures its timeouts in real time (a child process
// runs in real time), not on `clock`.
std::unique_ptr<Provider> make_command_provider(const ProviderConfig& cfg, Clock& clock);

// The adapter for cfg.info->kind (openai, anthropic, ollama, gemini,
// command); nullptr for an unknown kind.
std::unique_ptr<Provider> make_http_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);

// Names of the models installed in an Ollama server (GET {base}/api/tags).
// Fails with the mapped transport/HTTP error, or E4600 for a body that is
// not the expected JSON.
Result<std::vector<std::string>> ollama_installed_models(Transport& transport, Clock& clock,
                                                         const std::string& base_url,
                                                         std::chrono::milliseconds timeout);

// The model ids an OpenAI-compatible server lists (GET {base}/models,
// data[].id). Fails with the mapped transport/HTTP error, or E4600.
Result<std::vector<std::string>> openai_model_ids(Transport& transport, Clock& clock, const std::string& base_url,
                                                  const std::string& api_key, std::chrono::milliseconds timeout);

// What Ollama's POST {base}/api/show says of one installed model:
// capabilities ("completion", "vision", "tools", "embedding", ...; empty
// when this Ollama is too old to say) and the context length from
// model_info (0 when absent). A model Ollama does not have is E4204.
struct OllamaModelFacts {
    std::vector<std::string> capabilities;
    std::int64_t context_length = 0;
};
Result<OllamaModelFacts> ollama_show(Transport& transport, Clock& clock, const std::string& base_url,
                                     const std::string& model, std::chrono::milliseconds timeout);

}  // namespace l04
