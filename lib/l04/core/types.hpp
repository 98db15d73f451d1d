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

// The answer's share of a request's token estimate when it sets no
// max_tokens (rate-limit reservations, l04ctl chat's history trimming): the
// model's output limit, but at most this many tokens.
inline constexpr std::int64_t k_default_answer_tokens = 1024;

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

// A tool the caller offers; parameters is a JSON Schema as text. `strict`
// is OpenAI's structured-outputs switch. A tool whose type is not
// "function" keeps its whole JSON text in `raw` (OpenAI-kind providers get
// it as sent; other kinds refuse it).
struct ToolSpec {
    std::string name;
    std::string description;
    std::string parameters;
    std::optional<bool> strict = std::nullopt;
    std::string raw = {};
    bool operator==(const ToolSpec&) const = default;
};

// One part of a message's content when it was given as an array (OpenAI's
// content parts), kept in order. Images are either inline (`data` holds the
// base64 text of a data: URL, `media_type` its type) or a remote http(s)
// `url`. Parts of another type (input_audio, file, ...) keep their JSON text
// in `raw`: OpenAI-kind providers receive them as sent, every other kind
// refuses them (request_fields.hpp).
struct ContentPart {
    enum class Kind : std::uint8_t { text = 0, image = 1, other = 2 };
    Kind kind = Kind::text;
    std::string text;        // Kind::text
    std::string media_type;  // Kind::image, inline: "image/png"
    std::string data;        // Kind::image, inline: base64, exactly as sent
    std::string url;         // Kind::image, remote: http(s) URL
    std::string detail;      // Kind::image: OpenAI's detail ("auto", "low", "high") or ""
    // Kind::other: the part's JSON text. Text and image parts that carry
    // keys l04 does not read (cache_control, ...) keep their JSON text here
    // too: OpenAI-kind providers get it as sent, other kinds refuse it.
    std::string raw;
    bool operator==(const ContentPart&) const = default;
    bool is_image() const { return kind == Kind::image; }
};

struct Message {
    Role role = Role::user;
    // The text of the message (text parts joined by "\n" when it came as
    // parts): what is estimated, embedded and shown.
    std::string content;
    std::string name;
    std::string tool_call_id;          // for Role::tool
    std::vector<ToolCall> tool_calls;  // for Role::assistant
    // Non-empty when the content was an array of parts; adapters send these.
    std::vector<ContentPart> parts = {};
    // Keys of the message l04 does not read ("prefix", "reasoning_content",
    // ...), as JSON text: forwarded to OpenAI-kind providers, refused by
    // the others (request_fields.hpp).
    std::vector<std::pair<std::string, std::string>> extra = {};
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

// A typed `-o key=value` / "l04.options" value: numbers stay numbers.
struct OptionValue {
    enum class Kind : std::uint8_t { string = 0, number = 1, boolean = 2, json = 3 };
    Kind kind = Kind::string;
    std::string text;  // the string itself, the number's or boolean's text, or JSON text (arrays/objects)
    bool operator==(const OptionValue&) const = default;
};
// `-o` parsing: "true"/"false" are booleans, a decimal number is a number,
// text starting with [ or { is JSON, anything else a string.
OptionValue option_from_text(std::string_view text);

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
    // Wait for rate-limit buckets and for a provider's Retry-After (bounded
    // by the deadline) instead of failing.
    bool wait_for_limits = false;
    // Retries l04 may make on one model (nullopt: retry.max_retries). 0 when
    // the caller retries by itself (an SDK's x-stainless-retry-count header,
    // or x-l04-retries: 0), so that retries never multiply.
    std::optional<int> max_retries;
    // Per-request provider options (`-o key=value`, the "l04.options" object):
    // native options of the chosen provider (Ollama `options`, Anthropic
    // `top_k`, Gemini `generationConfig`, top-level fields for OpenAI-kind
    // servers, the mock's knobs). Unknown ones are refused (request_fields).
    std::map<std::string, OptionValue> options;

    // OpenAI chat fields beyond the basics. Each is forwarded, mapped or
    // refused per provider kind (core/request_fields.hpp), never dropped.
    std::optional<std::int64_t> n;
    std::optional<std::int64_t> seed;
    std::optional<double> presence_penalty;
    std::optional<double> frequency_penalty;
    std::optional<bool> logprobs;
    std::optional<std::int64_t> top_logprobs;
    std::string logit_bias;  // JSON text or empty
    std::optional<bool> parallel_tool_calls;
    std::string user;  // OpenAI's end-user id (also the default agent)
    std::optional<bool> store;
    std::string service_tier;
    std::string reasoning_effort;
    // Other top-level fields, in order, as JSON text: forwarded verbatim to
    // providers of kind openai (llama.cpp's top_k, vLLM's min_p, ...),
    // refused by every other kind.
    std::vector<std::pair<std::string, std::string>> extra;
    // Whether the caller asked for the cache explicitly ("l04": {"cache":
    // "use"}); answers meant to differ (n > 1, logprobs, a seeded non-zero
    // temperature) are cached only then.
    bool cache_explicit = false;
};

// Whether any message carries an image part.
bool has_images(const InferenceRequest& req);

enum class CacheHit : std::uint8_t { none = 0, exact = 1, semantic = 2 };
std::string_view cache_hit_name(CacheHit h);

// Why the closest cached prompt, similar enough, was still not served (the
// semantic cache's guard: "roles", "negation", ...; or "ambiguous").
struct CacheRefusalFact {
    std::string reason;
    double similarity = 0;
    bool operator==(const CacheRefusalFact&) const = default;
};

struct InferenceResponse {
    std::string request_id;
    std::string content;
    std::string model_id;  // registry id that served the request
    std::string provider;
    TokenUsage token_usage;
    double latency_ms = 0;
    CacheHit cache_hit = CacheHit::none;  // none: a provider answered
    double similarity = 0;
    double cost_usd = 0;
    std::string finish_reason = "stop";
    std::vector<ToolCall> tool_calls;
    std::int64_t created_ms = 0;
    // The request's path through the gateway.
    int attempts = 0;                              // provider calls made (0 for a cache hit)
    std::string fallback_from;                     // the chain's first model, when another one answered
    std::optional<CacheRefusalFact> cache_refusal; // a close cached prompt that was not served
    // What the provider (or the cache) said beside the answer:
    // provider_model, provider_response_id, usage_estimated, cached_at, ...
    std::map<std::string, std::string> metadata;
    std::string logprobs;  // the first choice's logprobs object as JSON text, or empty
    // Keys of the first choice's message beyond role, content, tool_calls and
    // refusal (audio, annotations, ...) as a JSON object text, or empty:
    // passed back as the provider sent them.
    std::string message_extra;
    // Choices 1..n-1 when the request asked for n > 1 (choice 0 is above).
    struct Choice {
        std::string content;
        std::vector<ToolCall> tool_calls;
        std::string finish_reason = "stop";
        std::string logprobs;
        bool operator==(const Choice&) const = default;
    };
    std::vector<Choice> more_choices;
    bool from_cache() const { return cache_hit != CacheHit::none; }
};

// A /v1/embeddings request: texts to embed with one embedding model.
struct EmbedRequest {
    std::string request_id;
    std::string agent_did;
    std::string model;                       // registry id, alias or provider/name; empty = routed
    std::vector<std::string> inputs;
    std::optional<std::int64_t> dimensions;  // a shorter vector (text-embedding-3-*, Gemini, Matryoshka models)
    CacheMode cache_mode = CacheMode::use;
    std::optional<std::int64_t> timeout_ms;
    std::map<std::string, std::string> metadata;
    std::optional<int> max_retries;
};

struct EmbedResponse {
    std::string request_id;
    std::string model_id;
    std::string provider;
    std::vector<std::vector<float>> vectors;  // one per input, in order
    std::int64_t prompt_tokens = 0;           // of the whole request (cached inputs included)
    bool usage_estimated = false;
    std::size_t cached_inputs = 0;            // served from the embedding cache
    double cost_usd = 0;
    double latency_ms = 0;
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
// Length-prefixed binary-safe fields ("5:hello"): append one; read one from
// the front of `data` (false when it is not well formed).
void put_length_prefixed(std::string& out, std::string_view s);
bool get_length_prefixed(std::string_view& data, std::string& s);
// Length-prefixed binary-safe encoding of tool calls (for storage without JSON).
std::string encode_tool_calls(const std::vector<ToolCall>& calls);
std::vector<ToolCall> decode_tool_calls(std::string_view data);
}  // namespace l04
