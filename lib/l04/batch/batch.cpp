#include <l04/batch/batch.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace l04 {

using nlohmann::json;

namespace {

constexpr int k_max_line_depth = 64;

// The keys an item may give at its top level that belong in the "l04" object.
const char* const k_l04_keys[] = {"strategy", "capabilities", "priority", "agent", "timeout", "cache", "options"};

json parse_limited(std::string_view text, bool& too_deep) {
    json::parser_callback_t check = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > k_max_line_depth) too_deep = true;
        return !too_deep;
    };
    return json::parse(text, check, false);
}

std::string line_prefix(std::size_t lineno) { return "line " + std::to_string(lineno) + ": "; }

}  // namespace

BatchItem parse_batch_line(std::string_view line, std::size_t lineno, const BatchDefaults& d) {
    BatchItem it;
    it.line = lineno;
    it.id = lineno;
    auto finish = [&it] {
        it.key = it.id.dump();
        return it;
    };
    auto bad = [&](ErrorCode c, const std::string& m) {
        it.error = Error(c, line_prefix(lineno) + m);
        return finish();
    };
    const std::string_view t = trim(line);
    json body = json::object();
    json messages = json::array();
    std::string prompt;
    bool item_priority = false, item_cache = false, has_system = false;
    const char first = t.empty() ? '\0' : t.front();
    if (first == '{' || first == '"' || first == '[') {
        bool too_deep = false;
        json j = parse_limited(t, too_deep);
        if (too_deep) return bad(ErrorCode::invalid_request, "nests deeper than 64 levels");
        if (j.is_discarded()) {
            // A prompt that merely starts with a quote or brace is still a prompt.
            if (first == '{') return bad(ErrorCode::invalid_request, "not valid JSON (a line starting with '{' is read as a request object)");
            prompt = std::string(t);
        } else if (j.is_string()) {
            prompt = j.get<std::string>();
        } else if (j.is_array()) {
            return bad(ErrorCode::invalid_request, "a line is a prompt, a JSON string or a JSON object, not an array");
        } else {
            if (auto id = j.find("id"); id != j.end()) {
                if (id->is_string() && !id->get_ref<const std::string&>().empty() &&
                    id->get_ref<const std::string&>().size() <= 256)
                    it.id = *id;
                else if (id->is_number_integer() || id->is_number_unsigned())
                    it.id = *id;
                else
                    return bad(ErrorCode::invalid_parameter, "'id' must be a non-empty string (at most 256 bytes) or an integer");
                j.erase("id");
            }
            if (auto p = j.find("prompt"); p != j.end()) {
                if (!p->is_string()) return bad(ErrorCode::invalid_parameter, "'prompt' must be a string");
                prompt = p->get<std::string>();
                j.erase("prompt");
            }
            if (auto m = j.find("messages"); m != j.end()) {
                if (!m->is_array()) return bad(ErrorCode::invalid_messages, "'messages' must be an array");
                messages = std::move(*m);
                j.erase("messages");
            }
            if (auto s = j.find("system"); s != j.end()) {
                if (!s->is_string()) return bad(ErrorCode::invalid_parameter, "'system' must be a string");
                if (!s->get_ref<const std::string&>().empty()) {
                    messages.insert(messages.begin(), json{{"role", "system"}, {"content", *s}});
                    has_system = true;
                }
                j.erase("system");
            }
            if (j.contains("stream")) return bad(ErrorCode::invalid_parameter, "'stream' has no meaning in a batch");
            json l04 = json::object();
            if (auto g = j.find("l04"); g != j.end()) {
                if (!g->is_object()) return bad(ErrorCode::invalid_parameter, "'l04' must be an object");
                l04 = std::move(*g);
                j.erase("l04");
            }
            for (const char* k : k_l04_keys) {
                if (auto v = j.find(k); v != j.end()) {
                    if (l04.contains(k)) return bad(ErrorCode::invalid_parameter, std::string("'") + k + "' is given twice");
                    l04[k] = std::move(*v);
                    j.erase(k);
                }
            }
            item_priority = l04.contains("priority");
            item_cache = l04.contains("cache");
            if (!l04.empty()) j["l04"] = std::move(l04);
            body = std::move(j);
        }
    } else {
        prompt = std::string(t);
    }
    if (!prompt.empty()) messages.push_back(json{{"role", "user"}, {"content", prompt}});
    if (messages.empty()) return bad(ErrorCode::invalid_request, "no prompt: give a line of text, \"prompt\" or \"messages\"");
    for (const auto& m : messages)
        if (m.is_object() && m.value("role", "") == "system") has_system = true;
    body["messages"] = std::move(messages);
    body["stream"] = false;
    auto req = parse_chat_request(to_wire(body));
    if (!req) {
        Error e = req.error();
        e.message = line_prefix(lineno) + e.message;
        it.error = std::move(e);
        return finish();
    }
    InferenceRequest r = std::move(*req);
    if (r.model.empty()) r.model = d.model;
    if (!has_system && r.system_prompt.empty() && !d.system.empty()) r.system_prompt = d.system;
    if (r.agent_did.empty()) r.agent_did = d.agent;
    if (r.strategy.empty()) r.strategy = d.strategy;
    if (!r.timeout_ms) r.timeout_ms = d.timeout_ms;
    if (!r.temperature) r.temperature = d.temperature;
    if (!r.max_tokens) r.max_tokens = d.max_tokens;
    if (!item_priority) r.priority = d.priority;
    if (!item_cache && d.cache_mode != CacheMode::use) {
        r.cache_mode = d.cache_mode;
    }
    r.stream = false;
    r.wait_for_limits = true;  // a batch waits for its turn; it does not fail for it
    it.request = std::move(r);
    return finish();
}

std::vector<BatchItem> parse_batch_input(std::string_view text, const BatchDefaults& d) {
    std::vector<BatchItem> items;
    std::set<std::string> seen;
    std::size_t lineno = 0, pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (trim(line).empty()) continue;
        BatchItem it = parse_batch_line(line, lineno, d);
        if (!seen.insert(it.key).second) {
            // The id again: a resumed run could not tell which of the two is done.
            it.request.reset();
            it.error = Error(ErrorCode::invalid_request,
                             line_prefix(lineno) + "the id " + it.key + " is used by an earlier line; ids must be unique");
            it.id = lineno;
            it.key = it.id.dump();
            if (!seen.insert(it.key).second) it.key = "\"line:" + std::to_string(lineno) + "\"";
        }
        items.push_back(std::move(it));
    }
    return items;
}

nlohmann::ordered_json batch_result_json(const BatchItem& item, const InferenceResponse& r) {
    return nlohmann::ordered_json{{"id", item.id},
                {"line", item.line},
                {"content", r.content},
                {"model", r.model_id},
                {"provider", r.provider},
                {"usage",
                 {{"prompt_tokens", r.token_usage.prompt_tokens},
                  {"completion_tokens", r.token_usage.completion_tokens},
                  {"total_tokens", r.token_usage.total_tokens},
                  {"estimated", r.token_usage.estimated}}},
                {"cost_usd", r.cost_usd},
                {"cached", r.from_cache()},
                {"cache_hit", cache_hit_name(r.cache_hit)},
                {"finish_reason", r.finish_reason},
                {"latency_ms", r.latency_ms},
                {"request_id", r.request_id},
                {"error", nullptr}};
}

nlohmann::ordered_json batch_error_json(const BatchItem& item, const Error& e, int exit_code) {
    return nlohmann::ordered_json{{"id", item.id},
                {"line", item.line},
                {"error", {{"code", code_string(e.code)}, {"type", code_name(e.code)}, {"message", e.message}}},
                {"exit", exit_code}};
}

bool batch_should_wait(const Error& e) {
    switch (e.code) {
        case ErrorCode::rate_limit_exceeded:
        case ErrorCode::rate_limit_error:
        case ErrorCode::queue_full:
        case ErrorCode::provider_overloaded: return true;
        case ErrorCode::circuit_open:
        case ErrorCode::all_models_unavailable: return e.retry_after.has_value();
        default: return false;
    }
}

namespace {

// One item, tried again while it is only waiting for its turn.
Result<InferenceResponse> run_item(std::size_t worker, const InferenceRequest& req, const BatchExec& exec,
                                   Clock& clock, std::int64_t default_timeout_ms) {
    using std::chrono::milliseconds;
    const std::int64_t budget = req.timeout_ms.value_or(default_timeout_ms);
    const auto deadline = clock.now() + milliseconds(budget);
    InferenceRequest attempt = req;
    for (;;) {
        const auto left_ms = std::chrono::duration_cast<milliseconds>(deadline - clock.now()).count();
        if (left_ms <= 0)
            return fail(ErrorCode::deadline_exceeded,
                        "the item's time (" + std::to_string(budget) + " ms) passed while it waited for a rate limit");
        attempt.timeout_ms = left_ms;
        auto r = exec(worker, attempt);
        if (r || !batch_should_wait(r.error())) return r;
        const auto now_left = std::chrono::duration_cast<milliseconds>(deadline - clock.now()).count();
        std::int64_t wait = r.error().retry_after ? r.error().retry_after->count() : 1000;
        wait = std::max<std::int64_t>(wait, 50);
        if (wait >= now_left) return r;  // it would not get its turn in time: the limit's error stands
        clock.sleep_for(milliseconds(wait));
    }
}

}  // namespace

std::size_t run_batch(const std::vector<BatchItem>& items, const BatchExec& exec, const BatchEmit& emit,
                      const BatchRunOptions& opts) {
    Clock& clock = opts.clock ? *opts.clock : SystemClock::instance();
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::size_t emitted = 0;
    std::size_t next_in_order = 0;
    std::map<std::size_t, Result<InferenceResponse>> held;  // ordered: finished early

    auto deliver = [&](std::size_t i, Result<InferenceResponse> r) {
        std::lock_guard lk(mu);
        if (!opts.ordered) {
            if (stop) return;
            ++emitted;
            if (!emit(items[i], r)) stop = true;
            return;
        }
        held.emplace(i, std::move(r));
        while (!held.empty() && held.begin()->first == next_in_order) {
            if (!stop) {
                ++emitted;
                if (!emit(items[next_in_order], held.begin()->second)) stop = true;
            }
            held.erase(held.begin());
            ++next_in_order;
        }
    };
    auto work = [&](std::size_t worker) {
        for (;;) {
            if (stop) return;
            const std::size_t i = next.fetch_add(1);
            if (i >= items.size()) return;
            const BatchItem& it = items[i];
            if (!it.request) {
                deliver(i, fail(it.error ? *it.error : Error(ErrorCode::invalid_request, "unreadable line")));
                continue;
            }
            deliver(i, run_item(worker, *it.request, exec, clock, opts.default_timeout_ms));
        }
    };
    const std::size_t n = std::max<std::size_t>(1, std::min(opts.concurrency, std::max<std::size_t>(items.size(), 1)));
    std::vector<std::thread> threads;
    threads.reserve(n - 1);
    for (std::size_t w = 1; w < n; ++w) threads.emplace_back(work, w);
    work(0);
    for (auto& t : threads) t.join();
    return emitted;
}

}  // namespace l04
