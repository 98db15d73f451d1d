#pragma once
// Embedders that call a model server over HTTP (Ollama /api/embed, OpenAI
// /v1/embeddings), behind the cache's Embedder interface, and the factory
// that builds the configured one. They live with the provider adapters, not
// in cache/: the cache stage includes neither JSON nor HTTP (docs/NOTES.md,
// "Layers").
#include <l04/cache/embedder.hpp>
#include <l04/http/transport.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace l04 {

// Ollama /api/embed. Contract: one POST per embed() call with all texts as
// "input"; the response's "embeddings" must hold one vector per text of
// exactly `dimensions` floats (else E4301). Vectors are L2-normalised here.
class OllamaEmbedder final : public Embedder {
public:
    OllamaEmbedder(std::shared_ptr<Transport> transport, std::string base_url, std::string model,
                   std::size_t dimensions, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
    std::string name() const override { return "ollama:" + m_model; }
    std::size_t dimension() const override { return m_dims; }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) override;

private:
    std::shared_ptr<Transport> m_transport;
    std::string m_url;
    std::string m_model;
    std::size_t m_dims;
    std::chrono::milliseconds m_timeout;
};

// OpenAI /v1/embeddings (or any compatible server). Contract as Ollama's;
// "dimensions" is sent only when `send_dimensions` (text-embedding-3-*).
// The API key is sent as a bearer token and never appears in errors.
class OpenAIEmbedder final : public Embedder {
public:
    OpenAIEmbedder(std::shared_ptr<Transport> transport, std::string base_url, std::string api_key,
                   std::string model, std::size_t dimensions, bool send_dimensions,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
    std::string name() const override { return "openai:" + m_model + "@" + std::to_string(m_dims); }
    std::size_t dimension() const override { return m_dims; }
    Result<std::vector<Vector>> embed(const std::vector<std::string>& texts) override;

private:
    std::shared_ptr<Transport> m_transport;
    std::string m_base;
    std::string m_key;
    std::string m_model;
    std::size_t m_dims;
    bool m_send_dims;
    std::chrono::milliseconds m_timeout;
};

// What Gateway::create reads from settings to build an embedder.
struct EmbedderConfig {
    std::string kind = "builtin";  // builtin | ollama | openai | none
    std::string url;               // ollama server or OpenAI base URL ("" = default)
    std::string model;             // "" = nomic-embed-text / text-embedding-3-small
    std::size_t dimensions = 0;    // 0 = the model's default (768 / 1536)
    std::string api_key;
};

// Builds the configured embedder; nullptr for kind "none". Fails with E4004
// for an unknown kind or a missing OpenAI key.
Result<std::shared_ptr<Embedder>> make_embedder(const EmbedderConfig& cfg, std::shared_ptr<Transport> transport);

}  // namespace l04
