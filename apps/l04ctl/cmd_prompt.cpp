// l04ctl prompt: send a prompt and print the answer (streamed by default).
//
// Prompt assembly: TEXT arguments are joined with spaces. When standard input
// is not a terminal it is read too: with TEXT, the prompt is stdin's content,
// a blank line, then TEXT (so `cat file | l04ctl prompt "summarise"` works);
// without TEXT, stdin alone is the prompt. A terminal stdin is read only when
// no TEXT is given. --no-stdin never reads it.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

#include <l04/config/prompt_template.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/json_schema.hpp>
#include <l04/core/strings.hpp>
#include <l04/log/prompt_log.hpp>
#include <l04/router/router.hpp>
#include <l04/wire/openai_json.hpp>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace l04ctl {

namespace {

struct PromptArgs {
    std::vector<std::string> text;
    std::string model, system, agent, strategy, priority, timeout, cid, template_name, schema;
    std::vector<std::string> prefer, exclude;
    std::optional<double> max_cost_cents, max_latency_ms;
    std::vector<std::string> options, capabilities, attach, files;
    std::vector<std::pair<std::string, std::string>> params;
    std::optional<double> temperature;
    std::optional<std::int64_t> max_tokens;
    bool wait = false;
    bool cont = false, no_log = false;
    bool no_cache = false, refresh = false, no_stream = false, stream = false, json = false, explain = false,
         no_stdin = false;
};

std::string read_stdin() {
    std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return s;
}

// The largest file -a attaches: OpenAI's per-image limit (Anthropic's is
// 5 MB, and it refuses larger ones itself).
constexpr std::size_t k_max_attachment_bytes = 20u << 20;


// The image type of a file, from its first bytes; empty when it is not one
// that every vision provider reads.
std::string sniff_image_type(std::string_view b) {
    auto starts = [&](std::string_view p) { return b.substr(0, p.size()) == p; };
    if (starts("\x89PNG\r\n\x1a\n")) return "image/png";
    if (starts("\xff\xd8\xff")) return "image/jpeg";
    if (starts("GIF87a") || starts("GIF89a")) return "image/gif";
    if (b.size() >= 12 && starts("RIFF") && b.substr(8, 4) == "WEBP") return "image/webp";
    return {};
}

// An -a argument as a content part: an http(s) URL as is, a file read,
// checked and inlined as a data: URL.
l04::Result<l04::ContentPart> attachment(const std::string& arg) {
    l04::ContentPart p;
    p.kind = l04::ContentPart::Kind::image;
    if (arg.rfind("https://", 0) == 0 || arg.rfind("http://", 0) == 0) {
        p.url = arg;
        return p;
    }
    std::FILE* f = std::fopen(arg.c_str(), "rb");
    if (!f)
        return l04::fail(l04::ErrorCode::invalid_request, "cannot read the attachment '" + arg + "': " + std::strerror(errno));
    std::string bytes;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        bytes.append(buf, n);
        if (bytes.size() > k_max_attachment_bytes) break;
    }
    std::fclose(f);
    if (bytes.size() > k_max_attachment_bytes)
        return l04::fail(l04::ErrorCode::invalid_parameter,
                         "the attachment '" + arg + "' is larger than 20 MiB, the most l04ctl attaches");
    p.media_type = sniff_image_type(bytes);
    if (p.media_type.empty())
        return l04::fail(l04::ErrorCode::invalid_parameter,
                         "the attachment '" + arg + "' is not a PNG, JPEG, GIF or WebP image");
    p.data = l04::base64_encode(bytes);
    return p;
}

nlohmann::json response_json(const l04::InferenceResponse& r) {
    nlohmann::json tc = nlohmann::json::array();
    for (const auto& c : r.tool_calls) tc.push_back({{"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
    nlohmann::json j{{"request_id", r.request_id},
                     {"content", r.content},
                     {"model_id", r.model_id},
                     {"provider", r.provider},
                     {"token_usage",
                      {{"prompt_tokens", r.token_usage.prompt_tokens},
                       {"completion_tokens", r.token_usage.completion_tokens},
                       {"total_tokens", r.token_usage.total_tokens},
                       {"estimated", r.token_usage.estimated}}},
                     {"latency_ms", r.latency_ms},
                     {"cached", r.from_cache()},
                     {"cache_hit", l04::cache_hit_name(r.cache_hit)},
                     {"similarity", r.similarity},
                     {"cost_usd", r.cost_usd},
                     {"finish_reason", r.finish_reason},
                     {"tool_calls", tc},
                     {"metadata", l04::response_metadata(r)}};
    if (!r.logprobs.empty()) j["logprobs"] = nlohmann::json::parse(r.logprobs, nullptr, false);
    if (!r.more_choices.empty()) {
        nlohmann::json more = nlohmann::json::array();
        for (const auto& c : r.more_choices) more.push_back({{"content", c.content}, {"finish_reason", c.finish_reason}});
        j["more_choices"] = std::move(more);
    }
    return j;
}

void usage_line(const Context& ctx, const l04::InferenceResponse& r) {
    Style st{ctx.color_stderr()};
    char cost[32];
    std::snprintf(cost, sizeof cost, "$%.6f", r.cost_usd);
    char lat[32];
    std::snprintf(lat, sizeof lat, "%.1f ms", r.latency_ms);
    std::string cache = r.from_cache() ? std::string("cache: ") + std::string(l04::cache_hit_name(r.cache_hit)) : "cache: miss";
    if (r.cache_hit == l04::CacheHit::semantic) {
        char sim[32];
        std::snprintf(sim, sizeof sim, " (%.3f)", r.similarity);
        cache += sim;
    } else if (!r.from_cache() && r.cache_refusal) {
        // A cached prompt was close enough but not served: say why.
        char sim[32];
        std::snprintf(sim, sizeof sim, "%.3f", r.cache_refusal->similarity);
        const std::string& why = r.cache_refusal->reason;
        cache += std::string(" (a cached prompt at ") + sim +
                 (why == "ambiguous" ? " was ambiguous)" : " refused by the guard: " + why + ")");
    }
    std::fprintf(stderr, "%s[%s via %s] %lld+%lld tokens%s, %s, %s, %s%s\n", st.dim(), r.model_id.c_str(),
                 r.provider.c_str(), static_cast<long long>(r.token_usage.prompt_tokens),
                 static_cast<long long>(r.token_usage.completion_tokens), r.token_usage.estimated ? " (est.)" : "",
                 cost, lat, cache.c_str(), st.reset());
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        if (c < 0x80) n = 0;
        else if ((c >> 5) == 0x6) n = 1;
        else if ((c >> 4) == 0xE) n = 2;
        else if ((c >> 3) == 0x1E) n = 3;
        else return false;
        if (i + n >= s.size()) return false;  // cut short
        std::uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1Fu) : n == 2 ? (c & 0x0Fu) : (c & 0x07u);
        for (std::size_t k = 1; k <= n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

// A --file argument's text: at most 10 MiB, UTF-8 text (no NUL bytes).
l04::Result<std::string> text_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return l04::fail(l04::ErrorCode::invalid_request, "cannot read '" + path + "': " + std::strerror(errno));
    std::string bytes;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        bytes.append(buf, n);
        if (bytes.size() > (10u << 20)) break;
    }
    std::fclose(f);
    if (bytes.size() > (10u << 20))
        return l04::fail(l04::ErrorCode::invalid_parameter, "'" + path + "' is larger than 10 MiB, the most --file reads");
    if (bytes.find('\0') != std::string::npos)
        return l04::fail(l04::ErrorCode::invalid_parameter,
                         "'" + path + "' is not text (it has NUL bytes); images go with -a");
    // Sent as JSON text: bytes that are not UTF-8 would be replaced on the
    // way, and the model would read another file than the user's.
    if (!valid_utf8(bytes))
        return l04::fail(l04::ErrorCode::invalid_parameter,
                         "'" + path + "' is not UTF-8 text (convert it first, e.g. iconv -f latin1 -t utf-8)");
    return bytes;
}

// OpenAI's strict mode needs every property required and no others; a
// schema that is not so is sent without it.
bool schema_is_strict(const nlohmann::json& s) {
    if (!s.is_object() || s.value("additionalProperties", nlohmann::json(true)) != false) return false;
    if (!s.contains("properties") || !s["properties"].is_object()) return false;
    if (!s.contains("required") || !s["required"].is_array() || s["required"].size() != s["properties"].size()) return false;
    for (const auto& [k, v] : s["properties"].items())
        if (v.is_object() && v.value("type", "") == "object" && !schema_is_strict(v)) return false;
    return true;
}

// "" when content is JSON matching schema (a ```json fence around it is
// allowed), else why not.
std::string check_structured(const nlohmann::json& schema, std::string& content) {
    std::string_view t = l04::trim(content);
    if (t.rfind("```", 0) == 0 && t.size() >= 6 && t.substr(t.size() - 3) == "```") {
        t.remove_prefix(t.find('\n') == std::string_view::npos ? 3 : t.find('\n') + 1);
        t.remove_suffix(3);
        t = l04::trim(t);
    }
    auto j = nlohmann::json::parse(t, nullptr, false);
    if (j.is_discarded()) return "the answer is not JSON";
    if (auto why = l04::schema_violation(schema, j); !why.empty()) return why;
    content = std::string(t);
    return {};
}

// The prompt's text: TEXT, stdin and the --file blocks, as the top of this
// file says. `other_input`: attachments, files or a template that needs no
// input, so that a terminal is not waited on when no TEXT is given.
l04::Result<std::string> gather_prompt(const Context& ctx, const PromptArgs& a, bool other_input) {
    std::string arg_text;
    for (std::size_t i = 0; i < a.text.size(); ++i) arg_text += (i ? " " : "") + a.text[i];
    std::string prompt = arg_text;
    const bool stdin_tty = ::isatty(0);
    if (!a.no_stdin && (!stdin_tty || (arg_text.empty() && !other_input))) {
        if (stdin_tty && !ctx.globals.quiet) std::fprintf(stderr, "l04ctl: reading the prompt from the terminal; end with Ctrl-D\n");
        std::string in = read_stdin();
        while (!in.empty() && (in.back() == '\n' || in.back() == '\r' || in.back() == ' ' || in.back() == '\t'))
            in.pop_back();
        if (!l04::trim(in).empty()) prompt = arg_text.empty() ? in : in + "\n\n" + arg_text;
    }
    // --file: each text file, named, before the prompt's text.
    if (!a.files.empty()) {
        std::string blocks;
        for (const auto& path : a.files) {
            L04_TRY_ASSIGN(auto text, text_file(path));
            blocks += "--- " + path + " ---\n" + text + (text.empty() || text.back() == '\n' ? "" : "\n") +
                      "--- end of " + path + " ---\n\n";
        }
        prompt = blocks + prompt;
        while (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
    }
    return prompt;
}

// -t NAME: the template's prompt around the input (input it does not place
// goes after it), its system prompt unless -s gave one, and its model,
// temperature, max tokens and schema where no flag gave them.
l04::Status apply_template(const l04::PromptTemplate& tpl, PromptArgs& a, std::string& prompt, std::string& system) {
    std::map<std::string, std::string> values = tpl.defaults;
    for (const auto& [k, v] : a.params) values[k] = v;
    const auto used_prompt = l04::template_params(tpl.prompt);
    const auto used_system = l04::template_params(tpl.system);
    for (const auto& kv : a.params) {
        if (std::find(used_prompt.begin(), used_prompt.end(), kv.first) == used_prompt.end() &&
            std::find(used_system.begin(), used_system.end(), kv.first) == used_system.end())
            return l04::fail(l04::ErrorCode::invalid_parameter,
                             "the template '" + tpl.name + "' has no parameter '" + kv.first + "'");
    }
    values["input"] = prompt;
    bool used_input = false;
    if (!tpl.prompt.empty()) {
        L04_TRY_ASSIGN(auto filled, l04::fill_template(tpl.prompt, values, used_input));
        prompt = used_input || l04::trim(prompt).empty() ? filled : filled + "\n\n" + prompt;
    }
    if (system.empty() && !tpl.system.empty()) {
        bool unused = false;
        L04_TRY_ASSIGN(auto filled, l04::fill_template(tpl.system, values, unused));
        system = std::move(filled);
    }
    if (a.model.empty()) a.model = tpl.model;
    if (!a.temperature) a.temperature = tpl.temperature;
    if (!a.max_tokens) a.max_tokens = tpl.max_tokens;
    if (a.schema.empty()) a.schema = tpl.schema;
    return {};
}

// The new user turn: the prompt's text, then each attachment in the order given.
l04::Result<l04::Message> user_message(const std::string& prompt, const std::vector<std::string>& attach) {
    l04::Message msg;
    msg.role = l04::Role::user;
    msg.content = prompt;
    if (attach.empty()) return msg;
    if (!l04::trim(prompt).empty()) {
        l04::ContentPart text;
        text.text = prompt;
        msg.parts.push_back(std::move(text));
    }
    for (const auto& arg : attach) {
        L04_TRY_ASSIGN(auto part, attachment(arg));
        msg.parts.push_back(std::move(part));
    }
    return msg;
}

// The conversation a prompt continues (-c, --cid) and how many messages of
// it went into the request.
struct History {
    std::string conversation_id;
    std::size_t messages = 0;
};

// -c / --cid: the conversation's earlier turns go first, and its system
// prompt and model unless given.
l04::Result<History> add_history(const Context& ctx, const PromptArgs& a, l04::InferenceRequest& req) {
    History h;
    if (!a.cont && a.cid.empty()) return h;
    L04_TRY_ASSIGN(auto log, l04::PromptLog::open(ctx.settings.state_dir()));
    h.conversation_id = a.cid;
    if (h.conversation_id.empty()) {
        L04_TRY_ASSIGN(auto latest, log->latest_conversation());
        if (latest.empty())
            return l04::fail(l04::ErrorCode::invalid_request,
                             "there is no earlier conversation to continue (the prompt log is empty)");
        h.conversation_id = std::move(latest);
    }
    L04_TRY_ASSIGN(auto turns, log->conversation(h.conversation_id));
    if (turns.empty())
        return l04::fail(l04::ErrorCode::invalid_request,
                         "no conversation '" + h.conversation_id + "' in the prompt log (see `l04ctl logs`)");
    L04_TRY_ASSIGN(auto earlier, history_messages(turns));
    h.messages = earlier.size();
    req.messages = std::move(earlier);
    if (a.system.empty()) req.system_prompt = turns.back().system;
    if (a.model.empty()) req.model = turns.back().model;
    return h;
}

// Everything else the flags say about the request: sampling, routing,
// priority, timeout, cache, options and the answer's schema.
l04::Status set_request_fields(Context& ctx, const PromptArgs& a, const std::optional<nlohmann::json>& schema,
                               const std::optional<l04::PromptTemplate>& tpl, l04::InferenceRequest& req) {
    req.temperature = a.temperature;
    req.max_tokens = a.max_tokens;
    req.agent_did = !a.agent.empty() ? a.agent : ctx.settings.get("agent");
    req.strategy = a.strategy;
    req.capabilities = a.capabilities;
    req.constraints.preferred_providers = a.prefer;
    req.constraints.excluded_providers = a.exclude;
    req.constraints.max_cost_cents = a.max_cost_cents;
    req.constraints.max_latency_ms = a.max_latency_ms;
    if (!a.priority.empty()) {
        auto p = l04::parse_priority(a.priority);
        if (!p) return l04::fail(l04::ErrorCode::invalid_parameter, "--priority must be high, normal or low");
        req.priority = *p;
    }
    if (!a.timeout.empty()) {
        auto ms = l04::parse_duration_ms(a.timeout);
        if (!ms) return l04::fail(l04::ErrorCode::invalid_parameter, "--timeout must be a duration like 30s");
        req.timeout_ms = *ms;
        ctx.request_timeout_ms = *ms;
    }
    req.wait_for_limits = a.wait;
    if (a.no_cache) req.cache_mode = l04::CacheMode::bypass;
    else if (a.refresh) req.cache_mode = l04::CacheMode::refresh;
    if (tpl) req.options = tpl->options;  // -o below overrides them
    if (schema) {
        // The provider is asked for JSON of this shape; the answer is checked after it.
        req.response_format = l04::to_wire(nlohmann::json{
            {"type", "json_schema"},
            {"json_schema", {{"name", "output"}, {"schema", *schema}, {"strict", schema_is_strict(*schema)}}}});
    }
    return add_option_flags(a.options, req.options);
}

// Reports an error of the call to l04d. A missing or refused key while l04d
// runs with another environment than this shell (started before the key
// was exported) gets a note saying so.
int report_call_error(const Context& ctx, const l04::Error& e) {
    const int code = report(e);
    if (!ctx.globals.no_daemon &&
        (e.code == l04::ErrorCode::provider_not_configured || e.code == l04::ErrorCode::auth_failed)) {
        if (const std::string diff = daemon_provider_env_difference(ctx.settings); !diff.empty())
            std::fprintf(stderr,
                         "l04ctl: note: the running l04d was started with another %s than this shell has; "
                         "`l04ctl daemon restart` starts it with this one\n",
                         diff.c_str());
    }
    return code;
}

// --explain: the routing decision instead of an answer.
int print_route(const nlohmann::json& j, bool as_json) {
    if (as_json) {
        std::printf("%s\n", j.dump(2).c_str());
        return k_ok;
    }
    using l04::json_field;
    using nlohmann::json;
    std::printf("strategy: %s\nprimary:  %s\n", json_field<std::string>(j, "strategy", "?").c_str(),
                json_field<std::string>(j, "primary", "?").c_str());
    std::string fb;
    for (const auto& f : json_field<json>(j, "fallbacks", json::array()))
        if (f.is_string()) fb += (fb.empty() ? "" : ", ") + f.get<std::string>();
    std::printf("fallbacks: %s\n", fb.empty() ? "(none)" : fb.c_str());
    if (const auto note = json_field<std::string>(j, "note", ""); !note.empty()) std::printf("note:     %s\n", note.c_str());
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : json_field<json>(j, "candidates", json::array())) {
        char sc[32];
        std::snprintf(sc, sizeof sc, "%.3f", json_field(n, "score", 0.0));
        const bool kept = json_field(n, "kept", false);
        rows.push_back({json_field<std::string>(n, "model", "?"), kept ? "kept" : "dropped", kept ? sc : "",
                        json_field<std::string>(n, "reason", "")});
    }
    print_table({"MODEL", "", "SCORE", "WHY"}, rows);
    return k_ok;
}

// A request on its way to l04d and what the answer is checked against.
struct Call {
    l04::ApiClient& client;
    const l04::InferenceRequest& req;
    const l04::ClientRequest& creq;
    const std::optional<nlohmann::json>& schema;
    const std::string& conversation_id;
};

// --no-stream, --json or a schema: the whole answer, checked, then printed.
int answer_whole(Context& ctx, const PromptArgs& a, const Call& call) {
    auto r = call.client.call(call.creq);
    if (!r) return report_call_error(ctx, r.error());
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return report(l04::Error(l04::ErrorCode::parse_error, "l04d sent a body that is not JSON"));
    if (r->status != 200) return report_call_error(ctx, l04::error_from_json(j, r->status));
    l04::InferenceResponse resp = l04::response_from_json(j);
    if (call.schema) {
        const std::string schema_error = check_structured(*call.schema, resp.content);
        if (!schema_error.empty()) {
            if (a.json) {
                auto out = response_json(resp);
                out["schema_error"] = schema_error;
                std::printf("%s\n", out.dump(2).c_str());
            }
            return report(l04::Error(l04::ErrorCode::parse_error,
                                     "the answer does not match the schema: " + schema_error +
                                         (a.json ? "" : " (--json prints the answer as it came)")));
        }
    }
    if (a.json) {
        auto out = response_json(resp);
        log_prompt(ctx, call.req, call.conversation_id, resp, &out);
        const auto& parts = call.req.messages.back().parts;
        std::size_t images = 0;
        for (const auto& p : parts) images += p.is_image() ? 1 : 0;
        out["sent"] = {{"parts", parts.empty() ? std::size_t{1} : parts.size()}, {"images", images}};
        std::printf("%s\n", out.dump(2).c_str());
    } else {
        log_prompt(ctx, call.req, call.conversation_id, resp, nullptr);
        std::fwrite(resp.content.data(), 1, resp.content.size(), stdout);
        if (resp.content.empty() || resp.content.back() != '\n') std::fputc('\n', stdout);
        // fwrite may have hit EPIPE itself (a large write), so ferror too.
        if ((std::fflush(stdout) != 0 || std::ferror(stdout)) && errno == EPIPE) return k_broken_pipe;
    }
    if (ctx.globals.verbose > 0 || (ctx.stderr_tty() && !ctx.globals.quiet && !a.json)) usage_line(ctx, resp);
    return k_ok;
}

// Streaming: each piece of the answer printed as it arrives.
int answer_streamed(Context& ctx, const Call& call) {
    bool ended_with_newline = true;
    bool printed = false;
    bool broken_pipe = false;
    ChatStream stream([&](const std::string& s) {
        const bool wrote = std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
        if ((!wrote || std::fflush(stdout) != 0 || std::ferror(stdout)) && errno == EPIPE) {
            // The reader is gone (`| head -c 20`): stop here; closing the
            // connection makes l04d cancel the upstream call.
            broken_pipe = true;
            return false;
        }
        ended_with_newline = s.back() == '\n';
        printed = true;
        return true;
    });
    auto r = call.client.call(call.creq, [&](std::string_view piece) { return stream.feed(piece); });
    if (broken_pipe) return k_broken_pipe;  // silent, as a shell pipeline expects
    if (!r) {
        if (printed && !ended_with_newline) std::fputc('\n', stdout);
        return report_call_error(ctx, r.error());
    }
    // An error before any output comes as a JSON body with its status.
    if (r->status != 200) return report_call_error(ctx, stream.http_error(r->status));
    if (printed && !ended_with_newline) std::fputc('\n', stdout);
    if ((std::fflush(stdout) != 0 || std::ferror(stdout)) && errno == EPIPE) return k_broken_pipe;
    if (stream.error) return report_call_error(ctx, *stream.error);
    if (!stream.done)
        return report(l04::Error(l04::ErrorCode::streaming_error, "the stream ended without its final event"));
    log_prompt(ctx, call.req, call.conversation_id, stream.response, nullptr);
    if (ctx.globals.verbose > 0 || (ctx.stderr_tty() && !ctx.globals.quiet)) usage_line(ctx, stream.response);
    return k_ok;
}

int run_prompt(Context& ctx, PromptArgs& a) {
    if (int rc = ctx.load()) return rc;
    ctx.no_log = a.no_log;
    std::optional<l04::PromptTemplate> tpl;
    if (!a.template_name.empty()) {
        auto t = l04::load_template(ctx.settings.config_dir(), a.template_name);
        if (!t) return report(t.error());
        tpl = std::move(*t);
    } else if (!a.params.empty()) {
        return report(l04::Error(l04::ErrorCode::invalid_parameter, "-p fills a template's parameters: use it with -t NAME"));
    }
    const bool template_wants_input =
        tpl && (tpl->prompt.empty() || tpl->prompt.find("{input}") != std::string::npos);
    auto prompt = gather_prompt(ctx, a, !a.attach.empty() || !a.files.empty() || (tpl && !template_wants_input));
    if (!prompt) return report(prompt.error());
    std::string system = a.system;
    if (tpl)
        if (auto st = apply_template(*tpl, a, *prompt, system); !st) return report(st.error());
    std::optional<nlohmann::json> schema;
    if (!a.schema.empty()) {
        auto s = l04::load_schema_arg(a.schema);
        if (!s) return report(s.error());
        schema = std::move(*s);
    }
    if (l04::trim(*prompt).empty() && a.attach.empty()) {
        return report(l04::Error(l04::ErrorCode::invalid_request,
                                 "the prompt is empty: give TEXT or pipe it on stdin (l04ctl prompt \"question\")"));
    }

    l04::InferenceRequest req;
    req.model = a.model;
    req.system_prompt = system;
    auto msg = user_message(*prompt, a.attach);
    if (!msg) return report(msg.error());
    auto history = add_history(ctx, a, req);
    if (!history) return report(history.error());
    req.messages.push_back(std::move(*msg));
    if (auto st = set_request_fields(ctx, a, schema, tpl, req); !st) return report(st.error());
    // A structured answer is checked whole before any of it is printed.
    const bool streaming = !a.json && !a.no_stream && !schema;
    req.stream = streaming;

    auto client = ctx.client(true);
    if (!client) return report(client.error());
    fit_context(ctx, **client, req, history->messages);
    // Invalid UTF-8 in the prompt (a binary file on stdin) becomes U+FFFD
    // instead of aborting l04ctl.
    const std::string body = l04::to_wire(l04::chat_request_to_json(req));
    if (a.explain) {
        auto j = call_json(**client, "POST", "/v1/route", body);
        if (!j) return report_call_error(ctx, j.error());
        return print_route(*j, a.json);
    }
    const l04::ClientRequest creq{"POST", "/v1/chat/completions", body, {}};
    const Call call{**client, req, creq, schema, history->conversation_id};
    return streaming ? answer_streamed(ctx, call) : answer_whole(ctx, a, call);
}

}  // namespace

l04::Status add_option_flags(const std::vector<std::string>& flags, std::map<std::string, l04::OptionValue>& out) {
    for (const auto& o : flags) {
        auto eq = o.find('=');
        if (eq == std::string::npos || eq == 0)
            return l04::fail(l04::ErrorCode::invalid_parameter, "-o takes key=value, got '" + o + "'");
        auto v = l04::option_from_text(o.substr(eq + 1));
        if (v.kind == l04::OptionValue::Kind::json) {
            // JSON the way l04d will read it, so the cache key is the same either way.
            auto j = nlohmann::json::parse(v.text, nullptr, false);
            if (j.is_discarded())
                return l04::fail(l04::ErrorCode::invalid_parameter, "-o " + o.substr(0, eq) + ": not valid JSON");
            v.text = l04::to_wire(j);
        }
        out[o.substr(0, eq)] = std::move(v);
    }
    return {};
}

// The earlier turns of a conversation as messages (user, assistant, ...),
// each user message as it was sent (its images too).
l04::Result<std::vector<l04::Message>> history_messages(const std::vector<l04::LoggedPrompt>& turns) {
    nlohmann::json msgs = nlohmann::json::array();
    for (const auto& t : turns) {
        auto m = nlohmann::json::parse(t.message_json, nullptr, false);
        if (!m.is_object()) m = {{"role", "user"}, {"content", t.prompt}};
        msgs.push_back(std::move(m));
        msgs.push_back({{"role", "assistant"}, {"content", t.response}});
    }
    msgs.push_back({{"role", "user"}, {"content", "-"}});  // a placeholder for the new turn
    L04_TRY_ASSIGN(auto parsed, l04::parse_chat_request(l04::to_wire(nlohmann::json{{"messages", std::move(msgs)}})));
    auto out = std::move(parsed.messages);
    out.pop_back();
    return out;
}

// Drops the oldest turns until the conversation fits the model's context
// window (leaving room for the answer); says so on stderr.
void fit_context(const Context& ctx, l04::ApiClient& client, l04::InferenceRequest& req, std::size_t history) {
    if (history == 0 || req.model.empty()) return;
    auto info = call_json(client, "GET", "/v1/models/" + req.model);
    if (!info || !info->contains("l04")) return;
    const std::int64_t window = (*info)["l04"].value("context_window", std::int64_t{0});
    if (window <= 0) return;
    const std::int64_t max_out = (*info)["l04"].value("max_output_tokens", std::int64_t{0});
    // Room for the answer: max_tokens, else 1,024 tokens (less when the model's output limit is lower).
    const std::int64_t reserve = req.max_tokens ? *req.max_tokens : std::min<std::int64_t>(max_out > 0 ? max_out : l04::k_default_answer_tokens, l04::k_default_answer_tokens);
    std::size_t dropped = 0;
    while (history >= 2 && l04::estimate_prompt_tokens(req) + reserve > window) {
        req.messages.erase(req.messages.begin(), req.messages.begin() + 2);
        history -= 2;
        ++dropped;
    }
    if (dropped && !ctx.globals.quiet)
        std::fprintf(stderr,
                     "l04ctl: note: the conversation is longer than %s's context window (%lld tokens): its %zu "
                     "oldest turn(s) are not sent\n",
                     req.model.c_str(), static_cast<long long>(window), dropped);
}

// Records a finished prompt in the log (a warning when it cannot).
void log_prompt(const Context& ctx, const l04::InferenceRequest& req, const std::string& conversation_id,
                const l04::InferenceResponse& resp, nlohmann::json* json_out) {
    if (!ctx.settings.get_bool("log.prompts") || ctx.no_log) return;
    auto log = l04::PromptLog::open(ctx.settings.state_dir());
    l04::LoggedPrompt p;
    p.conversation_id = conversation_id;
    p.ts_ms = l04::SystemClock::instance().wall_ms();
    p.model = resp.model_id;
    p.provider = resp.provider;
    p.system = req.system_prompt;
    p.prompt = req.messages.back().content;
    p.message_json = l04::to_wire(l04::chat_request_to_json(req)["messages"].back());
    p.response = resp.content;
    p.prompt_tokens = resp.token_usage.prompt_tokens;
    p.completion_tokens = resp.token_usage.completion_tokens;
    p.cost_usd = resp.cost_usd;
    p.cached = resp.from_cache();
    p.request_id = resp.request_id;
    l04::Status st = log ? (*log)->record(p, ctx.settings.get_duration_ms("log.retention")) : l04::Status(l04::fail(log.error()));
    if (!st) {
        if (!ctx.globals.quiet) std::fprintf(stderr, "l04ctl: warning: the prompt was not logged: %s\n", st.error().to_string().c_str());
        return;
    }
    if (json_out) {
        (*json_out)["conversation_id"] = p.conversation_id;
        (*json_out)["log_id"] = p.id;
    }
}

void add_prompt(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<PromptArgs>();
    auto* c = app.add_subcommand("prompt", "Send a prompt; the answer goes to stdout (streamed)");
    c->footer(
        "Prompt: TEXT words are joined with spaces. If stdin is not a terminal it is read as well and put\n"
        "before TEXT, separated by a blank line; with no TEXT, stdin alone is the prompt.\n"
        "Attachments (-a): images go after the text, in order; a model without vision refuses them (E4502).\n"
        "Options (-o) are typed: numbers stay numbers, true/false are booleans. Fields a provider cannot honour\n"
        "are refused with E4502 (exit 3), never dropped; `docs/providers.md` lists every field per provider.\n"
        "Mock options (-o): reply=TEXT latency_ms=N chunk_delay_ms=N fail_status=N retry_after=S\n"
        "fail_after_chunks=N usage_prompt_tokens=N usage_completion_tokens=N");
    c->add_option("text", a->text, "Prompt text (joined with spaces)");
    c->add_option("-m,--model", a->model, "Model id or alias (see `l04ctl models list`); default: routed");
    c->add_option("-s,--system", a->system, "System prompt");
    c->add_option("--temperature", a->temperature, "Sampling temperature (0..2)");
    c->add_option("--max-tokens", a->max_tokens, "Maximum tokens in the answer");
    c->add_option("-a,--attach", a->attach,
                  "Attach an image: a PNG, JPEG, GIF or WebP file (up to 20 MiB) or an http(s) URL (repeatable); "
                  "routing then needs the vision capability")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("-o,--option", a->options,
                  "Provider option key=value (repeatable), sent typed in the provider's native form: Ollama options, "
                  "Anthropic top_k, Gemini top_k/thinking_budget, any top-level field for OpenAI-compatible servers; "
                  "an option the provider does not know is refused")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("--agent", a->agent, "Agent identity for limits, budgets and usage (default: config `agent`)");
    c->add_option("--strategy", a->strategy, "Routing strategy: " + l04::strategy_help());
    c->add_option("--prefer", a->prefer, "Try this provider's models first (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("--exclude", a->exclude, "Never route to this provider (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("--max-cost-cents", a->max_cost_cents, "Only models whose estimated cost for this prompt is at most this")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--max-latency-ms", a->max_latency_ms, "Only models whose typical latency is at most this")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--capability", a->capabilities, "Required capability (repeatable): code, vision, tool_use, ...")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("--priority", a->priority, "Queue priority: high, normal, low");
    c->add_option("--timeout", a->timeout, "Give up after this long (e.g. 30s)");
    c->add_flag("--wait", a->wait, "When rate limited, wait for the bucket (bounded by --timeout) instead of failing");
    c->add_flag("--no-cache", a->no_cache, "Neither read nor write the response cache");
    c->add_flag("--refresh", a->refresh, "Skip the cache lookup but store the new answer");
    c->add_flag("--no-stream", a->no_stream, "Print the answer when complete instead of streaming");
    c->add_flag("--json", a->json, "Print the whole response (InferenceResponse) as one JSON object");
    c->add_flag("--explain", a->explain, "Show the routing decision without calling any provider");
    c->add_flag("--no-stdin", a->no_stdin, "Never read standard input");
    c->add_option("-t,--template", a->template_name,
                  "Use a saved template ($XDG_CONFIG_HOME/l04/templates/NAME.toml; see `l04ctl templates`)");
    c->add_option("-p,--param", a->params, "A template parameter: -p NAME VALUE (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_option("--schema", a->schema,
                  "Ask for JSON of this shape and check the answer: a JSON Schema file, inline JSON, or fields "
                  "like 'name str, age int, tags [str]'; a non-matching answer is E4600 (exit 6)");
    c->add_option("-f,--file", a->files, "Put a text file's content (named) before the prompt (repeatable)")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    c->add_flag("-c,--continue", a->cont,
                "Continue the most recent conversation: its earlier turns are sent first (oldest dropped when they "
                "exceed the model's context window); its model and system prompt unless -m / -s say otherwise");
    c->add_option("--cid", a->cid, "Continue the conversation with this id (see `l04ctl logs`)");
    c->add_flag("--no-log", a->no_log, "Do not record this prompt in the prompt log (see log.prompts)");
    c->callback([&ctx, a] { g_exit = run_prompt(ctx, *a); });
}

}  // namespace l04ctl
