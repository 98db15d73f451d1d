#pragma once
// The pipeline's native request/response types. JSON and HTTP are parsed into
// these at the edges (server/, provider/); the stages in between never see
// JSON.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

enum class Role : std::uint8_t { system = 0, user = 1, assistant = 2, tool = 3 };
std::string_view role_name(Role r);
std::optional<Role> parse_role(std::string_view s);

// A tool call the model asked for; arguments is the JSON text as sent.
struct ToolCall {
    std::string id;
    std::string name;
    std::string arguments;
    bool operator==(const ToolCall&) const = default;
};

// A tool the caller offers; parameters is a JSON Schema as text.
struct ToolSpec {
    std::string name;
    std::string description;
    std::string parameters;
    bool operator==(const ToolSpec&) const = default;
};

struct Message {
    Role role = Role::user;
    std::string content;
    std::string name;
    std::string tool_call_id;          // for Role::tool
    std::vector<ToolCall> tool_calls;  // for Role::assistant
    bool operator==(const Message&) const = default;
};

// Capabilities as stable bit numbers (persisted nowhere yet, but stable).
enum class Capability : std::uint8_t {
    text = 0,
    code = 1,
    vision = 2,
    tool_use = 3,
    streaming = 4,
    long_context = 5,
    embedding = 6,
};
constexpr int k_capability_count = 7;
std::string_view capability_name(Capability c);
std::optional<Capability> parse_capability(std::string_view s);

// A set of capabilities as a bitmask.
class CapabilitySet {
public:
    CapabilitySet() = default;
    void add(Capability c) { m_bits |= (1u << static_cast<unsigned>(c)); }
    bool has(Capability c) const { return (m_bits >> static_cast<unsigned>(c)) & 1u; }
    bool contains_all(CapabilitySet other) const { return (m_bits & other.m_bits) == other.m_bits; }
    bool empty() const { return m_bits == 0; }
    std::uint32_t bits() const { return m_bits; }
    std::vector<std::string> names() const;
    bool operator==(const CapabilitySet&) const = default;

private:
    std::uint32_t m_bits = 0;
};

enum class Priority : std::uint8_t { high = 0, normal = 1, low = 2 };
std::string_view priority_name(Priority p);
std::optional<Priority> parse_priority(std::string_view s);

struct TokenUsage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t total_tokens = 0;
    bool estimated = false;  // true when no provider reported it
    bool operator==(const TokenUsage&) const = default;
};

struct Requirements {
    std::vector<std::string> capabilities;
    std::int64_t min_context_length = 0;
    std::int64_t max_output_tokens = 0;
};

struct Constraints {
    std::optional<double> max_latency_ms;
    std::optional<double> max_cost_cents;
    std::vector<std::string> preferred_providers;
    std::vector<std::string> excluded_providers;
};

enum class CacheMode : std::uint8_t { use = 0, bypass = 1, refresh = 2 };

struct InferenceRequest {
    std::string request_id;
    std::string agent_did;
    std::string model;  // registry id or alias; empty = let the router choose
    std::vector<Message> messages;
    std::string system_prompt;
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<std::int64_t> max_tokens;
    std::vector<std::string> stop;
    std::vector<ToolSpec> tools;
    std::string tool_choice;      // JSON text or empty
    std::string response_format;  // JSON text or empty
    std::vector<std::string> capabilities;
    bool enable_cache = true;
    CacheMode cache_mode = CacheMode::use;
    std::optional<double> cache_similarity_threshold;
    std::map<std::string, std::string> metadata;
    Requirements requirements;
    Constraints constraints;
    std::string strategy;  // empty = configured default
    Priority priority = Priority::normal;
    std::optional<std::int64_t> deadline_ms;  // wall-clock ms since epoch
    std::optional<std::int64_t> timeout_ms;   // relative; deadline = now + timeout
    bool stream = false;
    // Wait for rate-limit buckets (bounded by the deadline) instead of failing.
    bool wait_for_limits = false;
    // Per-request provider options (`-o key=value`, the "l04.options" object);
    // the mock provider is driven by these.
    std::map<std::string, std::string> options;
};

enum class CacheHit : std::uint8_t { none = 0, exact = 1, semantic = 2 };
std::string_view cache_hit_name(CacheHit h);

struct InferenceResponse {
    std::string request_id;
    std::string content;
    std::string model_id;  // registry id that served the request
    std::string provider;
    TokenUsage token_usage;
    double latency_ms = 0;
    bool cached = false;
    CacheHit cache_hit = CacheHit::none;
    double similarity = 0;
    double cost_usd = 0;
    std::string finish_reason = "stop";
    std::vector<ToolCall> tool_calls;
    std::int64_t created_ms = 0;
    std::map<std::string, std::string> metadata;
};

// One piece of a streamed answer. The last chunk has is_final set and carries
// the usage and the facts of the final response.
struct StreamChunk {
    std::string delta;
    std::vector<ToolCall> tool_call_deltas;  // partial; index by position
    bool is_final = false;
    std::optional<TokenUsage> usage;
    std::string finish_reason;
    // Set by the gateway on every chunk it forwards: who is answering.
    std::string model_id;
    std::string provider;
};

// Estimated token count of text: ceil(bytes / 4), the common rule of thumb
// for English BPE vocabularies. Used only where a provider reports nothing,
// and then marked as estimated.
std::int64_t estimate_tokens(std::string_view text);
// Estimate for a whole request's prompt (messages, system, tools).
std::int64_t estimate_prompt_tokens(const InferenceRequest& req);

// The text of the last user message, or empty.
std::string last_user_text(const InferenceRequest& req);

}  // namespace l04

namespace l04 {
// Length-prefixed binary-safe encoding of tool calls (for storage without JSON).
std::string encode_tool_calls(const std::vector<ToolCall>& calls);
std::vector<ToolCall> decode_tool_calls(std::string_view data);
}  // namespace l04
