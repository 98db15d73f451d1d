#pragma once
// Helpers shared by the HTTP adapters (openai, anthropic, ollama, gemini):
// safe JSON access, error mapping with the provider's own message, the
// streamed exchange, chunk accumulation and usage completion. Internal to
// lib/l04/provider; JSON stays at this edge.
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/http/transport.hpp>
#include <l04/provider/provider.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04::detail {

using json = nlohmann::json;

// Parses text as JSON; nullopt when it is not JSON (never throws).
std::optional<json> parse_json(std::string_view text);
// j[key] as a string; "" when absent, null or not a string.
std::string str_of(const json& j, std::string_view key);
// j[key] as an integer; nullopt when absent or not a number.
std::optional<std::int64_t> int_of(const json& j, std::string_view key);
// j[key] when it is an object / array, else nullptr.
const json* obj_of(const json& j, std::string_view key);
const json* arr_of(const json& j, std::string_view key);
// JSON text for a request field the caller gave as text ("auto", {"type":...}):
// parsed when it is JSON, else the text itself as a JSON string.
json json_or_string(const std::string& text);

// JSON text parsed, or the text itself as a JSON string when it is not JSON.
json parsed_or_string(const std::string& text);
// A typed option value as JSON (numbers stay numbers).
json option_json(const OptionValue& v);
json options_to_json(const std::map<std::string, OptionValue>& options);
// A message's content in OpenAI's shape: its text, or its parts in order
// (text, image_url with the data: URL rebuilt byte for byte, other parts as
// sent).
json message_content_json(const Message& m);

// Compact JSON text; invalid UTF-8 is replaced (U+FFFD), never thrown on.
std::string dump(const json& j);

// Replaces each occurrence of `secret` (when non-empty) with "[redacted]".
std::string redact(std::string s, std::string_view secret);

// The provider's own message in an error body: error.message, error (a
// string), message, or the trimmed body itself (truncated) when not JSON.
std::string provider_message(std::string_view body);

// Maps an upstream HTTP failure: error_from_http, then details = the
// provider's message, x-should-retry honoured, the key redacted.
Error http_error(int status, std::string_view body, const HttpResponseHead& head, const std::string& provider,
                 std::int64_t now_wall_ms, const std::string& secret);

// The error for a body that is not the JSON promised (E4600, not retryable).
Error parse_error(const std::string& provider, std::string_view what, std::string_view body);
// The error for a stream that ended without its terminating event (E4604).
Error truncated_stream_error(const std::string& provider, std::string_view missing);

// Builds the HttpRequest for a provider call: timeouts from the request
// (and the provider's own timeout_ms when smaller), cancel flag wired.
HttpRequest make_http_request(std::string method, std::string url,
                              std::vector<std::pair<std::string, std::string>> headers, std::string body,
                              std::chrono::milliseconds timeout, std::int64_t provider_timeout_ms,
                              const CancelToken* cancel);

// Context of one adapter's calls.
struct CallContext {
    Transport& transport;
    Clock& clock;
    const std::string& provider;  // provider id, for messages
    const std::string& secret;    // the API key, redacted from every message
    // Adjusts an HTTP error with provider-specific knowledge of the body.
    std::function<void(Error&, std::string_view body)> refine = {};
};

// One exchange whose 2xx body is handed to on_body as it arrives (return
// false to stop reading). A non-2xx answer is buffered (first 64 KiB) and
// mapped with http_error. Returns the head on success. When on_body stopped
// the transfer the transport's E4604 comes back; the caller knows why.
Result<HttpResponseHead> exchange(const CallContext& ctx, const HttpRequest& req,
                                  const std::function<bool(std::string_view)>& on_body);
// One exchange whose 2xx body is collected whole.
Result<std::string> exchange_buffered(const CallContext& ctx, const HttpRequest& req);

// A health probe: healthy on 2xx (message = describe(body), may be empty),
// degraded on 429 (rate limited), unhealthy otherwise; latency on ctx.clock.
ProviderHealth probe_health(const CallContext& ctx, const HttpRequest& req,
                            const std::function<std::string(std::string_view)>& describe);
// probe_health for a model-list endpoint: healthy when the body is JSON with
// an array under `list_key`; the message counts it ("12 models listed").
ProviderHealth probe_model_list(const CallContext& ctx, const HttpRequest& req, const char* list_key, const char* noun);

// An error payload that arrived inside a 200 answer or a stream, mapped as
// if the provider had answered HTTP `status_equivalent` with it.
Error payload_error(int status_equivalent, const json& payload, const CallContext& ctx);

// Collects a streamed (or whole) answer and forwards deltas to the sink.
class Accumulator {
public:
    explicit Accumulator(const ChunkSink* sink) : m_sink(sink) {}
    // The upstream stream has begun (its first event arrived): forwards one
    // empty chunk, unless something was forwarded already, so the caller
    // can send its response headers and role event now instead of waiting
    // for the first token. False when the caller went away.
    bool open();
    // Appends text and forwards it; false when the caller went away.
    bool text(std::string_view delta);
    // Tool call `index` starts (or continues) with id/name; forwards a delta.
    bool tool_begin(std::size_t index, std::string_view id, std::string_view name);
    // Appends an argument fragment to tool call `index`; forwards a delta.
    bool tool_args(std::size_t index, std::string_view fragment);
    // Whether the sink refused a chunk.
    bool caller_gone() const { return m_gone; }
    // Sends the final chunk (usage, finish reason); the gateway swallows it.
    void finish(const InferenceResponse& resp);

    std::string content;
    std::vector<ToolCall> tool_calls;

private:
    bool forward(StreamChunk c);
    ToolCall& slot(std::size_t index);
    const ChunkSink* m_sink;
    bool m_gone = false;
    bool m_opened = false;
};

// Fills resp.token_usage from what the provider reported. Parts it did not
// report are estimated (l04::estimate_*), which sets usage.estimated and
// metadata["usage_estimated"] = "true". total = reported total, else the sum.
void set_usage(InferenceResponse& resp, const InferenceRequest& req, std::optional<std::int64_t> prompt,
               std::optional<std::int64_t> completion, std::optional<std::int64_t> total = std::nullopt);

// The error for a stream the caller abandoned (E4604, not retryable).
Error caller_gone_error(const std::string& provider);

// Response skeleton: ids, provider, request id.
InferenceResponse new_response(const ProviderRequest& req, const std::string& provider);

// Base URL with a path appended, avoiding a doubled version segment:
// join_url("https://h/v1", "/v1/messages") == "https://h/v1/messages".
std::string join_url(const std::string& base, std::string_view path);

// The vectors of an embeddings answer: `arr` holds one array of numbers per
// input (`key` names the array inside each element, or "" when the element
// is the array itself). Checks the count, that every vector is numbers and
// that all have one length (`dimensions` when given). E4600 otherwise.
Result<std::vector<std::vector<float>>> embedding_vectors(const json& arr, const char* key, std::size_t count,
                                                         std::optional<std::int64_t> dimensions,
                                                         const std::string& provider);

// Every file of an adapter catches nlohmann exceptions at its edge with this.
template <class F>
auto guard_json(const std::string& provider, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const nlohmann::json::exception& e) {
        return fail(parse_error(provider, e.what(), ""));
    }
}

// The body callback of a streamed exchange: feeds each piece to `parser`
// (SseParser, NdjsonParser) and hands every parsed item to `handle`, which
// returns false to stop the transfer. A parse error is stored in `error` and
// stops it too.
template <class Parser, class Item, class Handle>
std::function<bool(std::string_view)> feed_parser(Parser& parser, std::vector<Item>& items, Handle& handle,
                                                  std::optional<Error>& error) {
    return [&parser, &items, &handle, &error](std::string_view piece) -> bool {
        items.clear();
        if (auto st = parser.feed(piece, items); !st) {
            error = st.error();
            return false;
        }
        for (const auto& it : items)
            if (!handle(it)) return false;
        return true;
    };
}

// After the exchange: flushes what the parser still holds (a last event
// without its blank line) through `handle`.
template <class Parser, class Item, class Handle>
Status finish_parser(Parser& parser, std::vector<Item>& items, Handle& handle) {
    items.clear();
    if (auto st = parser.finish(items); !st) return fail(st.error());
    for (const auto& it : items) handle(it);
    return {};
}

// What every HTTP adapter holds: its id, base URL, key, timeout, transport
// and clock, and the CallContext built from them.
class HttpProviderBase : public Provider {
public:
    HttpProviderBase(const ProviderConfig& cfg, Transport& transport, Clock& clock)
        : m_id(cfg.info->id),
          m_base(cfg.base_url),
          m_key(cfg.api_key),
          m_timeout_ms(cfg.info->timeout_ms),
          m_transport(transport),
          m_clock(clock) {}
    const std::string& id() const override { return m_id; }

protected:
    CallContext ctx() { return CallContext{m_transport, m_clock, m_id, m_key}; }

    std::string m_id;
    std::string m_base;
    std::string m_key;  // never logged: CallContext redacts it
    std::int64_t m_timeout_ms;
    Transport& m_transport;
    Clock& m_clock;
};

}  // namespace l04::detail
