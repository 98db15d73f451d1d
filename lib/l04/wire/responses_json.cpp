#include <l04/wire/openai_json.hpp>
#include <l04/wire/responses_json.hpp>
#include <l04/core/hash.hpp>


#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace l04 {

using nlohmann::json;

namespace {

Error unsupported(const std::string& what, const std::string& hint = {}) {
    return Error(ErrorCode::invalid_parameter,
                 what + " is not supported by l04's /v1/responses" + (hint.empty() ? "" : " (" + hint + ")"));
}

// One content part of an input message → a chat content part.
Result<json> chat_part(const json& p, const std::string& role) {
    if (p.is_string()) return json{{"type", "text"}, {"text", p}};
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
        return fail(Error(ErrorCode::invalid_messages, "each content part needs a string 'type'"));
    const std::string t = p["type"].get<std::string>();
    if (t == "input_text" || t == "output_text" || t == "text") {
        if (!p.contains("text") || !p["text"].is_string())
            return fail(Error(ErrorCode::invalid_messages, "a " + t + " part needs a string 'text'"));
        return json{{"type", "text"}, {"text", p["text"]}};
    }
    if (t == "refusal" && role == "assistant" && p.contains("refusal") && p["refusal"].is_string())
        return json{{"type", "text"}, {"text", p["refusal"]}};
    if (t == "input_image") {
        if (p.contains("file_id")) return fail(unsupported("input_image with file_id", "send image_url: a data: or https URL"));
        if (!p.contains("image_url") || !p["image_url"].is_string())
            return fail(Error(ErrorCode::invalid_messages, "an input_image part needs an 'image_url' string"));
        json iu{{"url", p["image_url"]}};
        if (p.contains("detail") && p["detail"].is_string()) iu["detail"] = p["detail"];
        return json{{"type", "image_url"}, {"image_url", std::move(iu)}};
    }
    return fail(unsupported("content part type '" + t.substr(0, 40) + "'", "input_text, input_image and output_text are"));
}

// The Responses `input` (string or items) → chat messages appended to msgs.
Status input_messages(const json& input, json& msgs, const ItemResolver& resolve) {
    if (input.is_string()) {
        msgs.push_back({{"role", "user"}, {"content", input}});
        return {};
    }
    if (!input.is_array()) return fail(Error(ErrorCode::invalid_messages, "'input' must be a string or an array of items"));
    for (const auto& given : input) {
        if (!given.is_object()) return fail(Error(ErrorCode::invalid_messages, "each input item must be an object"));
        json resolved;
        const json* itemp = &given;
        if (given.contains("type") && given["type"] == "item_reference") {
            // An output item of a stored response, by id (what SDKs send for
            // earlier turns when the response was stored).
            if (!resolve || !given.contains("id") || !given["id"].is_string())
                return fail(unsupported("input item type 'item_reference'", "without a stored response to refer to"));
            L04_TRY_ASSIGN(auto r, resolve(given["id"].get<std::string>()));
            resolved = std::move(r);
            itemp = &resolved;
        }
        const json& item = *itemp;
        if (item.contains("type") && !item["type"].is_string())
            return fail(Error(ErrorCode::invalid_messages, "an input item's 'type' must be a string"));
        const std::string type = item.value("type", std::string(item.contains("role") ? "message" : ""));
        if (type == "message") {
            std::string role = item.value("role", std::string());
            if (role == "developer") role = "system";
            if (role != "user" && role != "system" && role != "assistant")
                return fail(Error(ErrorCode::invalid_messages, "input message role must be user, system, developer or assistant"));
            const json& c = item.contains("content") ? item["content"] : json();
            if (c.is_string()) {
                msgs.push_back({{"role", role}, {"content", c}});
            } else if (c.is_array()) {
                json parts = json::array();
                for (const auto& p : c) {
                    L04_TRY_ASSIGN(auto part, chat_part(p, role));
                    parts.push_back(std::move(part));
                }
                msgs.push_back({{"role", role}, {"content", std::move(parts)}});
            } else {
                return fail(Error(ErrorCode::invalid_messages, "an input message needs 'content' (a string or parts)"));
            }
        } else if (type == "function_call") {
            for (const char* k : {"call_id", "name", "arguments"})
                if (!item.contains(k) || !item[k].is_string())
                    return fail(Error(ErrorCode::invalid_messages, std::string("a function_call item needs a string '") + k + "'"));
            json call{{"id", item["call_id"]}, {"type", "function"},
                      {"function", {{"name", item["name"]}, {"arguments", item["arguments"]}}}};
            // Consecutive calls, and calls right after the assistant's text,
            // are one assistant turn (providers want roles to alternate).
            if (!msgs.empty() && msgs.back().value("role", "") == "assistant") {
                if (!msgs.back().contains("tool_calls")) msgs.back()["tool_calls"] = json::array();
                msgs.back()["tool_calls"].push_back(std::move(call));
            }
            else
                msgs.push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({std::move(call)})}});
        } else if (type == "function_call_output") {
            if (!item.contains("call_id") || !item["call_id"].is_string())
                return fail(Error(ErrorCode::invalid_messages, "a function_call_output item needs a string 'call_id'"));
            const json& out = item.contains("output") ? item["output"] : json();
            std::string text;
            if (out.is_string()) text = out.get<std::string>();
            else if (out.is_array()) {
                for (const auto& p : out) {
                    if (!p.is_object() || p.value("type", "") != "input_text" || !p.contains("text") || !p["text"].is_string())
                        return fail(unsupported("a function_call_output part other than input_text"));
                    text += p["text"].get<std::string>();
                }
            } else {
                return fail(Error(ErrorCode::invalid_messages, "a function_call_output item needs an 'output' string"));
            }
            msgs.push_back({{"role", "tool"}, {"tool_call_id", item["call_id"]}, {"content", text}});
        } else {
            return fail(unsupported("input item type '" + type.substr(0, 40) + "'",
                                    "message, function_call and function_call_output are"));
        }
    }
    return {};
}


}  // namespace

std::string new_response_id() { return random_id("resp_", 24); }

namespace {
Result<ResponsesRequest> parse_responses_request_impl(std::string_view body, const ItemResolver& resolve) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        auto r = parse_chat_request(body);  // the chat parser's own error (depth, syntax, type)
        if (!r) return fail(r.error());
        return fail(Error(ErrorCode::invalid_request, "the request body must be a JSON object"));
    }
    ResponsesRequest out;
    json chat = json::object();
    json msgs = json::array();
    json echo = json::object();
    for (const auto& [k, v] : j.items()) {
        if (v.is_null()) continue;
        if (k == "model" || k == "temperature" || k == "top_p" || k == "parallel_tool_calls" || k == "user" ||
            k == "metadata" || k == "service_tier" || k == "stream" || k == "l04" || k == "routing") {
            chat[k] = v;
            if (k != "stream" && k != "l04" && k != "routing") echo[k] = v;
        } else if (k == "input" || k == "instructions") {
            // below, in order: instructions first
        } else if (k == "max_output_tokens") {
            chat["max_tokens"] = v;
            echo[k] = v;
        } else if (k == "previous_response_id") {
            if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 128)
                return fail(Error(ErrorCode::invalid_parameter, "'previous_response_id' must be a response id"));
            out.previous_response_id = v.get<std::string>();
            echo[k] = v;
        } else if (k == "store") {
            if (!v.is_boolean()) return fail(Error(ErrorCode::invalid_parameter, "'store' must be a boolean"));
            out.store = v.get<bool>();
            echo[k] = v;
        } else if (k == "tools") {
            if (!v.is_array()) return fail(Error(ErrorCode::invalid_parameter, "'tools' must be an array"));
            json tools = json::array();
            for (const auto& t : v) {
                const std::string type =
                    t.is_object() && t.contains("type") && t["type"].is_string() ? t["type"].get<std::string>() : std::string();
                if (type != "function")
                    return fail(unsupported("tool type '" + type.substr(0, 40) + "'",
                                            "only function tools; built-in tools such as web_search need OpenAI itself"));
                if (!t.contains("name") || !t["name"].is_string())
                    return fail(Error(ErrorCode::invalid_parameter, "each function tool needs a 'name'"));
                json fn{{"name", t["name"]}};
                fn["parameters"] = t.contains("parameters") && !t["parameters"].is_null() ? t["parameters"] : json::object();
                if (t.contains("description") && t["description"].is_string()) fn["description"] = t["description"];
                if (t.contains("strict") && t["strict"].is_boolean()) fn["strict"] = t["strict"];
                tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
            }
            if (!tools.empty()) chat["tools"] = std::move(tools);
            echo[k] = v;
        } else if (k == "tool_choice") {
            if (v.is_string()) chat["tool_choice"] = v;
            else if (v.is_object() && v.value("type", "") == "function" && v.contains("name"))
                chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", v["name"]}}}};
            else return fail(unsupported("this tool_choice", "auto, none, required or {type: function, name}"));
            echo[k] = v;
        } else if (k == "text") {
            if (!v.is_object()) return fail(Error(ErrorCode::invalid_parameter, "'text' must be an object"));
            for (const auto& [tk, tv] : v.items()) {
                if (tk == "verbosity") return fail(unsupported("text.verbosity"));
                if (tk != "format") return fail(unsupported("text." + tk.substr(0, 40)));
                const std::string ft =
                    tv.is_object() && tv.contains("type") && tv["type"].is_string() ? tv["type"].get<std::string>() : std::string();
                if (ft == "json_object") chat["response_format"] = {{"type", "json_object"}};
                else if (ft == "json_schema") {
                    json js{{"name", tv.value("name", std::string("output"))}, {"schema", tv.contains("schema") ? tv["schema"] : json::object()}};
                    if (tv.contains("strict")) js["strict"] = tv["strict"];
                    if (tv.contains("description")) js["description"] = tv["description"];
                    chat["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
                } else if (ft != "text") {
                    return fail(unsupported("text.format type '" + ft.substr(0, 40) + "'"));
                }
            }
            echo[k] = v;
        } else if (k == "reasoning") {
            if (!v.is_object()) return fail(Error(ErrorCode::invalid_parameter, "'reasoning' must be an object"));
            for (const auto& [rk, rv] : v.items()) {
                if (rv.is_null()) continue;
                if (rk != "effort") return fail(unsupported("reasoning." + rk.substr(0, 40), "reasoning.effort is"));
                chat["reasoning_effort"] = rv;
            }
            echo[k] = v;
        } else if (k == "truncation") {
            if (v != "disabled") return fail(unsupported("truncation '" + (v.is_string() ? v.get<std::string>().substr(0, 20) : std::string("?")) + "'", "only disabled"));
        } else if (k == "include") {
            if (!v.is_array() || !v.empty()) return fail(unsupported("'include'"));
        } else {
            return fail(unsupported("'" + k.substr(0, 64) + "'",
                                    "supported: model, input, instructions, previous_response_id, tools, tool_choice, "
                                    "temperature, top_p, max_output_tokens, parallel_tool_calls, user, metadata, store, "
                                    "stream, text, reasoning, service_tier, truncation, l04, routing"));
        }
    }
    if (auto it = j.find("instructions"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return fail(Error(ErrorCode::invalid_parameter, "'instructions' must be a string"));
        out.instructions = it->get<std::string>();
        echo["instructions"] = *it;
    }
    auto in = j.find("input");
    if (in == j.end() || in->is_null()) return fail(Error(ErrorCode::invalid_messages, "'input' is required"));
    L04_TRY(input_messages(*in, msgs, resolve));
    chat["messages"] = std::move(msgs);
    L04_TRY_ASSIGN(auto r, parse_chat_request(to_wire(chat)));
    out.req = std::move(r);
    out.echo = std::move(echo);
    return out;
}
}  // namespace

Result<ResponsesRequest> parse_responses_request(std::string_view body, const ItemResolver& resolve) {
    // A field of the wrong type that a check missed is the caller's error
    // (E4502), never an internal one.
    try {
        return parse_responses_request_impl(body, resolve);
    } catch (const nlohmann::json::exception& e) {
        return fail(Error(ErrorCode::invalid_parameter, std::string("a request field has the wrong type: ") + e.what()));
    }
}

std::string turn_json(const std::string& system, const std::vector<Message>& messages, const InferenceResponse& resp) {
    InferenceRequest turns;
    turns.messages = messages;
    json msgs = chat_request_to_json(turns)["messages"];
    json answer{{"role", "assistant"}, {"content", resp.content}};
    if (!resp.tool_calls.empty()) {
        json calls = json::array();
        for (const auto& c : resp.tool_calls)
            calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        answer["tool_calls"] = std::move(calls);
    }
    msgs.push_back(std::move(answer));
    return to_wire(json{{"system", system}, {"messages", std::move(msgs)}});
}

Result<StoredTurnContent> turn_content(const std::string& json_text) {
    json j = json::parse(json_text, nullptr, false);
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
        return fail(Error(ErrorCode::internal_error, "a stored response is damaged"));
    StoredTurnContent t;
    if (j.contains("system") && j["system"].is_string()) t.system = j["system"].get<std::string>();
    L04_TRY_ASSIGN(auto r, parse_chat_request(to_wire(json{{"messages", j["messages"]}})));
    t.messages = std::move(r.messages);
    return t;
}

Result<json> output_item_of_turn(const StoredTurnContent& turn, const std::string& item_id) {
    auto missing = [&] {
        Error e(ErrorCode::invalid_parameter, "item '" + item_id.substr(0, 128) + "' not found in its stored response");
        e.http_status = 404;
        return e;
    };
    if (turn.messages.empty() || turn.messages.back().role != Role::assistant) return fail(missing());
    const Message& answer = turn.messages.back();
    if (item_id.rfind("msg_", 0) == 0) return json{{"role", "assistant"}, {"content", answer.content}};
    const auto us = item_id.rfind('_');
    if (item_id.rfind("fc_", 0) == 0 && us != std::string::npos && us > 3) {
        const std::string idx = item_id.substr(us + 1);
        if (idx.empty() || idx.size() > 4 || idx.find_first_not_of("0123456789") != std::string::npos) return fail(missing());
        const std::size_t i = static_cast<std::size_t>(std::stoul(idx));
        if (i >= answer.tool_calls.size()) return fail(missing());
        const auto& c = answer.tool_calls[i];
        return json{{"type", "function_call"}, {"call_id", c.id}, {"name", c.name}, {"arguments", c.arguments}};
    }
    return fail(missing());
}

std::string message_item_id(const std::string& response_id) { return "msg_" + response_id.substr(5); }
std::string call_item_id(const std::string& response_id, std::size_t i) {
    return "fc_" + response_id.substr(5) + "_" + std::to_string(i);
}

const char* response_status(const InferenceResponse& r) {
    if (r.finish_reason == "error") return "failed";
    if (r.finish_reason == "length" || r.finish_reason == "content_filter") return "incomplete";
    return "completed";
}

json message_item(const std::string& response_id, const std::string& text, const char* status, const std::string& refusal) {
    json content = json::array();
    if (std::string(status) != "in_progress") {
        if (!text.empty() || refusal.empty())
            content.push_back({{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}});
        if (!refusal.empty()) content.push_back({{"type", "refusal"}, {"refusal", refusal}});
    }
    return {{"id", message_item_id(response_id)}, {"type", "message"}, {"status", status}, {"role", "assistant"},
            {"content", std::move(content)}};
}

json call_item(const std::string& response_id, std::size_t i, const ToolCall& c, const char* status) {
    return {{"id", call_item_id(response_id, i)}, {"type", "function_call"}, {"status", status},
            {"call_id", c.id}, {"name", c.name}, {"arguments", c.arguments}};
}

json response_object(const std::string& id, std::int64_t created_s, const ResponsesRequest& rq,
                     const InferenceResponse* r, const std::vector<ResponseItem>& items_in, const std::string& status) {
    const json& e = rq.echo;
    auto echo = [&](const char* k, json dflt) { return e.contains(k) ? e[k] : dflt; };
    json output = json::array();
    if (r) {
        std::vector<ResponseItem> items = items_in;
        if (items.empty()) {
            if (!r->content.empty() || r->tool_calls.empty()) items.push_back({ResponseItem::Kind::message, 0});
            for (std::size_t i = 0; i < r->tool_calls.size(); ++i) items.push_back({ResponseItem::Kind::function_call, i});
        }
        for (const auto& it : items) {
            if (it.kind == ResponseItem::Kind::message) {
                auto ref = r->metadata.find("refusal");
                output.push_back(message_item(id, r->content, "completed", ref == r->metadata.end() ? "" : ref->second));
            }
            else if (it.call < r->tool_calls.size()) output.push_back(call_item(id, it.call, r->tool_calls[it.call], "completed"));
        }
    }
    json incomplete = nullptr;
    if (r && status == "incomplete")
        incomplete = {{"reason", r->finish_reason == "content_filter" ? "content_filter" : "max_output_tokens"}};
    json usage = nullptr;
    if (r)
        usage = {{"input_tokens", r->token_usage.prompt_tokens},
                 {"input_tokens_details", {{"cached_tokens", 0}}},
                 {"output_tokens", r->token_usage.completion_tokens},
                 {"output_tokens_details", {{"reasoning_tokens", 0}}},
                 {"total_tokens", r->token_usage.prompt_tokens + r->token_usage.completion_tokens}};
    json error = nullptr;
    if (r && status == "failed")
        error = {{"code", "server_error"}, {"message", "the provider ended its answer with an error (finish_reason: error)"}};
    json o{{"id", id},
           {"object", "response"},
           {"created_at", created_s},
           {"status", status},
           {"error", error},
           {"incomplete_details", incomplete},
           {"instructions", echo("instructions", nullptr)},
           {"max_output_tokens", echo("max_output_tokens", nullptr)},
           {"model", r ? json(r->model_id) : echo("model", "")},
           {"output", std::move(output)},
           {"parallel_tool_calls", echo("parallel_tool_calls", true)},
           {"previous_response_id", echo("previous_response_id", nullptr)},
           {"reasoning", {{"effort", e.contains("reasoning") && e["reasoning"].contains("effort") ? e["reasoning"]["effort"] : json(nullptr)},
                          {"summary", nullptr}}},
           {"service_tier", echo("service_tier", "default")},
           {"store", rq.store},
           {"temperature", echo("temperature", 1.0)},
           {"text", echo("text", json{{"format", {{"type", "text"}}}})},
           {"tool_choice", echo("tool_choice", "auto")},
           {"tools", echo("tools", json::array())},
           {"top_p", echo("top_p", 1.0)},
           {"truncation", "disabled"},
           {"usage", usage},
           {"user", echo("user", nullptr)},
           {"metadata", echo("metadata", json::object())}};
    if (r) o["l04"] = response_facts(*r);
    return o;
}

}  // namespace l04
