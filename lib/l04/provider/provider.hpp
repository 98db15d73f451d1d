#pragma once
// Provider interface: one adapter per wire protocol (openai, anthropic,
// ollama, gemini, command, mock). complete() returns the whole answer;
// stream() delivers chunks to the sink as they arrive and returns the final
// aggregated response (content, tool calls, exact usage). Failures come back
// as E42xx Errors with retryable and retry_after set from the provider's
// status and headers.
#include <l04/config/registry.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace l04 {

// Returns false when the caller has gone away: the adapter stops reading and
// cancels the upstream request.
using ChunkSink = std::function<bool(const StreamChunk&)>;

// Shared flag a caller sets to cancel a request in flight.
struct CancelToken {
    std::atomic<bool> cancelled{false};
};

struct ProviderRequest {
    const InferenceRequest& request;
    const ModelInfo& model;
    std::chrono::milliseconds timeout{120000};
    const CancelToken* cancel = nullptr;
};

// One embeddings call: every input text of the request that the cache did
// not have, for one model.
struct EmbedCall {
    const ModelInfo& model;
    const std::vector<std::string>& inputs;
    std::optional<std::int64_t> dimensions;  // a smaller size, for models that can give one
    std::chrono::milliseconds timeout{30000};
    const CancelToken* cancel = nullptr;
};

struct EmbedResult {
    std::vector<std::vector<float>> vectors;  // one per input, in order, as the provider sent them
    std::int64_t prompt_tokens = 0;
    bool estimated = false;  // the provider reported no token count
};

enum class HealthState : std::uint8_t { healthy = 0, degraded = 1, unhealthy = 2, unconfigured = 3 };
std::string_view health_state_name(HealthState s);

struct ProviderHealth {
    HealthState state = HealthState::healthy;
    double latency_ms = 0;
    std::string message;
};

class Provider {
public:
    virtual ~Provider() = default;
    virtual const std::string& id() const = 0;
    virtual Result<InferenceResponse> complete(const ProviderRequest& req) = 0;
    virtual Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) = 0;
    // A cheap probe (e.g. GET /v1/models); never throws, bounded by timeout.
    virtual ProviderHealth health_check(std::chrono::milliseconds timeout) = 0;
    // Embeddings (/v1/embeddings). Adapters without an embeddings API refuse
    // with E4502.
    virtual Result<EmbedResult> embed(const EmbedCall& call) {
        return fail(ErrorCode::invalid_parameter,
                    "provider '" + id() + "' has no embeddings API (model " + call.model.id + ")");
    }
};

// Maps an upstream HTTP failure to an Error: 400 (context length → E4205),
// 401/403 → E4203, 404 → E4204, 408 → E4202, 429 → E4401 or E4402 (quota),
// 5xx/529 → E4207/E4201 retryable. retry_after from Retry-After,
// retry-after-ms, x-ratelimit-reset-*, anthropic-ratelimit-*-reset, set
// only for statuses where waiting can help (408, 429, 5xx).
// `headers` keys are lower-case. `now_wall_ms` is for absolute reset times.
Error error_from_http(int status, std::string_view body, const std::map<std::string, std::string>& headers,
                      std::string_view provider, std::int64_t now_wall_ms);

// Whether a provider of this kind has what it needs (key set, command on
// PATH). `why` says what is missing ("set OPENAI_API_KEY").
struct ProviderConfig {
    const ProviderInfo* info = nullptr;
    std::string base_url;  // after env override
    std::string api_key;   // never logged
    bool configured = false;
    std::string why_not;
};

}  // namespace l04
