#pragma once
// OpenAI's Responses API (/v1/responses), the common subset, on the chat
// pipeline: the request is translated into a chat-completions body (so the
// l04 object, routing, tools and every field check are the chat ones), and
// the answer into a `response` object or the Responses event sequence.
//   in:  input (a string, or message / function_call / function_call_output
//        items with input_text, input_image and output_text parts),
//        instructions, previous_response_id, tools (function), tool_choice,
//        temperature, top_p, max_output_tokens, parallel_tool_calls, user,
//        metadata, store, stream, text.format (text, json_object,
//        json_schema), reasoning.effort, service_tier, truncation "disabled",
//        l04, routing.
//   Everything else (built-in tools, background, include, conversation,
//   prompt templates, file inputs, item references, ...) is refused with
//   E4502 naming it: never dropped.
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

struct ResponsesRequest {
    // The earlier turns are not in it yet, and its system_prompt holds only
    // this turn's developer/system input items (they are carried over to a
    // continuation); `instructions` are this request's alone.
    InferenceRequest req;
    std::string instructions;
    std::string previous_response_id;
    bool store = true;
    nlohmann::json echo;             // request fields the response object repeats
};

// Resolves an item_reference id (an output item of a stored response) to
// the input item it stands for; E4502/404 when there is none.
using ItemResolver = std::function<Result<nlohmann::json>(const std::string& id)>;

Result<ResponsesRequest> parse_responses_request(std::string_view body, const ItemResolver& resolve = {});

// A new response id ("resp_" + 24 hex digits).
std::string new_response_id();

// One stored turn: this turn's system text (its developer items), its
// input messages and the answer, as JSON text; and back.
std::string turn_json(const std::string& system, const std::vector<Message>& messages, const InferenceResponse& resp);
struct StoredTurnContent {
    std::string system;
    std::vector<Message> messages;
};
Result<StoredTurnContent> turn_content(const std::string& json_text);
// The input item an output item id of a stored turn stands for: msg_<x>
// (the answer's text) or fc_<x>_<i> (its i-th function call).
Result<nlohmann::json> output_item_of_turn(const StoredTurnContent& turn, const std::string& item_id);

// One output item of a response, in the order they were produced.
struct ResponseItem {
    enum class Kind : std::uint8_t { message, function_call } kind = Kind::message;
    std::size_t call = 0;  // index into the response's tool_calls for function_call
};

// The `response` object. `items` in the order they were produced (a stream
// may have started a function call before any text); empty: message first,
// then the calls. status: in_progress, completed, incomplete, failed.
nlohmann::json response_object(const std::string& id, std::int64_t created_s, const ResponsesRequest& rq,
                               const InferenceResponse* r, const std::vector<ResponseItem>& items,
                               const std::string& status);
std::string message_item_id(const std::string& response_id);
std::string call_item_id(const std::string& response_id, std::size_t i);
// A completed message holds an output_text part, and a refusal part when the
// model refused (`refusal` non-empty).
nlohmann::json message_item(const std::string& response_id, const std::string& text, const char* status,
                            const std::string& refusal = {});
// completed, incomplete (length, content_filter) or failed (the provider
// ended the answer with an error).
const char* response_status(const InferenceResponse& r);
nlohmann::json call_item(const std::string& response_id, std::size_t i, const ToolCall& c, const char* status);

}  // namespace l04
