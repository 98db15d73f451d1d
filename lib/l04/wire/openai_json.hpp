#pragma once
// The OpenAI-compatible wire format at l04d's edge: JSON request bodies →
// InferenceRequest, InferenceResponse → chat.completion JSON, stream chunks →
// chat.completion.chunk events, Errors → {"error": {...}}. The "l04" object
// carries gateway options in and gateway facts out.
#include <l04/config/registry.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace l04 {

// Serialises for the wire. Invalid UTF-8 (e.g. from a local command's
// output) is replaced by U+FFFD instead of throwing.
std::string to_wire(const nlohmann::json& j);

// Parses a /v1/chat/completions body. E4500/E4501/E4502 on bad input.
Result<InferenceRequest> parse_chat_request(std::string_view body);
// The top-level `routing` object (strategy, preferred_providers,
// exclude_providers, constraints and requirements) into r; unknown keys E4502.
Status parse_routing_object(const nlohmann::json& g, InferenceRequest& r);
// Reverse of parse_chat_request (l04ctl builds its requests with it).
nlohmann::json chat_request_to_json(const InferenceRequest& req);

// The facts object ("l04") describing how a response was produced.
nlohmann::json response_facts(const InferenceResponse& r);
// The response's metadata as the wire shows it (the "metadata" object of the
// l04 facts and of l04ctl --json): the provider's and the cache's entries,
// plus the gateway's typed facts under their historical keys: attempts (when
// more than one call was made), fallback_from, cache_refused and
// cache_refused_similarity ("%.3f"). response_metadata_from reads them back
// into the typed fields.
nlohmann::json response_metadata(const InferenceResponse& r);
void response_metadata_from(const nlohmann::json& metadata, InferenceResponse& r);
nlohmann::json chat_response_to_json(const InferenceResponse& r);
// OpenAI's usage object (total_tokens is the sum when the provider gave none)
// and tool_calls array, shared by every endpoint's answer.
nlohmann::json usage_json(const TokenUsage& u);
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls);
// {id, object, created, model, choices, usage, l04}: the envelope that chat
// and legacy text completions share.
// Streamed tool-call deltas in OpenAI's shape ({index, id, type, function}),
// for the chat stream and the specification's stream.
nlohmann::json tool_call_deltas_json(const std::vector<ToolCall>& deltas);
nlohmann::json completion_envelope(const InferenceResponse& r, const char* object, nlohmann::json choices);
// One delta event.
nlohmann::json chunk_to_json(const StreamChunk& c, const std::string& id, std::int64_t created_s, bool first);
// The closing events: finish_reason delta, then usage + facts.
nlohmann::json finish_chunk_json(const InferenceResponse& r, std::int64_t created_s);
nlohmann::json usage_chunk_json(const InferenceResponse& r, std::int64_t created_s);
nlohmann::json error_to_json(const Error& e);
// Parses an error body written by error_to_json (client side).
Error error_from_json(const nlohmann::json& j, int http_status);
// Reads a chat.completion (+ "l04" facts) back into an InferenceResponse.
InferenceResponse response_from_json(const nlohmann::json& j);
// A registry entry as JSON (id, provider, capabilities, prices, ...): what
// `l04ctl models --json` prints and the "l04" object of /v1/models entries.
nlohmann::json model_to_json(const ModelInfo& m);

// Response headers carrying the facts (x-l04-*).
std::vector<std::pair<std::string, std::string>> fact_headers(const InferenceResponse& r);

}  // namespace l04
