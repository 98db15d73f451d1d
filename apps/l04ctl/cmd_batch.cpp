// l04ctl batch: a file of prompts (JSON lines or plain lines) through l04d,
// results as JSON lines. Resumable: with -o, a re-run skips the ids already
// answered in OUT and tries the failed ones again. Each result is written
// (and fdatasync'd) before it is counted, so a killed run never loses an
// answer it reported and never asks for it again.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

#include <l04/batch/batch.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace l04ctl {

namespace {

struct BatchArgs {
    std::string input, output, model, system, agent, strategy, timeout, priority = "low", progress_every = "10s";
    std::optional<double> temperature;
    std::optional<std::int64_t> max_tokens;
    std::size_t jobs = 4;
    bool ordered = false, no_cache = false, dry_run = false;
};

using Clock = std::chrono::steady_clock;

std::string read_all(std::istream& in) { return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}; }

bool write_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::write(fd, s.data(), s.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// The output file, locked for this run. An earlier run's lines are read
// first: the answered ids are kept (and skipped now), failed and torn lines
// are dropped, through a locked temporary file renamed over OUT.
class OutFile {
public:
    ~OutFile() {
        if (m_fd >= 0) ::close(m_fd);
    }
    // Returns "" or what went wrong.
    // read_only (--dry-run): OUT is read, never created, locked or rewritten.
    std::string open(const std::string& path, std::set<std::string>& done, std::size_t& dropped, bool read_only = false) {
        m_path = path;
        for (int attempt = 0; attempt < 5; ++attempt) {
            int fd = ::open(path.c_str(), read_only ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0 && read_only && errno == ENOENT) return {};
            if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
            if (read_only) {
                m_fd = fd;
                break;
            }
            if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
                ::close(fd);
                return "another l04ctl batch is writing " + path;
            }
            struct stat a{}, b{};
            if (::fstat(fd, &a) != 0 || ::stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
                ::close(fd);  // replaced between open and lock: take the new one
                continue;
            }
            if (!S_ISREG(a.st_mode)) {
                ::close(fd);
                return path + " is not a regular file";
            }
            m_fd = fd;
            break;
        }
        if (m_fd < 0) return "cannot lock " + path;
        std::string old;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(m_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            old.append(buf, static_cast<std::size_t>(n));
        }
        std::string kept;
        std::size_t pos = 0, lineno = 0;
        while (pos < old.size()) {
            std::size_t nl = old.find('\n', pos);
            if (nl == std::string::npos) {
                // A result line torn by a kill mid-write (every result starts so).
                if (old.compare(pos, 6, "{\"id\":") != 0)
                    return path + " holds lines that are not l04ctl batch results (its last line); give -o a new "
                                  "file or an earlier batch's output";
                ++dropped;
                break;
            }
            std::string_view line(old.data() + pos, nl - pos);
            pos = nl + 1;
            ++lineno;
            if (l04::trim(line).empty()) continue;
            auto j = nlohmann::json::parse(line, nullptr, false);
            // Only result lines are ever dropped: a file that holds anything
            // else is not a batch's output, and is left as it is.
            if (!j.is_object() || !j.contains("id") || !j.contains("line") || !j.contains("error"))
                return path + " holds lines that are not l04ctl batch results (line " + std::to_string(lineno) +
                       "); give -o a new file or an earlier batch's output";
            if (!j["error"].is_null()) {
                ++dropped;
                continue;
            }
            done.insert(j["id"].dump());
            kept.append(line).push_back('\n');
        }
        if (dropped == 0 || read_only) {
            ::lseek(m_fd, 0, SEEK_END);
            return {};
        }
        // Rewrite without the failed lines: a locked temporary renamed over OUT.
        const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
        int t = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (t < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
        if (::flock(t, LOCK_EX | LOCK_NB) != 0 || !write_all(t, kept) || ::fdatasync(t) != 0 ||
            ::rename(tmp.c_str(), path.c_str()) != 0) {
            const std::string why = std::strerror(errno);
            ::close(t);
            ::unlink(tmp.c_str());
            return "cannot rewrite " + path + ": " + why;
        }
        sync_dir();
        ::close(m_fd);
        m_fd = t;
        ::lseek(m_fd, 0, SEEK_END);
        return {};
    }
    // One result, on disk before this returns.
    bool append(const std::string& line) { return write_all(m_fd, line) && ::fdatasync(m_fd) == 0; }

private:
    void sync_dir() {
        std::string dir = m_path.find('/') == std::string::npos ? "." : m_path.substr(0, m_path.rfind('/'));
        if (dir.empty()) dir = "/";
        int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            ::fsync(d);
            ::close(d);
        }
    }
    std::string m_path;
    int m_fd = -1;
};

std::string human_duration(double s) {
    char b[32];
    if (s < 60) std::snprintf(b, sizeof b, "%.0fs", s);
    else if (s < 3600) std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    else std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
    return b;
}

std::string human_count(std::int64_t n) {
    char b[32];
    if (n < 10000) std::snprintf(b, sizeof b, "%lld", static_cast<long long>(n));
    else if (n < 10'000'000) std::snprintf(b, sizeof b, "%.1fk", n / 1e3);
    else std::snprintf(b, sizeof b, "%.1fM", n / 1e6);
    return b;
}

struct Tally {
    std::size_t total = 0, skipped = 0, done = 0, failed = 0, cached = 0;
    std::int64_t tokens = 0;
    double cost = 0;
    std::map<std::string, std::size_t> codes;  // "E4401" -> count
    std::map<int, std::size_t> exits;          // exit status -> count
};

// Progress on stderr: a redrawn bar on a terminal, a plain line every
// `every` otherwise (for cron logs).
class Progress {
public:
    Progress(bool tty, bool color, bool quiet, std::chrono::milliseconds every)
        : m_tty(tty), m_style{color}, m_quiet(quiet), m_every(every), m_start(Clock::now()), m_last(m_start) {}

    void update(const Tally& t, bool force = false) {
        if (m_quiet) return;
        const auto now = Clock::now();
        const auto since = now - m_last;
        if (!force && since < (m_tty ? std::chrono::milliseconds(100) : m_every)) return;
        m_last = now;
        const std::size_t finished = t.done + t.failed;
        const std::size_t to_run = t.total - t.skipped;
        const double el = std::chrono::duration<double>(now - m_start).count();
        const double rate = el > 0 ? finished / el : 0;
        const std::string eta = rate > 0 && finished < to_run ? human_duration((to_run - finished) / rate) : "-";
        char cost[32];
        std::snprintf(cost, sizeof cost, "$%.4f", t.cost);
        char rs[32];
        std::snprintf(rs, sizeof rs, "%.1f/s", rate);
        if (m_tty) {
            constexpr int width = 24;
            const int filled = to_run ? static_cast<int>(width * finished / to_run) : width;
            std::string bar(static_cast<std::size_t>(filled), '=');
            if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
            std::fprintf(stderr, "\r\033[K[%s] %zu/%zu %s%zu ok%s %s%zu failed%s %zu cached | %s tok %s | %s ETA %s",
                         bar.c_str(), finished, to_run, m_style.green(), t.done, m_style.reset(),
                         t.failed ? m_style.red() : "", t.failed, t.failed ? m_style.reset() : "", t.cached,
                         human_count(t.tokens).c_str(), cost, rs, eta.c_str());
            m_drawn = true;
        } else {
            std::fprintf(stderr, "l04ctl batch: %zu/%zu done, %zu ok, %zu failed, %zu cached, %lld tokens, %s, %s, ETA %s\n",
                         finished, to_run, t.done, t.failed, t.cached, static_cast<long long>(t.tokens), cost, rs,
                         eta.c_str());
        }
        std::fflush(stderr);
    }
    void clear() {
        if (m_drawn) std::fprintf(stderr, "\r\033[K");
        m_drawn = false;
    }
    double elapsed() const { return std::chrono::duration<double>(Clock::now() - m_start).count(); }

private:
    bool m_tty;
    Style m_style;
    bool m_quiet;
    std::chrono::milliseconds m_every;
    Clock::time_point m_start, m_last;
    bool m_drawn = false;
};

// The exit status of a batch with failures: the status of the most common
// failure (ties: the lower status).
int dominant_exit(const Tally& t) {
    int best = k_ok;
    std::size_t n = 0;
    for (const auto& [code, count] : t.exits)
        if (count > n) best = code, n = count;
    return best;
}

int dry_run(Context& ctx, l04::ApiClient& client, const std::vector<l04::BatchItem>& items,
            const std::set<std::string>& done) {
    auto models = call_json(client, "GET", "/v1/models");
    if (!models) return report(models.error());
    std::map<std::string, nlohmann::json> info;
    for (const auto& m : l04::json_field<nlohmann::json>(*models, "data", nlohmann::json::array()))
        info[l04::json_field<std::string>(m, "id", "")] = l04::json_field<nlohmann::json>(m, "l04", nlohmann::json::object());
    struct Row {
        std::size_t items = 0;
        std::int64_t prompt_tokens = 0, max_output = 0;
        double input_cost = 0, output_cost = 0;
    };
    std::map<std::string, Row> rows;
    std::size_t invalid = 0, skipped = 0;
    std::map<std::string, std::size_t> refused;
    for (const auto& it : items) {
        if (done.count(it.key)) {
            ++skipped;
            continue;
        }
        if (!it.request) {
            ++invalid;
            continue;
        }
        auto route = call_json(client, "POST", "/v1/route", l04::to_wire(l04::chat_request_to_json(*it.request)));
        if (!route) {
            ++refused[l04::code_string(route.error().code)];
            continue;
        }
        const std::string model = l04::json_field<std::string>(*route, "primary", "");
        const auto& m = info[model];
        Row& r = rows[model];
        ++r.items;
        const std::int64_t pt = l04::estimate_prompt_tokens(*it.request);
        const std::int64_t out = it.request->max_tokens
                                     ? *it.request->max_tokens
                                     : (m.is_object() ? m.value("max_output_tokens", std::int64_t{0}) : 0);
        r.prompt_tokens += pt;
        r.max_output += out;
        if (m.is_object()) {
            r.input_cost += pt * m.value("input_price_per_mtok", 0.0) / 1e6;
            r.output_cost += out * m.value("output_price_per_mtok", 0.0) / 1e6;
        }
    }
    std::vector<std::vector<std::string>> table;
    Row total;
    auto money = [](double d) {
        char b[32];
        std::snprintf(b, sizeof b, "$%.4f", d);
        return std::string(b);
    };
    for (const auto& [model, r] : rows) {
        table.push_back({model, std::to_string(r.items), std::to_string(r.prompt_tokens), money(r.input_cost),
                         std::to_string(r.max_output), money(r.output_cost), money(r.input_cost + r.output_cost)});
        total.items += r.items;
        total.prompt_tokens += r.prompt_tokens;
        total.max_output += r.max_output;
        total.input_cost += r.input_cost;
        total.output_cost += r.output_cost;
    }
    table.push_back({"total", std::to_string(total.items), std::to_string(total.prompt_tokens), money(total.input_cost),
                     std::to_string(total.max_output), money(total.output_cost),
                     money(total.input_cost + total.output_cost)});
    print_table({"MODEL", "ITEMS", "PROMPT_TOKENS", "INPUT_COST", "MAX_OUTPUT_TOKENS", "OUTPUT_COST_AT_MOST", "AT_MOST"},
                table);
    std::printf("estimate: at least %s (input, estimated tokens), at most %s (every answer at its max_tokens, or the "
                "model's output limit); cache hits cost nothing\n",
                money(total.input_cost).c_str(), money(total.input_cost + total.output_cost).c_str());
    if (skipped) std::printf("%zu item(s) already answered in the output file are not counted\n", skipped);
    if (invalid) std::printf("%zu line(s) cannot be sent as they are (see the run's errors)\n", invalid);
    for (const auto& [code, n] : refused) std::printf("%zu item(s) would be refused by routing: %s\n", n, code.c_str());
    (void)ctx;
    return invalid || !refused.empty() ? k_invalid : k_ok;
}

int run_batch_cmd(Context& ctx, BatchArgs& a) {
    if (int rc = ctx.load()) return rc;
    if (a.jobs < 1 || a.jobs > 64) return report(l04::Error(l04::ErrorCode::invalid_parameter, "-j must be from 1 to 64"));
    l04::BatchDefaults d;
    d.model = a.model;
    d.system = a.system;
    d.agent = !a.agent.empty() ? a.agent : ctx.settings.get("agent");
    d.strategy = a.strategy;
    d.temperature = a.temperature;
    d.max_tokens = a.max_tokens;
    if (a.no_cache) d.cache_mode = l04::CacheMode::bypass;
    auto pr = l04::parse_priority(a.priority);
    if (!pr) return report(l04::Error(l04::ErrorCode::invalid_parameter, "--priority must be high, normal or low"));
    d.priority = *pr;
    if (!a.timeout.empty()) {
        auto ms = l04::parse_duration_ms(a.timeout);
        if (!ms || *ms <= 0) return report(l04::Error(l04::ErrorCode::invalid_parameter, "--timeout must be a duration like 30s"));
        d.timeout_ms = *ms;
    }
    auto every = l04::parse_duration_ms(a.progress_every);
    if (!every || *every < 0)
        return report(l04::Error(l04::ErrorCode::invalid_parameter, "--progress-every must be a duration like 10s"));

    std::string text;
    if (a.input == "-") {
        text = read_all(std::cin);
    } else {
        std::ifstream f(a.input, std::ios::binary);
        if (!f) return report(l04::Error(l04::ErrorCode::invalid_request, "cannot read " + a.input + ": " + std::strerror(errno)));
        text = read_all(f);
    }
    std::vector<l04::BatchItem> items = l04::parse_batch_input(text, d);
    text.clear();
    text.shrink_to_fit();

    OutFile out;
    std::set<std::string> done;
    std::size_t dropped = 0;
    if (!a.output.empty() && a.output != "-" && a.input != "-") {
        struct stat in_st{}, out_st{};
        if (::stat(a.input.c_str(), &in_st) == 0 && ::stat(a.output.c_str(), &out_st) == 0 &&
            in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino)
            return report(l04::Error(l04::ErrorCode::invalid_parameter, "-o names the input file; give the results another file"));
    }
    if (!a.output.empty() && a.output != "-") {
        if (auto why = out.open(a.output, done, dropped, a.dry_run); !why.empty())
            return report(l04::Error(l04::ErrorCode::invalid_request, why));
    }
    // Only ids of this input count as done (OUT may hold other results too).
    std::size_t skipped = 0;
    for (const auto& it : items) skipped += done.count(it.key);

    const std::int64_t item_ms = d.timeout_ms.value_or(ctx.settings.get_duration_ms("request.timeout"));
    // The socket waits as long as the longest item may take.
    ctx.request_timeout_ms = item_ms;
    for (const auto& it : items)
        if (it.request && it.request->timeout_ms) ctx.request_timeout_ms = std::max(ctx.request_timeout_ms, *it.request->timeout_ms);
    auto client = ctx.client(true);
    if (!client) return report(client.error());
    if (a.dry_run) return dry_run(ctx, **client, items, done);

    // The items still to run, moved out of the input (no second copy of 10,000 requests).
    const std::size_t total = items.size();
    std::vector<l04::BatchItem> to_run;
    to_run.reserve(total - skipped);
    for (auto& it : items)
        if (!done.count(it.key)) to_run.push_back(std::move(it));
    items.clear();
    items.shrink_to_fit();
    if (!ctx.globals.quiet && (skipped || dropped))
        std::fprintf(stderr, "l04ctl batch: resuming %s: %zu of %zu item(s) already answered%s\n", a.output.c_str(),
                     skipped, total,
                     dropped ? (", " + std::to_string(dropped) + " failed or torn line(s) to try again").c_str() : "");

    Tally t;
    t.total = total;
    t.skipped = skipped;
    Progress progress(ctx.stderr_tty(), ctx.color_stderr(), ctx.globals.quiet, std::chrono::milliseconds(*every));
    const bool to_stdout = a.output.empty() || a.output == "-";
    bool broken_pipe = false, write_failed = false;
    std::string write_error;

    l04::ApiClient& api = **client;
    l04::BatchExec exec = [&api](std::size_t, const l04::InferenceRequest& req) -> l04::Result<l04::InferenceResponse> {
        l04::ClientRequest creq{"POST", "/v1/chat/completions", l04::to_wire(l04::chat_request_to_json(req)), {}};
        L04_TRY_ASSIGN(auto r, api.call(creq));
        auto j = nlohmann::json::parse(r.body, nullptr, false);
        if (j.is_discarded())
            return l04::fail(l04::ErrorCode::parse_error, "l04d answered HTTP " + std::to_string(r.status) + " without JSON");
        if (r.status != 200) {
            l04::Error e = l04::error_from_json(j, r.status);
            if (!e.retry_after) {
                if (const std::string ra = r.header("retry-after"); !ra.empty() && ra.size() < 9 &&
                                                                    ra.find_first_not_of("0123456789") == std::string::npos)
                    e.retry_after = std::chrono::seconds(std::stoll(ra));
            }
            return l04::fail(std::move(e));
        }
        return l04::response_from_json(j);
    };
    l04::BatchEmit emit = [&](const l04::BatchItem& it, const l04::Result<l04::InferenceResponse>& r) {
        nlohmann::ordered_json line;
        if (r) {
            line = l04::batch_result_json(it, *r);
        } else {
            line = l04::batch_error_json(it, r.error(), exit_code_for(r.error().code));
        }
        const std::string s = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        if (to_stdout) {
            progress.clear();
            if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout) != 0) {
                broken_pipe = errno == EPIPE;
                write_failed = !broken_pipe;
                write_error = std::strerror(errno);
                return false;
            }
        } else if (!out.append(s)) {
            write_failed = true;
            write_error = std::strerror(errno);
            return false;
        }
        // Counted only now that it is written.
        if (r) {
            ++t.done;
            t.cached += r->from_cache() ? 1 : 0;
            t.tokens += r->token_usage.total_tokens;
            t.cost += r->cost_usd;
        } else {
            ++t.failed;
            ++t.codes[l04::code_string(r.error().code)];
            ++t.exits[exit_code_for(r.error().code)];
        }
        progress.update(t);
        return true;
    };
    l04::BatchRunOptions opts;
    opts.concurrency = a.jobs;
    opts.ordered = a.ordered;
    opts.default_timeout_ms = item_ms;
    l04::run_batch(to_run, exec, emit, opts);
    progress.clear();
    if (broken_pipe) return k_broken_pipe;
    if (write_failed) {
        std::fprintf(stderr, "l04ctl: cannot write the results (%s): stopped; run again to resume\n", write_error.c_str());
        return k_internal;
    }
    if (!ctx.globals.quiet) {
        std::string codes;
        for (const auto& [c, n] : t.codes) codes += (codes.empty() ? "" : ", ") + c + " x" + std::to_string(n);
        std::fprintf(stderr, "l04ctl batch: %zu item(s): %zu succeeded (%zu cached), %zu failed%s%s, %lld tokens, $%.4f, %s\n",
                     t.total, t.done + t.skipped, t.cached, t.failed, codes.empty() ? "" : ": ", codes.c_str(),
                     static_cast<long long>(t.tokens), t.cost, human_duration(progress.elapsed()).c_str());
        if (skipped) std::fprintf(stderr, "l04ctl batch: %zu of them answered by an earlier run\n", skipped);
        if (t.failed && !to_stdout)
            std::fprintf(stderr, "l04ctl batch: run the same command again to try the failed item(s) again\n");
    }
    return t.failed ? dominant_exit(t) : k_ok;
}

}  // namespace

void add_batch(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<BatchArgs>();
    auto* c = app.add_subcommand("batch", "Run a file of prompts (one a line) and write one JSON result a line");
    c->footer(
        "Input (IN, or - for stdin), one item a line: plain text is a prompt; a JSON string is a prompt; a JSON\n"
        "object has \"id\", \"prompt\" and/or \"messages\", \"system\", \"model\", any chat-completions field\n"
        "(temperature, max_tokens, ...) and the l04 fields strategy, capabilities, priority, agent, timeout,\n"
        "cache, options. Blank lines are skipped. Ids default to the line number and must be unique.\n"
        "Output (OUT, default stdout), one line an item: {\"id\",\"line\",\"content\",\"model\",\"provider\",\"usage\",\n"
        "\"cost_usd\",\"cached\",...,\"error\":null} or {\"id\",\"line\",\"error\":{\"code\",\"type\",\"message\"},\"exit\":N}.\n"
        "Resume: with -o, a run skips the ids OUT already answers and tries the failed ones again (their old\n"
        "lines are dropped). Each line is on disk before the next result is counted. A file holding anything\n"
        "but batch results (or the input itself) is refused as OUT, never overwritten.\n"
        "Rate limits and provider 429s are waited out within --timeout per item; they fail only past it.\n"
        "Exit status: 0 when every item succeeded; otherwise the status of the most common failure\n"
        "(3 invalid line or request, 4 auth, 5 rate limited past --timeout or budget, 6 unavailable, 7 timeout;\n"
        "ties: the lower status); 1 when OUT cannot be written.");
    c->add_option("input", a->input, "Input file of JSON lines or plain lines; - reads stdin")->required();
    c->add_option("-o,--output", a->output, "Write the results here (resumable); default stdout");
    c->add_option("-j,--jobs", a->jobs, "Requests in flight at once (1-64)")->capture_default_str();
    c->add_flag("--ordered", a->ordered, "Write the results in input order (default: as they finish)");
    c->add_option("-m,--model", a->model, "Model for items that name none; default: routed");
    c->add_option("-s,--system", a->system, "System prompt for items without one");
    c->add_option("--temperature", a->temperature, "Sampling temperature for items that set none");
    c->add_option("--max-tokens", a->max_tokens, "Maximum answer tokens for items that set none");
    c->add_option("--agent", a->agent, "Agent identity for limits, budgets and usage");
    c->add_option("--strategy", a->strategy, "Routing strategy for items that set none");
    c->add_option("--priority", a->priority, "Queue priority of the items (high, normal, low)")->capture_default_str();
    c->add_option("--timeout", a->timeout, "Time an item may take, waiting for rate limits included (default request.timeout)");
    c->add_flag("--no-cache", a->no_cache, "Neither read nor write the response cache");
    c->add_flag("--dry-run", a->dry_run, "Print the estimated cost (registry prices, estimated tokens); send nothing");
    c->add_option("--progress-every", a->progress_every,
                  "When stderr is not a terminal: a progress line this often (0: after every item)")
        ->capture_default_str();
    c->callback([&ctx, a] { g_exit = run_batch_cmd(ctx, *a); });
}

}  // namespace l04ctl
