#pragma once
// The model registry: providers and models loaded from models.toml (the
// installed catalogue, then the user's file merged over it). Lookup by id or
// alias, and by capability set through a per-capability index.
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

struct ProviderInfo {
    std::string id;
    std::string kind;          // openai, anthropic, ollama, gemini, command, mock
    std::string base_url;
    std::string api_key_env;   // variable holding the key; empty = no key needed
    std::string base_url_env;  // variable overriding base_url
    std::vector<std::string> command;  // kind = command
    std::int64_t timeout_ms = 0;       // 0 = request.timeout
};

struct ModelInfo {
    std::string id;
    std::string provider;
    std::string name;  // provider's model string
    CapabilitySet capabilities;
    std::int64_t context_window = 0;
    std::int64_t max_output_tokens = 0;
    double input_price = 0;   // USD per million prompt tokens
    double output_price = 0;  // USD per million completion tokens
    double latency_ms = 0;
    double quality = 0;
    std::int64_t embedding_dimensions = 0;
    std::vector<std::string> aliases;
    // Unix seconds shown as `created` by /v1/models: models.toml's `created`,
    // else the modification time of the file that defines the model (stable
    // while the file is unchanged).
    std::int64_t created = 0;
};

class Registry {
public:
    // Parses one models.toml text. Fails with E4005 naming source:line:column
    // and what was expected.
    static Result<Registry> parse(std::string_view text, const std::string& source_name);
    // Loads and merges files in order (later ones override by id).
    // Missing optional files are skipped; the first file must exist.
    static Result<Registry> load(const std::vector<std::string>& paths);

    // Merges other over this: same ids replaced, new ones appended.
    void merge(const Registry& other);

    const ModelInfo* find(std::string_view id_or_alias) const;
    const ProviderInfo* provider(std::string_view id) const;
    const std::vector<ModelInfo>& models() const { return m_models; }
    const std::map<std::string, ProviderInfo, std::less<>>& providers() const { return m_providers; }
    // Models having every capability in `caps`, in catalogue order.
    std::vector<const ModelInfo*> with_capabilities(CapabilitySet caps) const;
    // Every id and alias, for "did you mean".
    std::vector<std::string> names() const;

    // "provider/name" for a provider of kind ollama or openai that this
    // registry defines: {provider id, name}; nullopt otherwise.
    std::optional<std::pair<std::string, std::string>> split_provider_model(std::string_view name) const;
    // Adds a model made on demand for a "provider/name" no entry describes
    // (any Ollama model): thread-safe, the pointer stays valid for the
    // registry's life, and find() knows it from then on. At most
    // k_max_dynamic_models (client strings must not grow memory or metric
    // labels without bound): nullptr beyond that.
    static constexpr std::size_t k_max_dynamic_models = 64;
    const ModelInfo* add_dynamic(ModelInfo m) const;

private:
    void reindex();
    std::vector<ModelInfo> m_models;
    std::map<std::string, ProviderInfo, std::less<>> m_providers;
    std::map<std::string, std::size_t, std::less<>> m_by_name;
    std::vector<std::vector<std::size_t>> m_by_capability;
    struct Dynamic {
        std::mutex mu;
        std::deque<ModelInfo> models;  // stable addresses
    };
    std::shared_ptr<Dynamic> m_dynamic = std::make_shared<Dynamic>();
};

// Cost in USD of `usage` at the model's prices.
double cost_usd(const ModelInfo& m, const TokenUsage& usage);

// The installed catalogue: $L04_SHARE_DIR/models.toml, <exe>/../share/l04/,
// the install prefix, then the source tree.
std::string find_builtin_models_file();

}  // namespace l04
