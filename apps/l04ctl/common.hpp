#pragma once
// Shared state and helpers of l04ctl's subcommands.
#include <l04/client/client.hpp>
#include <l04/config/settings.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>
#include <l04/log/prompt_log.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <chrono>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace l04ctl {

// Exit codes (documented in --help, l04ctl(1) and the README).
enum Exit : int {
    k_ok = 0,
    k_internal = 1,       // internal error, or `health` reports unhealthy
    k_usage = 2,          // bad command line
    k_invalid = 3,        // invalid request: empty prompt, unknown model, bad parameter
    k_auth = 4,           // a provider refused the credentials
    k_rate_limited = 5,   // rate limit, budget or queue full: retry later
    k_unavailable = 6,    // all providers failed / circuit open / bad provider response
    k_timeout = 7,        // timeout or deadline passed
    k_daemon = 8,         // l04d unavailable / not running
    k_config = 9,         // configuration error (file, key, provider not configured)
    k_sigint = 130,       // interrupted (Ctrl-C): 128 + SIGINT, as a shell reports it
    k_broken_pipe = 141,  // stdout closed early (`| head`): 128 + SIGPIPE, nothing printed
};

// Maps an l04 error code to the exit status.
int exit_code_for(l04::ErrorCode code);

struct Globals {
    bool no_daemon = false;
    std::string config;
    int verbose = 0;
    bool quiet = false;
};

class Context {
public:
    Globals globals;
    // Loaded after parsing; flags set here are the highest settings layer.
    l04::Settings settings = l04::Settings::defaults();
    std::map<std::string, std::string> setting_flags;
    // Longest request this run may make (ms); the socket wait exceeds it.
    std::int64_t request_timeout_ms = 0;
    // --no-log: this run records nothing in the prompt log.
    bool no_log = false;

    // Loads settings (once). Returns an exit code on failure (printed).
    int load();
    // load(), but a broken config file falls back to the environment and
    // defaults (with a warning): `daemon stop|status` need only the runtime directory.
    int load_for_daemon_control();
    // A client: in-process with --no-daemon, else the daemon, started on
    // demand when start_daemon is true. nullptr when not running and not
    // started (the message is printed by the caller).
    // read_timeout: how long to wait for l04d's answer (0: the request's
    // timeout + 30 s, for prompts). Status-like commands pass a few seconds,
    // so a stopped or stuck daemon cannot hang a script.
    l04::Result<std::unique_ptr<l04::ApiClient>> client(bool start_daemon,
                                                        std::chrono::milliseconds read_timeout = std::chrono::milliseconds(0));

    bool stdout_tty() const;
    bool stderr_tty() const;
    bool color_stderr() const;
    bool color_stdout() const;

private:
    bool m_loaded = false;
};

// Prints "l04ctl: E4001 model_not_found: ..." once on stderr; returns its exit code.
int report(const l04::Error& e);
// The provider variables (OPENAI_API_KEY, ...) whose values differ between
// this process's settings and those l04d started with (its /admin/status
// "provider_env"), comma-separated; "" when they agree or l04d does not say.
std::string provider_env_difference(const l04::Settings& mine, const nlohmann::json& status);
// Asks l04d for its status (client.status_timeout) and returns the above.
std::string daemon_provider_env_difference(const l04::Settings& mine);
// Prints the daemon-not-running message for read-only commands.
int report_not_running(const Context& ctx);
// Performs a JSON call; maps non-2xx answers to Errors.
l04::Result<nlohmann::json> call_json(l04::ApiClient& c, const std::string& method, const std::string& path,
                                      const std::string& body = {});

// `-o key=value` flags (cmd_prompt.cpp, shared with `chat`) into typed
// options; JSON values in l04d's canonical spelling, so the cache key is the
// same in-process and through l04d. E4502 on a malformed flag.
l04::Status add_option_flags(const std::vector<std::string>& flags, std::map<std::string, l04::OptionValue>& out);

// Conversations (cmd_prompt.cpp), shared with `chat`.
// The earlier turns (user message as sent, then the answer) as messages.
l04::Result<std::vector<l04::Message>> history_messages(const std::vector<l04::LoggedPrompt>& turns);
// Drops the oldest turns (history = how many leading messages are earlier
// turns) until the request fits the model's context window; says so.
void fit_context(const Context& ctx, l04::ApiClient& client, l04::InferenceRequest& req, std::size_t history);
// Records a finished exchange in the prompt log (unless log.prompts is off
// or --no-log); sets conversation_id/log_id in json_out when given.
void log_prompt(const Context& ctx, const l04::InferenceRequest& req, const std::string& conversation_id,
                const l04::InferenceResponse& resp, nlohmann::json* json_out);

// Reads l04d's streamed chat answer (chat.completion.chunk SSE events), for
// `prompt` and `chat`.
class ChatStream {
public:
    // on_text gets each non-empty piece of answer text as it arrives;
    // returning false stops the reading.
    explicit ChatStream(std::function<bool(const std::string&)> on_text) : m_on_text(std::move(on_text)) {}
    // Feeds body bytes; false once on_text asked to stop.
    bool feed(std::string_view piece);
    // The error a non-200 answer's body describes.
    l04::Error http_error(int status) const;
    bool done = false;                // [DONE] was seen
    std::optional<l04::Error> error;  // an error event in the stream
    l04::InferenceResponse response;  // the final event's facts and finish_reason; content: all the text

private:
    void event(std::string_view data);
    std::function<bool(const std::string&)> m_on_text;
    std::string m_pending;
    bool m_stop = false;
};

// Subcommand registration (one file each).
void add_prompt(CLI::App& app, Context& ctx);
void add_models(CLI::App& app, Context& ctx);
void add_health(CLI::App& app, Context& ctx);
void add_cache(CLI::App& app, Context& ctx);
void add_daemon(CLI::App& app, Context& ctx);
void add_config(CLI::App& app, Context& ctx);
void add_usage(CLI::App& app, Context& ctx);
void add_limits(CLI::App& app, Context& ctx);
void add_batch(CLI::App& app, Context& ctx);
void add_logs(CLI::App& app, Context& ctx);
void add_completion(CLI::App& app, Context& ctx);
void add_templates(CLI::App& app, Context& ctx);
void add_chat(CLI::App& app, Context& ctx);
void add_embed(CLI::App& app, Context& ctx);

// The run result of the selected subcommand.
extern int g_exit;

// ANSI helpers (empty strings when colour is off).
struct Style {
    bool on;
    const char* dim() const { return on ? "\033[2m" : ""; }
    const char* bold() const { return on ? "\033[1m" : ""; }
    const char* red() const { return on ? "\033[31m" : ""; }
    const char* green() const { return on ? "\033[32m" : ""; }
    const char* yellow() const { return on ? "\033[33m" : ""; }
    const char* reset() const { return on ? "\033[0m" : ""; }
};

// Prints rows as an aligned table on stdout.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

}  // namespace l04ctl
