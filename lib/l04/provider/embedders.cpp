// HTTP embedders (Ollama, OpenAI) and the embedder factory. This file is the
// cache's only JSON edge: request bodies are built and responses parsed here,
// nothing else in lib/l04/cache sees JSON.
#include <l04/provider/embedders.hpp>

#include <nlohmann/json.hpp>

#include <utility>

namespace l04 {

namespace {

std::string strip_slash(std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
}

Error embed_error(std::string msg) { return Error(ErrorCode::embedding_failed, std::move(msg)); }

// Parses one JSON array of numbers into a normalised vector of `dims` floats.
Result<Vector> parse_vector(const nlohmann::json& arr, std::size_t dims, const std::string& who) {
    if (!arr.is_array()) return fail(embed_error(who + ": embedding is not an array"));
    if (arr.size() != dims)
        return fail(embed_error(who + ": embedding has " + std::to_string(arr.size()) + " dimensions, expected " +
                                std::to_string(dims) + " (check the embedding dimensions setting)"));
    Vector v;
    v.reserve(dims);
    for (const auto& x : arr) {
        if (!x.is_number()) return fail(embed_error(who + ": embedding holds a non-number"));
        v.push_back(x.get<float>());
    }
    if (!normalize(v)) return fail(embed_error(who + ": embedding is zero or not finite"));
    return v;
}

// POSTs body and returns the parsed JSON response (E4301 on any failure).
Result<nlohmann::json> post_json(Transport& t, const std::string& url,
                                 std::vector<std::pair<std::string, std::string>> headers, const std::string& body,
                                 std::chrono::milliseconds timeout, const std::string& who) {
    HttpRequest req;
    req.method = "POST";
    req.url = url;
    req.headers = std::move(headers);
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
    req.total_timeout = timeout;
    req.connect_timeout = std::min(timeout, std::chrono::milliseconds(5000));
    auto r = perform_buffered(t, req);
    if (!r) return fail(embed_error(who + ": " + r.error().message));
    if (r->head.status != 200) {
        std::string detail = r->body.substr(0, 200);
        return fail(embed_error(who + ": HTTP " + std::to_string(r->head.status) + " from " + url +
                                (detail.empty() ? "" : ": " + detail)));
    }
    try {
        return nlohmann::json::parse(r->body);
    } catch (const std::exception& e) {
        return fail(embed_error(who + ": unparsable response: " + e.what()));
    }
}

}  // namespace

OllamaEmbedder::OllamaEmbedder(std::shared_ptr<Transport> transport, std::string base_url, std::string model,
                               std::size_t dimensions, std::chrono::milliseconds timeout)
    : m_transport(std::move(transport)), m_url(strip_slash(std::move(base_url))), m_model(std::move(model)),
      m_dims(dimensions), m_timeout(timeout) {}

Result<std::vector<Vector>> OllamaEmbedder::embed(const std::vector<std::string>& texts) {
    if (texts.empty()) return std::vector<Vector>{};
    const std::string who = "ollama embed (" + m_model + ")";
    std::string body;
    try {
        body = nlohmann::json{{"model", m_model}, {"input", texts}}.dump(-1, ' ', false,
                                                                         nlohmann::json::error_handler_t::replace);
    } catch (const std::exception& e) {
        return fail(embed_error(who + ": " + e.what()));
    }
    L04_TRY_ASSIGN(auto j, post_json(*m_transport, m_url + "/api/embed", {}, body, m_timeout, who));
    try {
        const auto& arr = j.at("embeddings");
        if (!arr.is_array() || arr.size() != texts.size())
            return fail(embed_error(who + ": expected " + std::to_string(texts.size()) + " embeddings"));
        std::vector<Vector> out;
        for (const auto& e : arr) {
            L04_TRY_ASSIGN(auto v, parse_vector(e, m_dims, who));
            out.push_back(std::move(v));
        }
        return out;
    } catch (const std::exception& e) {
        return fail(embed_error(who + ": malformed response: " + e.what()));
    }
}

OpenAIEmbedder::OpenAIEmbedder(std::shared_ptr<Transport> transport, std::string base_url, std::string api_key,
                               std::string model, std::size_t dimensions, bool send_dimensions,
                               std::chrono::milliseconds timeout)
    : m_transport(std::move(transport)), m_base(strip_slash(std::move(base_url))), m_key(std::move(api_key)),
      m_model(std::move(model)), m_dims(dimensions), m_send_dims(send_dimensions), m_timeout(timeout) {}

Result<std::vector<Vector>> OpenAIEmbedder::embed(const std::vector<std::string>& texts) {
    if (texts.empty()) return std::vector<Vector>{};
    const std::string who = "openai embeddings (" + m_model + ")";
    std::string body;
    try {
        nlohmann::json j{{"model", m_model}, {"input", texts}};
        if (m_send_dims) j["dimensions"] = m_dims;
        body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } catch (const std::exception& e) {
        return fail(embed_error(who + ": " + e.what()));
    }
    std::vector<std::pair<std::string, std::string>> headers;
    if (!m_key.empty()) headers.emplace_back("Authorization", "Bearer " + m_key);
    L04_TRY_ASSIGN(auto j, post_json(*m_transport, m_base + "/embeddings", std::move(headers), body, m_timeout, who));
    try {
        const auto& data = j.at("data");
        if (!data.is_array() || data.size() != texts.size())
            return fail(embed_error(who + ": expected " + std::to_string(texts.size()) + " embeddings"));
        std::vector<Vector> out(texts.size());
        std::vector<bool> seen(texts.size(), false);
        for (std::size_t i = 0; i < data.size(); ++i) {
            const auto& d = data[i];
            // "index" orders the answers; absent means positional.
            const std::size_t idx = d.contains("index") ? d.at("index").get<std::size_t>() : i;
            if (idx >= out.size() || seen[idx]) return fail(embed_error(who + ": bad embedding index"));
            L04_TRY_ASSIGN(auto v, parse_vector(d.at("embedding"), m_dims, who));
            out[idx] = std::move(v);
            seen[idx] = true;
        }
        return out;
    } catch (const std::exception& e) {
        return fail(embed_error(who + ": malformed response: " + e.what()));
    }
}

Result<std::shared_ptr<Embedder>> make_embedder(const EmbedderConfig& cfg, std::shared_ptr<Transport> transport) {
    if (cfg.kind == "none" || cfg.kind == "off") return std::shared_ptr<Embedder>();
    if (cfg.kind == "builtin" || cfg.kind.empty()) return std::shared_ptr<Embedder>(std::make_shared<BuiltinEmbedder>());
    if (cfg.kind == "ollama") {
        if (!transport) return fail(ErrorCode::config_invalid, "cache.embedder=ollama needs an HTTP transport");
        return std::shared_ptr<Embedder>(std::make_shared<OllamaEmbedder>(
            transport, cfg.url.empty() ? "http://127.0.0.1:11434" : cfg.url,
            cfg.model.empty() ? "nomic-embed-text" : cfg.model, cfg.dimensions ? cfg.dimensions : 768));
    }
    if (cfg.kind == "openai") {
        if (!transport) return fail(ErrorCode::config_invalid, "cache.embedder=openai needs an HTTP transport");
        if (cfg.api_key.empty() && cfg.url.empty())
            return fail(ErrorCode::config_invalid,
                        "cache.embedder=openai needs an API key: set OPENAI_API_KEY (or use cache.embedder=builtin)");
        const std::string model = cfg.model.empty() ? "text-embedding-3-small" : cfg.model;
        const bool v3 = model.rfind("text-embedding-3", 0) == 0;
        return std::shared_ptr<Embedder>(std::make_shared<OpenAIEmbedder>(
            transport, cfg.url.empty() ? "https://api.openai.com/v1" : cfg.url, cfg.api_key, model,
            cfg.dimensions ? cfg.dimensions : 1536, v3 && cfg.dimensions != 0));
    }
    return fail(ErrorCode::config_invalid,
                "cache.embedder: unknown embedder '" + cfg.kind + "' (use builtin, ollama, openai or none)");
}

}  // namespace l04
