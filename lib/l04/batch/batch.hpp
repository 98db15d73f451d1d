#pragma once
// Batch inference: JSON lines of prompts in, JSON lines of results out. One
// implementation for `l04ctl batch` (over l04d's API) and l04d's
// POST /v1/batch (in the daemon): the input format, the result format and the
// worker pool that waits out rate limits live here.
//
// Input, one item a line (blank lines are skipped, line numbers still count):
//   - a line that is not JSON: the line is the prompt;
//   - a JSON string: the prompt;
//   - a JSON object: "id" (string or integer; default: the line number),
//     "prompt" (string) and/or "messages" (chat messages, as in
//     /v1/chat/completions), "system", "model", any chat-completions field
//     (temperature, max_tokens, response_format, ...), the l04 fields
//     "strategy", "capabilities", "priority", "agent", "timeout" (a duration:
//     "30s" or seconds), "cache" ("use", "bypass", "refresh"), "options"
//     (provider options, as `-o`), or a whole "l04" object.
// Result, one line an item: {"id", "line", "content", "model", "provider",
// "usage": {prompt_tokens, completion_tokens, total_tokens, estimated},
// "cost_usd", "cached", "cache_hit", "finish_reason", "latency_ms",
// "request_id", "error": null} or {"id", "line", "error": {"code", "type",
// "message"}, "exit": N}.
#include <l04/core/clock.hpp>
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

// What the command line sets for every item that does not set it itself.
struct BatchDefaults {
    std::string model;
    std::string system;
    std::string agent;
    std::string strategy;
    std::optional<std::int64_t> timeout_ms;  // per item
    std::optional<double> temperature;
    std::optional<std::int64_t> max_tokens;
    Priority priority = Priority::low;       // batch work yields to interactive prompts
    CacheMode cache_mode = CacheMode::use;
};

struct BatchItem {
    std::size_t line = 0;         // 1-based line number in the input
    nlohmann::json id;            // the input's "id", or the line number
    std::string key;              // id as compact JSON: the resume key
    std::optional<InferenceRequest> request;
    std::optional<Error> error;   // the line could not be read
};

// Reads one input line (without its newline). Never throws.
BatchItem parse_batch_line(std::string_view line, std::size_t lineno, const BatchDefaults& d);
// Reads a whole input: every non-blank line is an item. A repeated id makes
// the later lines invalid (E4500), so that a resumed run knows which is done.
std::vector<BatchItem> parse_batch_input(std::string_view text, const BatchDefaults& d);

// The result lines.
nlohmann::ordered_json batch_result_json(const BatchItem& item, const InferenceResponse& r);
// exit_code: the exit status l04ctl gives this error (the "exit" field).
nlohmann::ordered_json batch_error_json(const BatchItem& item, const Error& e, int exit_code);

// Whether a failed item may be tried again within its time: rate limits,
// full queues and overloaded providers. Auth, invalid requests and
// exhausted budgets are final.
bool batch_should_wait(const Error& e);

using BatchExec = std::function<Result<InferenceResponse>(std::size_t worker, const InferenceRequest& req)>;
// Called once for each item, one call at a time, in completion order (or
// input order with ordered). Return false to stop: no new item starts.
using BatchEmit = std::function<bool(const BatchItem& item, const Result<InferenceResponse>& r)>;

struct BatchRunOptions {
    std::size_t concurrency = 4;
    bool ordered = false;
    // Time an item may spend waiting out rate limits when it has no timeout
    // of its own.
    std::int64_t default_timeout_ms = 120000;
    Clock* clock = nullptr;  // default: the system clock
};

// Runs items (those without a request are emitted as their error at once)
// on `concurrency` workers. A rate-limited item is tried again after the
// Retry-After it was given (at least 50 ms, at most what is left of its
// timeout) until it succeeds, fails for another reason or its time is up.
// Returns the number of items emitted.
std::size_t run_batch(const std::vector<BatchItem>& items, const BatchExec& exec, const BatchEmit& emit,
                      const BatchRunOptions& opts);

}  // namespace l04
